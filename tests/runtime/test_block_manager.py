"""Paged KV bookkeeping: ref counts, prefix reuse, copy-on-write, eviction, and the local
pool of sliding-window layers (released exactly as blocks leave the window)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from chorusline.runtime.block_manager import (
    BlockManager,
    NoFreeBlocksError,
    dead_blocks,
    local_blocks_needed,
    local_blocks_per_seq,
)
from chorusline.runtime.sequence import TokenSequence


def seq(tokens: list[int], computed: int = 0) -> TokenSequence:
    s = TokenSequence(request_id="r", prompt_token_ids=list(tokens))
    s.num_computed_tokens = computed
    return s


def compute_all(bm: BlockManager, s: TokenSequence) -> None:
    """What the scheduler does after a step that computed the whole sequence."""
    s.num_computed_tokens = s.num_tokens
    bm.mark_computed(s)


def test_allocate_free_returns_pool_to_full() -> None:
    bm = BlockManager(num_blocks=8, block_size=4)
    a, b = seq(list(range(10))), seq(list(range(50, 53)))
    assert bm.allocate(a, 10) == 0
    assert bm.allocate(b, 3) == 0
    assert len(bm.block_table(a.seq_id)) == 3 and len(bm.block_table(b.seq_id)) == 1
    assert bm.num_free_blocks == 4
    bm.check_invariants()
    bm.free(a)
    bm.free(b)
    bm.free(b)  # idempotent
    assert bm.num_free_blocks == 8
    assert bm.usage().used == 0
    bm.check_invariants()


def test_slot_mapping_follows_block_table() -> None:
    bm = BlockManager(num_blocks=4, block_size=4)
    bm.allocate(seq([9] * 3), 3)  # takes block 0
    s = seq(list(range(6)))
    bm.allocate(s, 6)
    t = bm.block_table(s.seq_id)
    assert bm.slot_mapping(s.seq_id, 2, 4) == [t[0] * 4 + 2, t[0] * 4 + 3, t[1] * 4, t[1] * 4 + 1]


def test_prefix_hit_reuses_identical_blocks_and_keeps_last_token() -> None:
    bm = BlockManager(num_blocks=16, block_size=4)
    system = list(range(100, 108))  # two full blocks
    a = seq([*system, 1, 2])
    bm.allocate(a, a.num_tokens)
    compute_all(bm, a)
    b = seq([*system, 3])
    assert bm.num_cached_tokens(b) == 8
    assert bm.allocate(b, b.num_tokens) == 8
    assert bm.block_table(b.seq_id)[:2] == bm.block_table(a.seq_id)[:2]
    assert bm.ref_count(bm.block_table(a.seq_id)[0]) == 2
    # An exact repeat of a block-aligned prompt still computes its last token.
    c = seq(system)
    assert bm.num_cached_tokens(c) == 4
    bm.check_invariants()


def test_no_hit_before_the_kv_is_computed() -> None:
    bm = BlockManager(num_blocks=8, block_size=4)
    a = seq(list(range(9)))
    bm.allocate(a, 9)
    assert bm.num_cached_tokens(seq(list(range(9)))) == 0
    a.num_computed_tokens = 5  # first block done, second not
    bm.mark_computed(a)
    assert bm.num_cached_tokens(seq(list(range(9)))) == 4


def test_same_block_tokens_after_a_different_prefix_are_not_reused() -> None:
    bm = BlockManager(num_blocks=16, block_size=2)
    x, x2, y, z = [1, 2], [3, 4], [5, 6], [7, 8]
    for tokens in ([*x, *y, 0], [*x2, *z, 0]):
        s = seq(tokens)
        bm.allocate(s, s.num_tokens)
        compute_all(bm, s)
    # First block matches the second sequence, second block matches only the first
    # sequence's (computed after another prefix): only the first may be reused.
    assert bm.num_cached_tokens(seq([*x2, *y, 0])) == 2
    assert bm.num_cached_tokens(seq([*x, *y, 0])) == 4
    assert bm.num_cached_tokens(seq([9, 9, *y, 0])) == 0


def test_freed_prefix_stays_cached_until_memory_is_needed() -> None:
    bm = BlockManager(num_blocks=4, block_size=2)
    a = seq([1, 2, 3, 4, 5])
    bm.allocate(a, 5)
    compute_all(bm, a)
    first_two = bm.block_table(a.seq_id)[:2]
    bm.free(a)
    assert bm.usage().cached == 2 and bm.num_free_blocks == 4
    b = seq([1, 2, 3, 4, 9])
    assert bm.can_allocate(b, 5)
    assert bm.allocate(b, 5) == 4
    assert bm.block_table(b.seq_id)[:2] == first_two
    bm.free(b)
    # Filling the pool with unrelated work evicts the cache (tail block first).
    c = seq(list(range(20, 27)))
    bm.allocate(c, 7)
    assert bm.usage().cached == 0
    assert bm.num_cached_tokens(seq([1, 2, 3, 4, 9])) == 0
    bm.check_invariants()


def test_fork_then_append_copies_the_shared_last_block() -> None:
    bm = BlockManager(num_blocks=8, block_size=4)
    parent = seq([1, 2, 3, 4, 5, 6])
    bm.allocate(parent, 6)
    compute_all(bm, parent)
    child = seq([1, 2, 3, 4, 5, 6], computed=6)
    bm.fork(parent, child)
    full, last = bm.block_table(parent.seq_id)
    assert bm.ref_count(last) == 2
    parent.output_token_ids.append(7)
    assert bm.can_append(parent, 1)
    copies = bm.append_slots(parent, 1)
    assert len(copies) == 1 and copies[0][0] == last
    new_last = copies[0][1]
    assert bm.block_table(parent.seq_id) == [full, new_last]
    assert bm.ref_count(last) == 1 and bm.ref_count(full) == 2
    child.output_token_ids.append(8)
    assert bm.append_slots(child, 1) == []  # now the only owner: write in place
    bm.check_invariants()
    bm.free(parent)
    bm.free(child)
    assert bm.num_free_blocks == 8


def test_full_shared_blocks_are_never_copied() -> None:
    bm = BlockManager(num_blocks=8, block_size=2)
    parent = seq([1, 2, 3, 4])
    bm.allocate(parent, 4)
    compute_all(bm, parent)
    child = seq([1, 2, 3, 4], computed=4)
    bm.fork(parent, child)
    parent.output_token_ids.append(5)
    assert bm.append_slots(parent, 1) == []
    assert len(bm.block_table(parent.seq_id)) == 3


def test_exhaustion_is_reported_not_overcommitted() -> None:
    bm = BlockManager(num_blocks=2, block_size=2)
    a = seq([1, 2, 3])
    assert not bm.can_allocate(a, 5)
    with pytest.raises(NoFreeBlocksError):
        bm.allocate(a, 5)
    bm.allocate(a, 3)
    a.num_computed_tokens = 3
    a.output_token_ids.append(4)
    assert bm.can_append(a, 1)
    bm.append_slots(a, 1)
    a.num_computed_tokens = 4
    a.output_token_ids.append(5)
    assert not bm.can_append(a, 1)
    with pytest.raises(NoFreeBlocksError):
        bm.append_slots(a, 1)
    bm.check_invariants()


def test_prefix_caching_off_never_hits() -> None:
    bm = BlockManager(num_blocks=8, block_size=2, enable_prefix_caching=False)
    a = seq([1, 2, 3, 4, 5])
    bm.allocate(a, 5)
    compute_all(bm, a)
    bm.free(a)
    assert bm.usage().cached == 0
    assert bm.num_cached_tokens(seq([1, 2, 3, 4, 5])) == 0


@settings(deadline=None, max_examples=60)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 5), st.integers(1, 9)), max_size=40))
def test_invariants_under_random_operations(ops: list[tuple[int, int, int]]) -> None:
    bm = BlockManager(num_blocks=10, block_size=3)
    live: list[TokenSequence] = []
    prefixes = [[1, 2, 3, 4, 5, 6], [1, 2, 3, 7, 8, 9], [4, 4, 4]]
    for op, pick, size in ops:
        if op == 0:  # admit a sequence sharing a common prefix, computed in full
            s = seq(prefixes[pick % 3][: size] or [1])
            need = s.num_tokens
            if bm.can_allocate(s, need):
                assert bm.allocate(s, need) % bm.block_size == 0
                compute_all(bm, s)
                live.append(s)
        elif op == 1 and live:  # grow by one sampled token
            s = live[pick % len(live)]
            s.output_token_ids.append(size)
            if bm.can_append(s, 1):
                bm.append_slots(s, 1)
                compute_all(bm, s)
            else:
                s.output_token_ids.pop()
        elif op == 2 and live:  # fork
            p = live[pick % len(live)]
            c = seq(p.prompt_token_ids, computed=p.num_tokens)
            c.output_token_ids = list(p.output_token_ids)
            bm.fork(p, c)
            live.append(c)
        elif op == 3 and live:
            bm.free(live.pop(pick % len(live)))
        bm.check_invariants()
        for s in live:
            assert len(bm.block_table(s.seq_id)) * bm.block_size >= s.num_computed_tokens
    for s in live:
        bm.free(s)
    bm.check_invariants()
    assert bm.num_free_blocks == bm.num_blocks


# -- the local pool (sliding-window layers) ------------------------------------------------


def local_bm(window: int = 5, block_size: int = 2, blocks: int = 32, local: int = 8,
             caching: bool = True) -> BlockManager:
    return BlockManager(blocks, block_size, caching, sliding_window=window,
                        num_local_blocks=local)


def grow(bm: BlockManager, s: TokenSequence, n: int) -> list[tuple[int, int]]:
    """Append ``n`` tokens' slots, compute them, book the step; the local copies."""
    local: list[tuple[int, int]] = []
    bm.append_slots(s, n, local)
    s.num_computed_tokens += n
    bm.mark_computed(s)
    return local


