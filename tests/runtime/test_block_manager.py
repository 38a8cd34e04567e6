"""Paged KV bookkeeping: ref counts, prefix reuse, copy-on-write, eviction."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from chorusline.runtime.block_manager import BlockManager, NoFreeBlocksError
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
