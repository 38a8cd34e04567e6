"""Weights kept on their quantisation grid, multiplied with fp32 activations exactly.

A decode step of a small model reads every weight once, so on a CPU its speed is the speed
at which weights stream from memory, and fp32 weights cost 32 bits each. The bundled GGUFs
store their weights on group grids: SmolLM2's layers as Q4_1 and most of Gemma's as Q4_K
(groups of 32 weights ``w = d * q + m`` with ``q`` in 0..15), their embeddings (and so
their tied LM heads) as Q8_0 (``w = d * q`` with ``q`` in -127..127). After
dequantisation the values still lie exactly on those grids, so they can be packed back
into 4 or 8 bits plus one scale (and zero) per group of 32, *losing nothing*: chorusline's
kernels (``grid_kernels``) rebuild each weight in fp32 in registers and multiply it with
fp32 activations, so a step's logits are the fp32 reference's up to summation order.
That is the difference from llama.cpp (8-bit activations) and from torch's int4 kernel
(bf16 activations, see ``int4``), both of which change this model's greedy answers.

Nothing here trusts a file format: the finders recover ``(q, scale, zero)`` from the
values and accept a matrix only when every group reproduces its values to within a
thousandth of a step. A matrix on neither grid (an fp16 checkpoint, Q6_K's 16-weight
sub-blocks) keeps its fp32 path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

GROUP = 32
_TOLERANCE = 1e-3  # of one grid step
#: Rows tried first, so that a matrix on no such grid is refused without a full pass.
_SAMPLE_ROWS = 16
#: Rows searched at a time (``_by_rows``).
_CHUNK_ROWS = 4096
#: Steps with more rows than this use the fp32 weights, which MKL multiplies faster once
#: the product is no longer bound by reading the weights (``benchmarks/grid.py``).
MAX_ROWS = 8


def _grouped(weight: torch.Tensor) -> torch.Tensor | None:
    if weight.dim() != 2 or weight.shape[1] % GROUP:
        return None
    rows, cols = weight.shape
    return weight.detach().to(torch.float32).reshape(rows, cols // GROUP, GROUP)


def _nonzero(step: torch.Tensor) -> torch.Tensor:
    return torch.where(step > 0, step, torch.ones_like(step))


def _codes(w: torch.Tensor, step: torch.Tensor, zero: torch.Tensor) -> torch.Tensor:
    return ((w - zero) / _nonzero(step)).round_()


def _misfit(w: torch.Tensor, step: torch.Tensor, zero: torch.Tensor, low: int,
            high: int) -> torch.Tensor:
    """Per group: True where some value is not ``step * q + zero`` (within the tolerance)
    for an integer ``q`` in ``low..high``."""
    safe = _nonzero(step)
    q = _codes(w, step, zero)
    off = (q * safe + zero - w).abs() > _TOLERANCE * safe
    return (off | (q < low) | (q > high)).any(-1, keepdim=True)


def _grid_step(values: torch.Tensor, span: torch.Tensor) -> torch.Tensor:
    """Per group, the step of the grid its values lie on (0 for a constant group).

    Values on a grid differ by multiples of its step, so the smallest gap between
    distinct values is the step or a multiple of it (a multiple is caught by the fit
    check). The gap itself carries the values' rounding, so the step is taken as
    ``span / round(span / gap)`` instead, which spreads that rounding over the span."""
    ordered = values.sort(-1).values
    gaps = ordered.diff(dim=-1)
    gaps = torch.where(gaps > span * 1e-4, gaps, torch.full_like(gaps, float("inf")))
    gap = gaps.amin(-1, keepdim=True)
    steps = torch.where(torch.isfinite(gap), span / (span / gap).round(), span)
    return torch.where(span > 0, steps, torch.zeros_like(span))


def _fitted_step(w: torch.Tensor, guesses: list[torch.Tensor], zero: torch.Tensor, low: int,
                 high: int, gap_values: torch.Tensor, span: torch.Tensor
                 ) -> torch.Tensor | None:
    """Per group, the first of ``guesses`` that fits, else the smallest-gap step; None
    when some group fits none. Each guess is tried only on the groups the ones before it
    missed, and the gap (a sort) only on what is left, on a sample of it first: a matrix
    on no such grid (Q8_0 values tried as 4-bit) is refused after 64 groups."""
    flat_w, flat_zero = w.reshape(-1, GROUP), zero.reshape(-1, 1)
    step = guesses[0].reshape(-1, 1).clone()
    where = _misfit(flat_w, step, flat_zero, low, high).view(-1).nonzero().view(-1)
    for guess in guesses[1:]:
        if where.numel() == 0:
            break
        tried = guess.reshape(-1, 1).index_select(0, where)
        fits = ~_misfit(flat_w.index_select(0, where), tried, flat_zero.index_select(0, where),
                        low, high).view(-1)
        step[where[fits]] = tried[fits]
        where = where[~fits]
    if where.numel() == 0:
        return step.view_as(guesses[0])
    flat_values, flat_span = gap_values.reshape(-1, GROUP), span.reshape(-1, 1)
    for chosen in (where[:64], where):
        better = _grid_step(flat_values.index_select(0, chosen), flat_span.index_select(0, chosen))
        if bool(_misfit(flat_w.index_select(0, chosen), better, flat_zero.index_select(0, chosen),
                        low, high).any()):
            return None
    step[where] = better
    return step.view_as(guesses[0])


def _by_rows(find: Callable[[torch.Tensor], tuple[torch.Tensor, ...] | None],
             weight: torch.Tensor) -> tuple[torch.Tensor, ...] | None:
    """``find`` over blocks of rows (groups never span rows), so a 262,144-row embedding
    is searched in cache-sized pieces instead of through gigabyte temporaries."""
    if weight.dim() != 2 or len(weight) <= _CHUNK_ROWS:
        return find(weight)
    parts = []
    for start in range(0, len(weight), _CHUNK_ROWS):
        part = find(weight[start:start + _CHUNK_ROWS])
        if part is None:
            return None
        parts.append(part)
    return tuple(torch.cat(column, 0) for column in zip(*parts, strict=True))


def find_grid4(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor,
                                              torch.Tensor] | None:
    """``(q [N, K] in 0..15, scale [N, K/32], zero [N, K/32])`` with ``w = scale * q + zero``,
    or None when some group is not on a 4-bit grid.

    Q4_1 groups span their grid, so ``(max - min) / 15`` is their step; a Q4_K group
    (``d * sc * q - dmin * m``) need not reach either end, and gets its smallest gap."""
    w = _grouped(weight)
    if w is None or (len(w) > _SAMPLE_ROWS and find_grid4(weight[:_SAMPLE_ROWS]) is None):
        return None
    low = w.amin(-1, keepdim=True)
    span = w.amax(-1, keepdim=True) - low
    step = _fitted_step(w, [span / 15], low, 0, 15, w, span)
    if step is None:
        return None
    rows, cols = weight.shape
    q = _codes(w, step, low).reshape(rows, cols).to(torch.uint8)
    return q, step.squeeze(-1), low.squeeze(-1)


def find_grid8(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(q [N, K] in -127..127, scale [N, K/32])`` with ``w = scale * q``, or None.

    A Q8_0 group's largest magnitude is 127 steps by construction (``d = amax / 127``); a
    Q5_0 group (``d * (q - 16)``, q in 0..31) reaches 16 or 15 steps at its extreme, so
    those are tried next; groups none fits get their smallest gap between magnitudes."""
    w = _grouped(weight)
    if w is None or (len(w) > _SAMPLE_ROWS and find_grid8(weight[:_SAMPLE_ROWS]) is None):
        return None
    top = w.abs().amax(-1, keepdim=True)
    zero = torch.zeros_like(top)
    step = _fitted_step(w, [top / 127, top / 16, top / 15], zero, -127, 127, w.abs(), top)
    if step is None:
        return None
    rows, cols = weight.shape
    return _codes(w, step, zero).reshape(rows, cols).to(torch.int8), step.squeeze(-1)