def visible(i: int, n: int, window: int, bs: int) -> bool:
    """Whether any key of logical block i is seen by a query at position >= n."""
    return (i + 1) * bs - 1 > n - window


def test_dead_blocks_is_the_window_rule() -> None:
    for window in range(1, 9):
        for bs in range(1, 5):
            for n in range(40):
                dead = dead_blocks(n, window, bs)
                assert all(not visible(i, n, window, bs) for i in range(dead))
                assert visible(dead, n, window, bs)


def test_local_blocks_are_released_as_they_leave_the_window() -> None:
    bm = local_bm(window=5, block_size=2)
    null = bm.local_null_block
    s = seq(list(range(3)))
    bm.allocate(s, 3)
    s.num_computed_tokens = 3
    bm.mark_computed(s)
    assert null not in bm.local_block_table(s.seq_id)  # position 0 is still seen by q=3
    for _ in range(12):
        s.output_token_ids.append(1)
        grow(bm, s, 1)
        n = s.num_computed_tokens
        table = bm.local_block_table(s.seq_id)
        assert [b == null for b in table] == [not visible(i, n, 5, 2)
                                              for i in range(len(table))]
        bm.check_invariants()
    assert len(bm.block_table(s.seq_id)) == 8  # the global table keeps everything
    assert bm.usage().used == 8 and bm.local_usage().used == 3  # type: ignore[union-attr]
    bm.free(s)
    assert bm.num_free_blocks == 32 and bm.num_free_local_blocks == 8
    bm.check_invariants()


