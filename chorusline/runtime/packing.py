"""Which fast paths a decoder takes: the packed form of its quantised weights for its
device and dtype, and whether its step runs through the fused CPU kernels.

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


def fast_paths(device: torch.device, dtype: torch.dtype, packed: bool | None,
               fused: bool | None) -> tuple[bool, bool]:
    """Whether a decoder keeps packed weights and runs the fused kernels: what was asked
    for (``None``: wherever they run), refused with a ValueError where they cannot run."""
    supported = packing_supported(device, dtype)
    if packed and not supported:
        raise ValueError("packed weights need a CPU device with fp32 (and chorusline's "
                         "compiled grid kernels) or bf16 (and torch's int4 kernel)")
    fusable = device.type == "cpu" and dtype == torch.float32 and load_kernels()
    if fused and not fusable:
        raise ValueError("fused kernels need a CPU device, fp32 and chorusline's compiled "
                         "CPU kernels")
    return (supported if packed is None else packed), (fusable if fused is None else fused)


def pack(weight: torch.Tensor, dtype: torch.dtype) -> Packed | None:
    """``weight`` (its source values: a cast would move them off the grid) packed for
    ``dtype``'s kernel, or None when it is on no grid that kernel reads."""
    if dtype == torch.float32:
        return pack_grid(weight)
    return pack_int4(weight, dtype)