@dataclass(frozen=True)
class Grid4Weight:
    """A ``[N, K]`` matrix as 4-bit codes in the kernel's lane layout (``[N, pairs * 8]``
    int32, see ``kernels/grid_linear.cpp``) and fp32 ``(scale, zero)`` per group."""

    codes: torch.Tensor
    scales_zeros: torch.Tensor  # [N, 2 * pairs, 2]
    in_features: int
    max_rows: int = MAX_ROWS

    def matmul(self, x: torch.Tensor) -> torch.Tensor:
        """``x @ W.T`` for fp32 ``x [M, K]``."""
        out: torch.Tensor = torch.ops.chorusline.grid4_linear(
            x.contiguous(), self.codes, self.scales_zeros, self.in_features)
        return out


@dataclass(frozen=True)
class Grid8Weight:
    """A ``[N, K]`` matrix as int8 codes in the kernel's lane layout and one fp32 scale
    per group ``[N, K/32]``."""

    codes: torch.Tensor
    scales: torch.Tensor
    max_rows: int = MAX_ROWS

    def matmul(self, x: torch.Tensor) -> torch.Tensor:
        """``x @ W.T`` for fp32 ``x [M, K]``."""
        out: torch.Tensor = torch.ops.chorusline.grid8_linear(x.contiguous(), self.codes,
                                                              self.scales)
        return out