def test_a_chunk_keeps_what_its_first_query_needs_until_it_is_computed() -> None:
    """Freeing goes by positions computed: the blocks a chunk's earliest query reads
    stay until the step that computed the chunk is booked."""
    bm = local_bm(window=5, block_size=2, local=16)
    s = seq(list(range(30)))
    bm.allocate(s, 8)
    s.num_computed_tokens = 8
    bm.mark_computed(s)
    before = bm.local_block_table(s.seq_id)
    assert before[:2] == [bm.local_null_block] * 2  # 0..3 unseen from q >= 8; 4 is seen
    bm.append_slots(s, 10, [])  # the chunk 8..17 needs keys from 4: nothing released yet
    assert bm.local_block_table(s.seq_id)[:4] == before[:4]
    s.num_computed_tokens = 18
    bm.mark_computed(s)
    assert bm.local_block_table(s.seq_id)[:7] == [bm.local_null_block] * 7
    bm.check_invariants()


def test_admission_needs_both_pools() -> None:
    window, bs = 5, 2
    least = local_blocks_per_seq(window, bs, 1)
    bm = local_bm(window, bs, blocks=64, local=least + 2)
    a = seq(list(range(20)))
    assert not bm.can_allocate(a, 20)  # 10 global blocks are free, 10 local ones are not
    with pytest.raises(NoFreeBlocksError):
        bm.allocate(a, 20)
    assert bm.can_allocate(a, 10)
    bm.allocate(a, 10)
    b = seq(list(range(50, 55)))
    assert bm.num_free_blocks > 50 and not bm.can_allocate(b, 5)
    a.num_computed_tokens = 10
    bm.mark_computed(a)  # 3 of a's 5 local blocks leave the window
    assert bm.can_allocate(b, 5)
    bm.check_invariants()


