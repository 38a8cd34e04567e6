"""Vectorised dequantisation of GGML tensor blocks into float32 arrays.

Each quantised type stores fixed-size blocks; we view the raw bytes as a 2-D array with one
row per block and decode whole columns at once with numpy, so cost scales with memory
bandwidth rather than with a Python loop over millions of blocks.  Layouts follow ggml's
`ggml-quants.c`; `gguf.quants.dequantize` is the reference the tests compare against.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import torch
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

F32Array = npt.NDArray[np.float32]
U8Array = npt.NDArray[np.uint8]

QK_K = 256


def _f16(blocks: U8Array, start: int) -> F32Array:
    """Read a little-endian float16 column at byte offset `start` of every block."""
    raw = np.ascontiguousarray(blocks[:, start : start + 2])
    return raw.view(np.float16).astype(np.float32).reshape(-1)


def _nibbles(qs: U8Array) -> U8Array:
    """Split packed 4-bit values: ggml puts low nibbles first, then high nibbles."""
    return np.concatenate([qs & 0x0F, qs >> 4], axis=1)


def _high_bits(qh_bytes: U8Array) -> U8Array:
    """Expand Q5 blocks' 32 packed fifth bits into one 0/16 value per element."""
    bits = np.unpackbits(qh_bytes, axis=1, bitorder="little")
    return (bits << 4).astype(np.uint8)


def _q4_0(b: U8Array) -> F32Array:
    d = _f16(b, 0)
    q = _nibbles(b[:, 2:18]).astype(np.int8) - np.int8(8)
    return d[:, None] * q.astype(np.float32)


def _q4_1(b: U8Array) -> F32Array:
    d, m = _f16(b, 0), _f16(b, 2)
    q = _nibbles(b[:, 4:20])
    return d[:, None] * q.astype(np.float32) + m[:, None]


def _q5_0(b: U8Array) -> F32Array:
    d = _f16(b, 0)
    q = (_nibbles(b[:, 6:22]) | _high_bits(b[:, 2:6])).astype(np.int8) - np.int8(16)
    return d[:, None] * q.astype(np.float32)


def _q5_1(b: U8Array) -> F32Array:
    d, m = _f16(b, 0), _f16(b, 2)
    q = _nibbles(b[:, 8:24]) | _high_bits(b[:, 4:8])
    return d[:, None] * q.astype(np.float32) + m[:, None]


def _q8_0(b: U8Array) -> F32Array:
    d = _f16(b, 0)
    q = np.ascontiguousarray(b[:, 2:34]).view(np.int8)
    return d[:, None] * q.astype(np.float32)


def _k_scales(scales: U8Array) -> tuple[U8Array, U8Array]:
    """Unpack Q4_K/Q5_K's twelve bytes into eight 6-bit scales and eight 6-bit mins."""
    lo, hi = scales[:, 0:4], scales[:, 4:8]
    tail = scales[:, 8:12]
    sc = np.concatenate([lo & 63, (tail & 0x0F) | ((lo >> 6) << 4)], axis=1)
    mn = np.concatenate([hi & 63, (tail >> 4) | ((hi >> 6) << 4)], axis=1)
    return sc, mn


def _q4_k(b: U8Array) -> F32Array:
    d, dmin = _f16(b, 0), _f16(b, 2)
    sc, mn = _k_scales(b[:, 4:16])
    qs = b[:, 16:144].reshape(-1, 4, 32)
    # Each run of 32 bytes holds two sub-blocks of 32: low nibbles, then high nibbles.
    q = np.stack([qs & 0x0F, qs >> 4], axis=2).reshape(-1, 8, 32).astype(np.float32)
    scale = (d[:, None] * sc.astype(np.float32))[:, :, None]
    shift = (dmin[:, None] * mn.astype(np.float32))[:, :, None]
    return (scale * q - shift).reshape(-1, QK_K)


def _q6_k(b: U8Array) -> F32Array:
    ql = b[:, 0:128].reshape(-1, 2, 2, 32)  # [half][first/second 32 bytes][l]
    qh = b[:, 128:192].reshape(-1, 2, 1, 32)  # [half][.][l]
    scales = np.ascontiguousarray(b[:, 192:208]).view(np.int8).astype(np.float32)
    d = _f16(b, 208)
    low = np.stack([ql & 0x0F, ql >> 4], axis=2)  # [half][nibble][j][l]
    shifts = np.array([[0, 2], [4, 6]], dtype=np.uint8).reshape(1, 1, 2, 2, 1)
    high = (qh[:, :, None, :, :] >> shifts) & 3  # [half][nibble][j][l]
    q = (low | (high << 4)).astype(np.int8) - np.int8(32)
    # Element order within a half is nibble*64 + j*32 + l; each 16 elements share a scale.
    values = q.astype(np.float32).reshape(-1, 16, 16)
    out: F32Array = (d[:, None, None] * scales[:, :, None] * values).reshape(-1, QK_K)
    return out


_BLOCK_DECODERS: dict[GGMLQuantizationType, Callable[[U8Array], F32Array]] = {
    GGMLQuantizationType.Q4_0: _q4_0,
    GGMLQuantizationType.Q4_1: _q4_1,
    GGMLQuantizationType.Q5_0: _q5_0,
    GGMLQuantizationType.Q5_1: _q5_1,
    GGMLQuantizationType.Q8_0: _q8_0,
    GGMLQuantizationType.Q4_K: _q4_k,
    GGMLQuantizationType.Q6_K: _q6_k,
}

_PLAIN_DTYPES: dict[GGMLQuantizationType, type[np.generic]] = {
    GGMLQuantizationType.F32: np.float32,
    GGMLQuantizationType.F16: np.float16,
}

SUPPORTED_TYPES = frozenset({*_BLOCK_DECODERS, *_PLAIN_DTYPES, GGMLQuantizationType.BF16})


def dequantize(data: npt.NDArray[np.generic], qtype: GGMLQuantizationType) -> F32Array:
    """Decode raw GGUF tensor data to float32, shaped like `gguf.quants.dequantize`.

    `data` is the array `GGUFReader` exposes: typed for F32/F16, otherwise raw bytes whose
    last axis holds whole blocks.  The result's last axis is in elements, not bytes.
    """
    qtype = GGMLQuantizationType(qtype)
    if qtype in _PLAIN_DTYPES:
        plain = np.ascontiguousarray(data).view(_PLAIN_DTYPES[qtype])
        return plain.astype(np.float32)
    raw = np.ascontiguousarray(data).view(np.uint8)
    if qtype == GGMLQuantizationType.BF16:
        halves = raw.view(np.uint16).astype(np.uint32) << 16
        return halves.view(np.float32)
    decoder = _BLOCK_DECODERS.get(qtype)
    if decoder is None:
        raise ValueError(f"unsupported GGML tensor type {qtype.name}")
    block_size, type_size = GGML_QUANT_SIZES[qtype]
    if raw.shape[-1] % type_size:
        raise ValueError(f"{qtype.name} row of {raw.shape[-1]} bytes is not whole blocks")
    out_shape = (*raw.shape[:-1], raw.shape[-1] // type_size * block_size)
    return decoder(raw.reshape(-1, type_size)).reshape(out_shape)


def dequantize_to_torch(
    data: npt.NDArray[np.generic],
    qtype: GGMLQuantizationType,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """`dequantize`, returned as a contiguous torch tensor of `dtype`."""
    return torch.from_numpy(dequantize(data, qtype)).to(dtype).contiguous()
