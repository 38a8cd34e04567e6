"""Lossless 4-bit weights for CPU decode steps, found in the dequantised weights themselves.

Decoding a few sequences reads every weight once per step, so on a CPU its speed is the
speed at which weights stream from memory. The bundled GGUF stores every linear layer as
Q4_1: groups of 32 weights ``w = d * q + m`` with ``q`` in 0..15. After dequantisation
those weights still lie exactly on such a grid, so they can be packed back into 4 bits
*without losing anything beyond the activation dtype's own rounding*, and torch's CPU int4
kernel (``_weight_int4pack_mm_for_cpu``: int4 weights, bf16 activations, per-group scale
and zero) reads a quarter of the bytes of bf16.

Nothing here trusts a file format: ``pack_int4`` recovers ``(q, d, m)`` from the values and
packs a matrix only when every group reproduces its values to within a thousandth of a
step. Weights that are not on a 4-bit grid (an fp16 checkpoint, a Q8_0 tensor such as this
model's embeddings) stay bf16. Q4_0 groups fit too whenever both grid ends occur in them.

Measured on the project's 2-core AMD EPYC with AVX512-BF16 (``[M, 576] x [576, 3072]``,
2 threads): int4 67/79/99/106 µs at M = 1/2/3/4 rows against bf16's 103/159/114/122 µs, and
slower from 6 rows on (192 vs 139 µs), so the model uses the packed weights only for
steps of at most ``MAX_ROWS`` tokens and keeps the bf16 copy for larger ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

GROUP = 32
#: Steps with more tokens than this use the bf16 weights (see the module docstring).
MAX_ROWS = 4
_TOLERANCE = 1e-3  # of one grid step
_ROW_MULTIPLE = 16  # the kernel's packing works on tiles of 16 output rows


@dataclass(frozen=True)
class Int4Weight:
    """A ``[out, in]`` matrix as torch's CPU int4 pack plus bf16 scales and zeros."""

    packed: torch.Tensor  # [out, in / 2] uint8
    scales_zeros: torch.Tensor  # [in / GROUP, out, 2]
    out_features: int

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
    if weight.dim() != 2 or weight.shape[1] % GROUP or weight.shape[0] % _ROW_MULTIPLE:
        return None
    out_features, in_features = weight.shape
    w = weight.detach().to(torch.float32).reshape(out_features, in_features // GROUP, GROUP)
    low = w.amin(-1, keepdim=True)
    step = (w.amax(-1, keepdim=True) - low) / 15
    safe = torch.where(step > 0, step, torch.ones_like(step))
    q = ((w - low) / safe).round_().clamp_(0, 15)
    error = (q * step + low - w).abs()
    if bool((error > _TOLERANCE * safe).any()):
        return None
    packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(
        q.reshape(out_features, in_features).to(torch.int32).contiguous(), 1)
    # The kernel computes (q - 8) * scale + zero, so zero = m + 8 d.
    scale = step.squeeze(-1)
    zero = low.squeeze(-1) + 8 * scale
    scales_zeros = torch.stack([scale, zero], -1).transpose(0, 1).contiguous().to(dtype)
    return Int4Weight(packed, scales_zeros, out_features)
