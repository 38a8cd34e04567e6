"""Our vectorised dequantisers must be bit-identical to gguf's reference implementation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType as Q, GGUFReader
from gguf.quants import dequantize as reference_dequantize, quantize as reference_quantize

from chorusline.runtime.dequant import SUPPORTED_TYPES, dequantize, dequantize_to_torch

BLOCK_TYPES = [Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.Q8_0, Q.Q4_K, Q.Q6_K]
# Byte offsets of each block's float16 scale fields (random bytes there could be NaN/inf).
SCALE_OFFSETS = {
    Q.Q4_0: (0,), Q.Q4_1: (0, 2), Q.Q5_0: (0,), Q.Q5_1: (0, 2), Q.Q8_0: (0,),
    Q.Q4_K: (0, 2), Q.Q6_K: (208,),
}  # fmt: skip


def random_blocks(qtype: Q, rows: int, blocks_per_row: int, seed: int) -> np.ndarray:
    """Random raw bytes in qtype's layout, with finite float16 scales."""
    rng = np.random.default_rng(seed)
    type_size = GGML_QUANT_SIZES[qtype][1]
    raw = rng.integers(0, 256, size=(rows, blocks_per_row * type_size), dtype=np.uint8)
    blocks = raw.reshape(-1, type_size)
    for offset in SCALE_OFFSETS[qtype]:
        scales = rng.uniform(-2, 2, size=len(blocks)).astype(np.float16)
        blocks[:, offset : offset + 2] = scales.view(np.uint8).reshape(-1, 2)
    return raw


def assert_bit_identical(ours: np.ndarray, ref: np.ndarray) -> None:
    assert ours.dtype == np.float32
    assert ours.shape == ref.shape
    assert np.array_equal(ours.view(np.uint32), ref.astype(np.float32).view(np.uint32))


@pytest.mark.parametrize("qtype", BLOCK_TYPES, ids=lambda q: q.name)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_blocks_match_reference(qtype: Q, seed: int) -> None:
    raw = random_blocks(qtype, rows=5, blocks_per_row=3, seed=seed)
    assert_bit_identical(dequantize(raw, qtype), reference_dequantize(raw, qtype))


@pytest.mark.parametrize("qtype", [Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.Q8_0], ids=lambda q: q.name)
def test_reference_quantised_data_round_trips(qtype: Q) -> None:
    """Data quantised by gguf (realistic scales and mins) decodes identically and closely."""
    rng = np.random.default_rng(7)
    values = rng.standard_normal((16, 256)).astype(np.float32)
    packed = reference_quantize(values, qtype)
    ours = dequantize(packed, qtype)
    assert_bit_identical(ours, reference_dequantize(packed, qtype))
    assert np.abs(ours - values).max() < 0.5


@pytest.mark.parametrize("qtype", [Q.F32, Q.F16, Q.BF16], ids=lambda q: q.name)
def test_plain_float_types(qtype: Q) -> None:
    rng = np.random.default_rng(3)
    values = rng.standard_normal((4, 64)).astype(np.float32)
    stored = values if qtype == Q.F32 else reference_quantize(values, qtype)
    assert_bit_identical(dequantize(stored, qtype), reference_dequantize(stored, qtype))


def test_to_torch_dtype_and_shape() -> None:
    raw = random_blocks(Q.Q8_0, rows=3, blocks_per_row=2, seed=4)
    out = dequantize_to_torch(raw, Q.Q8_0, torch.bfloat16)
    assert out.dtype == torch.bfloat16
    assert out.shape == (3, 64)
    assert out.is_contiguous()


def test_rejects_partial_blocks() -> None:
    with pytest.raises(ValueError, match="whole blocks"):
        dequantize(np.zeros((2, 35), dtype=np.uint8), Q.Q8_0)


def test_rejects_unsupported_type() -> None:
    assert Q.IQ2_XXS not in SUPPORTED_TYPES
    with pytest.raises(ValueError, match="unsupported"):
        dequantize(np.zeros((1, 66), dtype=np.uint8), Q.IQ2_XXS)


@pytest.fixture(scope="module")
def smollm_reader(smollm_gguf_path: Path) -> GGUFReader:
    return GGUFReader(smollm_gguf_path, "r")


def test_every_tensor_type_of_smollm(smollm_reader: GGUFReader) -> None:
    """One tensor of each type the real file uses (Q4_1, Q8_0, F32), decoded identically."""
    first_of_type: dict[Q, Any] = {}
    for tensor in smollm_reader.tensors:
        first_of_type.setdefault(Q(tensor.tensor_type), tensor)
    assert {Q.Q4_1, Q.Q8_0, Q.F32} <= set(first_of_type)
    for qtype, tensor in first_of_type.items():
        assert qtype in SUPPORTED_TYPES
        data = np.asarray(tensor.data)
        assert_bit_identical(dequantize(data, qtype), reference_dequantize(data, qtype))


def test_every_tensor_type_of_gemma(gemma_gguf_path: Path) -> None:
    """One tensor of each type Gemma 3 270M uses (Q4_K, Q5_0, Q6_K, Q8_0, F32)."""
    first_of_type: dict[Q, Any] = {}
    for tensor in GGUFReader(gemma_gguf_path, "r").tensors:
        first_of_type.setdefault(Q(tensor.tensor_type), tensor)
    assert set(first_of_type) == {Q.Q4_K, Q.Q5_0, Q.Q6_K, Q.Q8_0, Q.F32}
    for qtype, tensor in first_of_type.items():
        data = np.asarray(tensor.data)
        assert_bit_identical(dequantize(data, qtype), reference_dequantize(data, qtype))