GridWeight = Grid4Weight | Grid8Weight


def lanes4(q: torch.Tensor) -> torch.Tensor:
    """4-bit codes ``[N, K]`` in the kernel's layout: groups in pairs (an odd count padded
    with a zero group), lane ``L`` of a pair holding weight ``8 i + L`` of its group ``h``
    in nibble ``4 h + i``."""
    rows, cols = q.shape
    groups = cols // GROUP
    grouped = q.to(torch.int64).reshape(rows, groups, 4, 8)
    if groups % 2:
        grouped = torch.cat([grouped, grouped.new_zeros(rows, 1, 4, 8)], 1)
    nibbles = grouped.reshape(rows, -1, 8, 8)  # [N, pairs, 4 * h + i, L]
    shifts = (4 * torch.arange(8, dtype=torch.int64)).view(1, 1, 8, 1)
    words = (nibbles << shifts).sum(2)  # [N, pairs, L]; at most 32 bits
    words = torch.where(words >= 1 << 31, words - (1 << 32), words)  # as int32 bits
    return words.to(torch.int32).reshape(rows, -1).contiguous()


def lanes8(q: torch.Tensor) -> torch.Tensor:
    """int8 codes ``[N, K]`` in the kernel's layout: per group, byte ``4 L + i`` holds
    weight ``8 i + L``."""
    rows, cols = q.shape
    return q.reshape(rows, cols // GROUP, 4, 8).transpose(2, 3).reshape(rows, cols).contiguous()


def pack_grid(weight: torch.Tensor) -> GridWeight | None:
    """The matrix on its 4-bit grid, else its 8-bit grid, else None."""
    found4 = _by_rows(find_grid4, weight)
    if found4 is not None:
        q, scale, zero = found4
        rows, cols = q.shape
        scales_zeros = torch.stack([scale, zero], -1)
        if (cols // GROUP) % 2:
            scales_zeros = torch.cat([scales_zeros, scales_zeros.new_zeros(rows, 1, 2)], 1)
        return Grid4Weight(lanes4(q), scales_zeros.contiguous(), cols)
    found8 = _by_rows(find_grid8, weight)
    if found8 is not None:
        q8, scale8 = found8
        return Grid8Weight(lanes8(q8), scale8.contiguous())
    return None
