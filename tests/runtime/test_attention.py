"""Paged varlen attention against dense per-sequence attention."""

from __future__ import annotations

import random

import torch
from hypothesis import given, settings, strategies as st

from chorusline.runtime.attention import (
    AttentionMetadata,
    build_group,
    paged_attention,
    reference_attention,
)
from chorusline.runtime.block_manager import dead_blocks

HEADS, KV_HEADS, DIM, BLOCK = 6, 2, 8, 4


def scatter_kv(k_cache: torch.Tensor, v_cache: torch.Tensor, table: list[int],
               k: torch.Tensor, v: torch.Tensor) -> None:
    for p in range(k.shape[0]):
        k_cache[:, table[p // BLOCK], p % BLOCK] = k[p]
        v_cache[:, table[p // BLOCK], p % BLOCK] = v[p]


@settings(max_examples=40, deadline=None)
@given(
    decode_ctx=st.lists(st.integers(1, 30), max_size=5),
    prefill=st.lists(st.tuples(st.integers(0, 20), st.integers(1, 12)), max_size=3),
    seed=st.integers(0, 1000),
    window=st.one_of(st.none(), st.integers(1, 16)),
)
def test_mixed_batch_matches_dense(decode_ctx: list[int], prefill: list[tuple[int, int]],
                                   seed: int, window: int | None) -> None:
    """Decodes (context n, one query) and prefill slices (start s, length q) in one batch;
    with a ``window``, local layers see only its last keys and full layers still all."""
    if not decode_ctx and not prefill:
        return
    gen = torch.Generator().manual_seed(seed)
    rng = random.Random(seed)
    num_blocks = 200
    k_cache = torch.zeros(KV_HEADS, num_blocks + 1, BLOCK, DIM)
    v_cache = torch.zeros_like(k_cache)
    free = list(range(num_blocks))
    rng.shuffle(free)
    seqs = [(n - 1, 1) for n in decode_ctx] + prefill  # (start, q_len)
    qs, expected, expected_local, tables = [], [], [], []
    for start, q_len in seqs:
        total = start + q_len
        table = [free.pop() for _ in range(-(-total // BLOCK))]
        k = torch.randn(total, KV_HEADS, DIM, generator=gen)
        v = torch.randn(total, KV_HEADS, DIM, generator=gen)
        q = torch.randn(q_len, HEADS, DIM, generator=gen)
        scatter_kv(k_cache, v_cache, table, k, v)
        qs.append(q)
        tables.append(table)
        expected.append(reference_attention(q, k, v, start, 0.3))
        expected_local.append(reference_attention(q, k, v, start, 0.3, window))
    n_dec = len(decode_ctx)
    groups = []
    if n_dec:
        groups.append(build_group(0, [1] * n_dec, [s for s, _ in seqs[:n_dec]], tables[:n_dec],
                                  BLOCK, num_blocks, torch.device("cpu"), window=window))
    if prefill:
        groups.append(build_group(n_dec, [q for _, q in prefill], [s for s, _ in prefill],
                                  tables[n_dec:], BLOCK, num_blocks, torch.device("cpu"),
                                  window=window))
    meta = AttentionMetadata(torch.empty(0, dtype=torch.int64), groups, 0.3)
    for local, want in ((False, expected), (True, expected_local)):  # full, then local
        out = paged_attention(torch.cat(qs), k_cache, v_cache, meta, local=local)
        torch.testing.assert_close(out, torch.cat(want), atol=1e-5, rtol=1e-5)


def test_padding_never_reads_other_sequences() -> None:
    """Poisoned (NaN-free but huge) values outside a sequence's range must not leak in."""
    k_cache = torch.full((KV_HEADS, 5, BLOCK, DIM), 1e4)
    v_cache = torch.full_like(k_cache, 1e4)
    k = torch.randn(3, KV_HEADS, DIM)
    v = torch.randn(3, KV_HEADS, DIM)
    scatter_kv(k_cache, v_cache, [2], k, v)
    q = torch.randn(1, HEADS, DIM)
    group = build_group(0, [1], [2], [[2]], BLOCK, 4, torch.device("cpu"), max_blocks=3)
    out = paged_attention(q, k_cache, v_cache,
                          AttentionMetadata(torch.empty(0, dtype=torch.int64), [group], 0.5))
    torch.testing.assert_close(out, reference_attention(q, k, v, 2, 0.5))


@settings(max_examples=60, deadline=None)
@given(
    decode_ctx=st.lists(st.integers(1, 60), max_size=5),
    prefill=st.lists(st.tuples(st.integers(0, 50), st.integers(1, 12)), max_size=3),
    seed=st.integers(0, 1000),
    window=st.integers(1, 16),
)
def test_trimmed_local_view_matches_dense_with_a_window(
        decode_ctx: list[int], prefill: list[tuple[int, int]], seed: int, window: int) -> None:
    """Local layers over their own pool: each sequence's table has its released leading
    entries pointing at the null block and those physical blocks hold NaN (another
    sequence's by now), so reading one would poison the output; the gather is trimmed
    to the window and must equal dense attention with the window."""
    if not decode_ctx and not prefill:
        return
    gen = torch.Generator().manual_seed(seed)
    rng = random.Random(seed)
    num_blocks = 200
    null = num_blocks
    k_cache = torch.zeros(KV_HEADS, num_blocks + 1, BLOCK, DIM)
    v_cache = torch.zeros_like(k_cache)
    free = list(range(num_blocks))
    rng.shuffle(free)
    seqs = [(n - 1, 1) for n in decode_ctx] + prefill
    qs, expected, tables = [], [], []
    for start, q_len in seqs:
        total = start + q_len
        table = [free.pop() for _ in range(-(-total // BLOCK))]
        k = torch.randn(total, KV_HEADS, DIM, generator=gen)
        v = torch.randn(total, KV_HEADS, DIM, generator=gen)
        q = torch.randn(q_len, HEADS, DIM, generator=gen)
        scatter_kv(k_cache, v_cache, table, k, v)
        dead = dead_blocks(start, window, BLOCK)
        for b in table[:dead]:
            k_cache[:, b] = float("nan")
            v_cache[:, b] = float("nan")
        qs.append(q)
        tables.append([null] * dead + table[dead:])
        expected.append(reference_attention(q, k, v, start, 0.3, window))
    n_dec = len(decode_ctx)
    cpu = torch.device("cpu")
    groups = []
    parts = [(0, seqs[:n_dec], tables[:n_dec]), (n_dec, seqs[n_dec:], tables[n_dec:])]
    for first, part, part_tables in parts:
        if part:
            # The global view is never used by local layers; give it the null block.
            groups.append(build_group(first, [q for _, q in part], [s for s, _ in part],
                                      [[null] * len(t) for t in part_tables], BLOCK, null,
                                      cpu, window=window, local_block_tables=part_tables,
                                      local_null_block=null))
    for g, (_, part, _) in zip(groups, [p for p in parts if p[1]], strict=True):
        assert g.local_block_index is not None
        widest = max(-(-(window + q - 1) // BLOCK) + 1 for _, q in part)
        assert g.local_block_index.shape[1] <= widest  # about a window, not the context
    meta = AttentionMetadata(torch.empty(0, dtype=torch.int64), groups, 0.3)
    out = paged_attention(torch.cat(qs), k_cache, v_cache, meta, local=True)
    torch.testing.assert_close(out, torch.cat(expected), atol=1e-5, rtol=1e-5)


def test_metadata_picks_the_pool_of_a_layer() -> None:
    slots, local = torch.tensor([1, 2]), torch.tensor([3, 4])
    meta = AttentionMetadata(slots, [], 1.0, local)
    assert meta.slots(False) is slots and meta.slots(True) is local
    plain = AttentionMetadata(slots, [], 1.0)
    assert plain.slots(True) is slots
