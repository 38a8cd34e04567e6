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
)
def test_mixed_batch_matches_dense(decode_ctx: list[int], prefill: list[tuple[int, int]],
                                   seed: int) -> None:
    """Decodes (context n, one query) and prefill slices (start s, length q) in one batch."""
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
    qs, expected, tables = [], [], []
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
    n_dec = len(decode_ctx)
    groups = []
    if n_dec:
        groups.append(build_group(0, [1] * n_dec, [s for s, _ in seqs[:n_dec]], tables[:n_dec],
                                  BLOCK, num_blocks, torch.device("cpu")))
    if prefill:
        groups.append(build_group(n_dec, [q for _, q in prefill], [s for s, _ in prefill],
                                  tables[n_dec:], BLOCK, num_blocks, torch.device("cpu")))
    meta = AttentionMetadata(torch.empty(0, dtype=torch.int64), groups, 0.3)
    out = paged_attention(torch.cat(qs), k_cache, v_cache, meta)
    torch.testing.assert_close(out, torch.cat(expected), atol=1e-5, rtol=1e-5)


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
