"""Lossless 4-bit weights for CPU decode steps, found in the dequantised weights themselves.

Decoding a few sequences reads every weight once per step, so on a CPU its speed is the
speed at which weights stream from memory. The bundled GGUF stores every linear layer as
Q4_1: groups of 32 weights ``w = d * q + m`` with ``q`` in 0..15. After dequantisation
those weights still lie exactly on such a grid, so they can be packed back into 4 bits
*without losing anything beyond the activation dtype's own rounding*, and torch's CPU int4
kernel (``_weight_int4pack_mm_for_cpu``: int4 weights, bf16 activations, per-group scale
and zero) reads a quarter of the bytes of bf16.

Nothing here trusts a file format: the grid is recovered from the values
(``grid.find_grid4``). Weights that are not on a 4-bit grid (an fp16 checkpoint, a Q8_0
tensor such as this model's embeddings) stay bf16. Q4_0 groups fit too whenever both grid
ends occur in them. With fp32 activations the same grids go to chorusline's own kernels
instead (``grid``), which keep the activations unrounded.

Measured on the project's 2-core AMD EPYC with AVX512-BF16 (``[M, 576] x [576, 3072]``,
2 threads): int4 67/79/99/106 µs at M = 1/2/3/4 rows against bf16's 103/159/114/122 µs, and
slower from 6 rows on (192 vs 139 µs), so the model uses the packed weights only for
steps of at most ``MAX_ROWS`` tokens and keeps the bf16 copy for larger ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from chorusline.runtime.grid import GROUP, find_grid4

#: Steps with more tokens than this use the bf16 weights (see the module docstring).
MAX_ROWS = 4
_ROW_MULTIPLE = 16  # the kernel's packing works on tiles of 16 output rows


@dataclass(frozen=True)
class Int4Weight:
    """A ``[out, in]`` matrix as torch's CPU int4 pack plus bf16 scales and zeros."""

    packed: torch.Tensor  # [out, in / 2] uint8
    scales_zeros: torch.Tensor  # [in / GROUP, out, 2]
    out_features: int
    max_rows: int = MAX_ROWS

    def matmul(self, x: torch.Tensor) -> torch.Tensor:
        """``x @ W.T`` for ``x [rows, in]`` in the scales' dtype."""
        mm = torch.ops.aten._weight_int4pack_mm_for_cpu
        return mm(x, self.packed, GROUP, self.scales_zeros)  # type: ignore[no-any-return]


def int4_supported(device: torch.device, dtype: torch.dtype) -> bool:
    """True where the packed path exists and pays: CPU, bf16 activations, torch's kernel."""
    return (device.type == "cpu" and dtype == torch.bfloat16
            and hasattr(torch.ops.aten, "_weight_int4pack_mm_for_cpu")
            and hasattr(torch.ops.aten, "_convert_weight_to_int4pack_for_cpu"))


def pack_int4(weight: torch.Tensor, dtype: torch.dtype = torch.bfloat16) -> Int4Weight | None:
    """The matrix packed to 4 bits, or None when its values are not on a 4-bit group grid."""
    if weight.dim() != 2 or weight.shape[0] % _ROW_MULTIPLE:
        return None
    found = find_grid4(weight)
    if found is None:
        return None
    q, scale, low = found
    packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(q.to(torch.int32).contiguous(), 1)
    # The kernel computes (q - 8) * scale + zero, so zero = m + 8 d.
    zero = low + 8 * scale
    scales_zeros = torch.stack([scale, zero], -1).transpose(0, 1).contiguous().to(dtype)
    return Int4Weight(packed, scales_zeros, weight.shape[0])