def test_append_needs_both_pools_and_a_local_copies_list() -> None:
    bm = local_bm(window=5, block_size=2, local=local_blocks_per_seq(5, 2, 1))
    s = seq(list(range(4)))
    bm.allocate(s, 4)
    s.num_computed_tokens = 4
    bm.mark_computed(s)
    s.output_token_ids.extend([1, 2, 3])
    with pytest.raises(ValueError, match="local_copies"):
        bm.append_slots(s, 1)
    assert not bm.can_append(s, 3)  # blocks of 0..6 all seen from q=4: one too many
    assert bm.can_append(s, 1)
    assert bm.max_slice_tokens == 1


def test_fork_shares_local_blocks_and_copies_on_write() -> None:
    bm = local_bm(window=5, block_size=2, local=16)
    parent = seq(list(range(9)))
    bm.allocate(parent, 9)
    parent.num_computed_tokens = 9
    bm.mark_computed(parent)
    child = seq(list(range(9)), computed=9)
    bm.fork(parent, child)
    table = bm.local_block_table(parent.seq_id)
    assert bm.local_block_table(child.seq_id) == table
    last = table[-1]
    assert bm.local_ref_count(last) == 2
    parent.output_token_ids.append(1)
    local = grow(bm, parent, 1)
    assert len(local) == 1 and local[0][0] == last
    assert bm.local_block_table(parent.seq_id)[4] == local[0][1]
    child.output_token_ids.append(2)
    assert grow(bm, child, 1) == []  # the only owner now
    bm.check_invariants()
    bm.free(parent)
    bm.free(child)
    assert bm.num_free_local_blocks == 16 and bm.num_free_blocks == 32
    bm.check_invariants()


def test_prefix_hit_only_where_the_local_window_is_cached() -> None:
    """A global hit of h blocks is cut to the longest one whose first query's window
    is still cached in the local pool."""
    window, bs = 4, 2
    bm = local_bm(window, bs, blocks=32, local=8)
    prompt = list(range(12))
    a = seq(prompt)
    bm.allocate(a, 12)
    compute_all(bm, a)  # local blocks 0..3 leave the window (cached), 4..5 stay
    l2, l3 = bm.local_block_table(a.seq_id)[4:6]
    assert bm.local_block_table(a.seq_id)[:4] == [bm.local_null_block] * 4
    bm.free(a)
    assert bm.usage().cached == 6 and bm.local_usage().cached == 6  # type: ignore[union-attr]
    assert l2 != l3
    # f shares the first 8 tokens: hit of 4 blocks, its query at 8 needs local 2..3.
    f = seq([*prompt[:8], 77, 77, 77, 77, 77])
    assert bm.allocate(f, 13) == 8
    f_local = bm.local_block_table(f.seq_id)
    assert f_local[:2] == [bm.local_null_block] * 2
    # Evict every other cached local block (global ones stay cached).
    g = seq(list(range(200, 206)))
    bm.allocate(g, 6)
    assert bm.local_usage().cached == 0 and bm.usage().cached >= 2  # type: ignore[union-attr]
    q = seq([*prompt, 99])
    # All 6 global blocks are cached, but a hit at 12 or 10 needs local block 4, gone;
    # at 8 it needs 2..3, which f holds.
    assert bm.num_cached_tokens(q) == 8
    assert not bm.can_allocate(q, 13)  # the local pool is full
    bm.free(g)
    assert bm.allocate(q, 13) == 8
    q_local = bm.local_block_table(q.seq_id)
    assert q_local[:2] == [bm.local_null_block] * 2 and q_local[2:4] == f_local[2:4]
    assert bm.block_table(q.seq_id)[:4] == bm.block_table(f.seq_id)[:4]
    bm.check_invariants()
    bm.free(q)
    bm.free(f)
    assert bm.num_free_blocks == 32 and bm.num_free_local_blocks == 8
    bm.check_invariants()


