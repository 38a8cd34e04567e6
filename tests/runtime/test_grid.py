"""Grid weights: found exactly where values lie on a 4-bit or 8-bit group grid, refused
elsewhere, and multiplied with fp32 activations as the fp32 matrix is."""

from __future__ import annotations

import pytest
import torch

from chorusline.runtime.grid import (
    GROUP,
    Grid4Weight,
    Grid8Weight,
    find_grid4,
    find_grid8,
    pack_grid,
)
from chorusline.runtime.grid_kernels import load_kernels

needs_kernels = pytest.mark.skipif(not load_kernels(), reason="no C++ compiler here")


def grid4_values(rows: int, cols: int, seed: int = 0) -> torch.Tensor:
    """Q4_1-style values: per group of 32, ``d * q + m`` with q in 0..15 (ends present)."""
    gen = torch.Generator().manual_seed(seed)
    q = torch.randint(0, 16, (rows, cols // GROUP, GROUP), generator=gen)
    q[..., 0], q[..., 1] = 0, 15
    d = 0.002 + torch.rand(rows, cols // GROUP, 1, generator=gen) * 0.02
    m = -torch.rand(rows, cols // GROUP, 1, generator=gen) * 0.1
    return (q.float() * d + m).reshape(rows, cols)


def grid8_values(rows: int, cols: int, seed: int = 0) -> torch.Tensor:
    """Q8_0-style values: ``d * q`` with q in -127..127 and d = amax / 127."""
    gen = torch.Generator().manual_seed(seed)
    q = torch.randint(-126, 127, (rows, cols // GROUP, GROUP), generator=gen)
    q[..., 3] = 127 * torch.where(torch.rand(rows, cols // GROUP, generator=gen) < 0.5, -1, 1)
    d = 0.0002 + torch.rand(rows, cols // GROUP, 1, generator=gen) * 0.002
    return (q.float() * d).reshape(rows, cols)


def test_grid4_is_recovered_exactly() -> None:
    w = grid4_values(8, 64)
    found = find_grid4(w)
    assert found is not None
    q, scale, zero = found
    rebuilt = q.float().view(8, 2, GROUP) * scale[..., None] + zero[..., None]
    assert torch.allclose(rebuilt.view(8, 64), w, atol=1e-7)
    assert int(q.max()) == 15


def test_grid8_is_recovered_exactly() -> None:
    w = grid8_values(8, 64)
    found = find_grid8(w)
    assert found is not None
    q, scale = found
    assert torch.allclose((q.float().view(8, 2, GROUP) * scale[..., None]).view(8, 64), w,
                          atol=1e-8)
    assert find_grid4(w) is None  # 255 levels do not fit 16


def test_off_grid_values_are_refused() -> None:
    w = grid4_values(4, 64)
    w[1, 7] += 0.3 * (w[1, :32].max() - w[1, :32].min()) / 15  # a third of a step off
    assert find_grid4(w) is None
    assert pack_grid(torch.randn(4, 64)) is None
    assert pack_grid(torch.zeros(4, 48)) is None  # columns not a multiple of the group
    assert pack_grid(torch.zeros(64)) is None


def test_constant_groups_pack() -> None:
    packed = pack_grid(torch.full((4, 64), 0.25))
    assert isinstance(packed, Grid4Weight)


def test_pack_prefers_four_bits() -> None:
    assert isinstance(pack_grid(grid4_values(16, 64)), Grid4Weight)
    assert isinstance(pack_grid(grid8_values(16, 64)), Grid8Weight)


@needs_kernels
@pytest.mark.parametrize("rows", [1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 33])
@pytest.mark.parametrize("values", [grid4_values, grid8_values])
@pytest.mark.parametrize("cols", [576, 640, 96])  # an odd group count pads a pair
def test_kernels_multiply_like_the_fp32_matrix(rows: int, values: object, cols: int) -> None:
    w = values(96, cols, seed=rows)  # type: ignore[operator]
    packed = pack_grid(w)
    assert packed is not None
    x = torch.randn(rows, cols, generator=torch.Generator().manual_seed(1))
    expected = (x.double() @ w.double().T).float()
    got = packed.matmul(x)
    assert got.shape == (rows, 96) and got.dtype == torch.float32
    # Only summation order differs from the exact product, as it does for fp32 GEMM.
    fp32 = x @ w.T
    assert (got - expected).abs().max() <= 4 * (fp32 - expected).abs().max() + 1e-6


@needs_kernels
def test_kernels_refuse_bad_inputs() -> None:
    packed = pack_grid(grid4_values(16, 64))
    assert isinstance(packed, Grid4Weight)
    with pytest.raises(RuntimeError, match="columns"):
        packed.matmul(torch.randn(2, 32))
    with pytest.raises(RuntimeError, match="float32"):
        torch.ops.chorusline.grid4_linear(torch.randn(2, 64).double(), packed.codes,
                                          packed.scales_zeros, 64)
