"""Which packed form a decoder keeps its quantised weights in, for its device and dtype.

A decoder keeps every linear weight in its compute dtype (for prefill, where the product
is bound by arithmetic) and, where the values lie on a quantisation grid and a kernel for
this device and dtype exists, also a packed copy for small steps, where reading the
weights is the whole cost. Two kernels exist, both CPU:

- fp32 activations: chorusline's grid kernels (``grid``), 4-bit and 8-bit, exact;
- bf16 activations: torch's int4 kernel (``int4``), 4-bit only.
"""

from __future__ import annotations

from typing import Protocol

import torch

from chorusline.runtime.grid import pack_grid
from chorusline.runtime.grid_kernels import load_kernels
from chorusline.runtime.int4 import int4_supported, pack_int4


class Packed(Protocol):
    """A weight matrix ``[N, K]`` in a packed form."""

    @property
    def max_rows(self) -> int:
        """Steps with more rows than this use the plain weights."""
        ...

    def matmul(self, x: torch.Tensor) -> torch.Tensor:
        """``x @ W.T`` for ``x [M, K]`` in the decoder's dtype."""
        ...


def packing_supported(device: torch.device, dtype: torch.dtype) -> bool:
    """True where some packed form has a kernel (building chorusline's on first call)."""
    if device.type != "cpu":
        return False
    if dtype == torch.float32:
        return load_kernels()
    return int4_supported(device, dtype)


def pack(weight: torch.Tensor, dtype: torch.dtype) -> Packed | None:
    """``weight`` (its source values: a cast would move them off the grid) packed for
    ``dtype``'s kernel, or None when it is on no grid that kernel reads."""
    if dtype == torch.float32:
        return pack_grid(weight)
    return pack_int4(weight, dtype)