def test_blocks_leaving_a_window_are_reclaimed_before_a_finished_window() -> None:
    """The next turn of a finished sequence needs the local blocks at its end; blocks
    that running sequences let go meanwhile are reclaimed before those."""
    bm = local_bm(window=4, block_size=2, blocks=64, local=10)
    a = seq(list(range(12)))
    bm.allocate(a, 12)
    compute_all(bm, a)
    bm.free(a)  # its last window (local blocks 4..5) is cached, as are 0..3
    d = seq(list(range(100, 108)))
    bm.allocate(d, 8)
    compute_all(bm, d)  # d lets 2 blocks go after a's window was cached
    e = seq(list(range(200, 212)))
    bm.allocate(e, 12)  # 6 blocks: 6 cached ones are reclaimed
    assert bm.num_cached_tokens(seq([*range(12), 99])) == 12
    bm.check_invariants()


def test_local_prefix_cache_off_with_caching_off() -> None:
    bm = local_bm(window=4, block_size=2, local=8, caching=False)
    a = seq(list(range(12)))
    bm.allocate(a, 12)
    compute_all(bm, a)
    bm.free(a)
    assert bm.num_free_local_blocks == 8
    assert bm.local_usage().cached == 0  # type: ignore[union-attr]
    assert bm.num_cached_tokens(seq([*range(12), 1])) == 0


@settings(deadline=None, max_examples=80)
@given(window=st.integers(1, 9), block_size=st.integers(1, 4), caching=st.booleans(),
       chunks=st.lists(st.integers(1, 9), min_size=1, max_size=12))
def test_local_blocks_freed_exactly_when_out_of_window(
        window: int, block_size: int, caching: bool, chunks: list[int]) -> None:
    """A sequence computed in random chunks: after each step the local table holds
    exactly the blocks some future query sees, the next chunk's earliest query finds
    its keys held, and both pools return to full at the end."""
    total = sum(chunks) + 1
    local = local_blocks_per_seq(window, block_size, max(chunks))
    bm = BlockManager(-(-total // block_size), block_size, caching, sliding_window=window,
                      num_local_blocks=local)
    s = seq(list(range(total)))
    null = bm.local_null_block
    bm.allocate(s, chunks[0])
    for i, n in enumerate(chunks):
        if i:
            assert bm.can_append(s, n)
            bm.append_slots(s, n, [])
        start = s.num_computed_tokens
        table = bm.local_block_table(s.seq_id)
        first_key = max(0, start - window + 1)  # what this chunk's first query reads
        assert null not in table[first_key // block_size:]
        s.num_computed_tokens += n
        bm.mark_computed(s)
        done = s.num_computed_tokens
        table = bm.local_block_table(s.seq_id)
        assert [b == null for b in table] == [not visible(j, done, window, block_size)
                                              for j in range(len(table))]
        assert bm.local_usage().used <= local  # type: ignore[union-attr]
        bm.check_invariants()
    bm.free(s)
    bm.check_invariants()
    assert bm.num_free_blocks == bm.num_blocks and bm.num_free_local_blocks == local


def test_local_pool_bounds_are_consistent() -> None:
    for window in (1, 5, 512):
        for bs in (1, 2, 8, 16):
            least = local_blocks_per_seq(window, bs, 1)
            bm = BlockManager(4, bs, sliding_window=window, num_local_blocks=least)
            assert bm.max_slice_tokens is not None and bm.max_slice_tokens >= 1
            assert local_blocks_per_seq(window, bs, bm.max_slice_tokens) <= least
            assert local_blocks_per_seq(window, bs, bm.max_slice_tokens + 1) > least
            assert local_blocks_needed(window, bs, 1, 1) >= least
    with pytest.raises(ValueError, match="cannot hold one"):
        BlockManager(4, 8, sliding_window=512, num_local_blocks=64)
    with pytest.raises(ValueError, match="go together"):
        BlockManager(4, 8, sliding_window=512)
