"""Continuous batching behaviour, one rule per test, driven by a fake model."""

from __future__ import annotations

import subprocess
import sys

import pytest

from chorusline.runtime.block_manager import BlockManager
from chorusline.runtime.scheduler import Scheduler, SchedulerConfig, SchedulerOutput
from chorusline.runtime.sequence import SequenceGroup, SequenceStatus, TokenSequence


def next_token(history: list[int]) -> int:
    """A deterministic 'model': the next token depends on the whole history."""
    return (sum(history) * 31 + len(history)) % 997 + 1


def step(sched: Scheduler) -> tuple[SchedulerOutput, list[TokenSequence]]:
    out = sched.schedule()
    sampled = {s.seq_id: next_token(s.all_token_ids) for sl in out.slices for s in sl.sample_seqs}
    finished = sched.on_step_finished(out, sampled)
    sched.block_manager.check_invariants()
    return out, finished


def make(
    blocks: int = 64,
    block_size: int = 4,
    budget: int = 16,
    max_seqs: int = 8,
    chunked_prefill: bool = True,
    max_model_len: int = 8192,
) -> Scheduler:
    cfg = SchedulerConfig(budget, max_seqs, chunked_prefill, max_model_len)
    return Scheduler(cfg, BlockManager(blocks, block_size))


def req(
    rid: str,
    n_prompt: int,
    max_tokens: int = 4,
    base: int = 0,
    priority: int = 0,
    tenant: str = "",
    arrival: float | None = None,
) -> SequenceGroup:
    return SequenceGroup.create(
        rid, [base + i for i in range(n_prompt)], max_tokens=max_tokens,
        priority=priority, tenant=tenant, arrival=arrival,
    )


def run_to_end(sched: Scheduler, limit: int = 500) -> list[SchedulerOutput]:
    outs = []
    while sched.has_unfinished():
        outs.append(step(sched)[0])
        assert len(outs) < limit, "no progress"
    return outs


def test_chunked_prefill_splits_a_long_prompt_within_budget() -> None:
    sched = make(budget=8)
    g = req("r", 20, max_tokens=2)
    sched.add(g)
    outs = run_to_end(sched)
    prefill = [(sl.start, sl.num_tokens, sl.sample) for o in outs for sl in o.slices][:3]
    assert prefill == [(0, 8, False), (8, 8, False), (16, 4, True)]
    assert all(o.num_batched_tokens <= 8 for o in outs)
    assert g.leader.status is SequenceStatus.FINISHED_LENGTH
    assert len(g.leader.output_token_ids) == 2
    assert sched.block_manager.usage().used == 0


def test_slice_carries_positions_slots_and_table() -> None:
    sched = make(budget=8)
    sched.add(req("r", 6))
    (sl,) = sched.schedule().slices
    assert sl.token_ids == tuple(range(6)) and list(sl.positions) == list(range(6))
    assert sl.context_len == 6 and sl.is_prefill and sl.sample_seq_ids == (sl.seq_id,)
    bs = 4
    assert sl.slot_mapping == tuple(sl.block_table[p // bs] * bs + p % bs for p in range(6))


def test_without_chunking_a_prompt_waits_for_a_whole_step() -> None:
    sched = make(budget=16, chunked_prefill=False, max_model_len=16)
    sched.add(req("a", 10))
    sched.add(req("b", 10, base=50))
    out, _ = step(sched)
    assert [sl.num_tokens for sl in out.slices] == [10]
    out, _ = step(sched)
    assert sorted(sl.num_tokens for sl in out.slices) == [1, 10]


def test_decodes_are_scheduled_before_new_prefill() -> None:
    sched = make(budget=8, max_seqs=4)
    sched.add(req("a", 3, max_tokens=10))
    sched.add(req("b", 3, max_tokens=10))
    step(sched)  # both prefilled (3 + 3 <= 8)
    sched.add(req("c", 30))
    out, _ = step(sched)
    kinds = [(sl.request_id, sl.num_tokens) for sl in out.slices]
    assert kinds == [("a", 1), ("b", 1), ("c", 6)]


def test_preemption_under_block_pressure_resumes_with_identical_history() -> None:
    def outputs(blocks: int) -> tuple[dict[str, list[int]], int]:
        sched = make(blocks=blocks, block_size=2, budget=8, max_seqs=4)
        groups = [req(f"r{i}", 5, max_tokens=8, base=10 * i) for i in range(3)]
        for g in groups:
            sched.add(g)
        run_to_end(sched)
        assert sched.block_manager.usage().used == 0
        return {g.request_id: g.leader.output_token_ids for g in groups}, sched.num_preemptions

    roomy, none = outputs(blocks=64)
    tight, some = outputs(blocks=8)  # one sequence needs ceil(12 / 2) = 6 blocks
    assert none == 0 and some > 0
    assert tight == roomy


def test_preempted_sequence_recomputes_prompt_and_output() -> None:
    sched = make(blocks=6, block_size=2, budget=8, max_seqs=2)
    a, b = req("a", 4, max_tokens=6), req("b", 4, max_tokens=6, base=50)
    sched.add(a)
    sched.add(b)
    victim = None
    for _ in range(20):
        out, _ = step(sched)
        if out.preempted:
            (victim,) = out.preempted
            break
    assert victim is b.leader  # admitted later, so preempted first
    assert victim.status is SequenceStatus.PREEMPTED and victim.num_computed_tokens == 0
    kept = list(victim.output_token_ids)
    assert kept
    for _ in range(50):
        out, _ = step(sched)
        resumed = [sl for sl in out.slices if sl.seq is victim]
        if resumed:
            break
    (sl,) = resumed
    assert sl.start % 2 == 0  # from scratch or after a cached prefix
    assert sl.context_len == 4 + len(kept)  # re-prefills prompt + kept output
    run_to_end(sched)
    assert victim.output_token_ids[: len(kept)] == kept


def test_abort_frees_blocks_at_once() -> None:
    sched = make(budget=8)
    sched.add(req("run", 6, max_tokens=50))
    sched.add(SequenceGroup.create("fork", [7] * 5, n=3, max_tokens=50))
    step(sched)
    step(sched)
    assert sched.num_running == 4
    bm = sched.block_manager
    used = bm.usage().used
    aborted = sched.abort("fork")
    assert len(aborted) == 3 and all(s.status is SequenceStatus.FINISHED_ABORTED for s in aborted)
    assert bm.usage().used < used and sched.num_running == 1
    bm.check_invariants()
    assert sched.abort("fork") == [] and sched.abort("unknown") == []
    sched.abort("run")
    assert bm.usage().used == 0 and not sched.has_unfinished()


def test_abort_between_schedule_and_update_is_harmless() -> None:
    sched = make(budget=8)
    sched.add(req("a", 5, max_tokens=3))
    out = sched.schedule()
    sched.abort("a")
    assert sched.block_manager.usage().used == 0
    assert sched.on_step_finished(out, {sl.seq_id: 1 for sl in out.slices}) == []
    assert not sched.has_unfinished()


def test_abort_of_waiting_request_and_unforked_siblings() -> None:
    sched = make(budget=4, max_seqs=4)
    sched.add(req("busy", 4, max_tokens=20))
    sched.add(SequenceGroup.create("n3", [1, 2, 3], n=3))
    step(sched)
    assert sched.num_waiting == 3
    assert len(sched.abort("n3")) == 3
    assert sched.num_waiting == 0


def test_abort_with_a_reason_ends_a_preempted_request() -> None:
    sched = make(blocks=6, block_size=2, budget=8, max_seqs=2)
    sched.add(req("a", 4, max_tokens=6))
    sched.add(req("b", 4, max_tokens=6, base=50))
    for _ in range(20):
        out, _ = step(sched)
        if out.preempted:
            break
    (victim,) = out.preempted
    assert victim.status is SequenceStatus.PREEMPTED
    with pytest.raises(ValueError):
        sched.abort(victim.request_id, SequenceStatus.RUNNING)
    assert victim.status is SequenceStatus.PREEMPTED  # a refused reason changes nothing
    (ended,) = sched.abort(victim.request_id, SequenceStatus.FINISHED_TIMEOUT)
    assert ended is victim and ended.status is SequenceStatus.FINISHED_TIMEOUT
    assert ended.status.finish_reason == "timeout" and sched.num_waiting == 0
    sched.block_manager.check_invariants()
    run_to_end(sched)
    assert sched.block_manager.usage().used == 0


def test_higher_priority_is_admitted_first_and_kept_first() -> None:
    sched = make(blocks=7, block_size=2, budget=8, max_seqs=2)
    low = req("low", 4, max_tokens=6, priority=1, arrival=0.0, base=80)
    high = req("high", 4, max_tokens=6, priority=0, arrival=1.0)
    mid = req("mid", 4, max_tokens=6, priority=0, arrival=2.0, base=40)
    for g in (low, high, mid):
        sched.add(g)
    order = [sl.request_id for o in run_to_end(sched) for sl in o.slices if sl.start == 0]
    assert order == ["high", "mid", "low"]
    assert high.leader.num_preemptions == 0


def test_lower_priority_is_preempted_before_higher() -> None:
    sched = make(blocks=6, block_size=2, budget=8, max_seqs=2)
    high = req("high", 4, max_tokens=6, priority=0, arrival=5.0)
    low = req("low", 4, max_tokens=6, priority=3, arrival=0.0, base=40)
    sched.add(low)
    sched.add(high)
    preempted: list[TokenSequence] = []
    while sched.has_unfinished():
        out, _ = step(sched)
        preempted += out.preempted
    assert preempted and all(s is low.leader for s in preempted)


def test_prefix_cache_skips_computing_cached_tokens() -> None:
    sched = make(budget=64)
    system = list(range(100, 112))  # three full blocks of 4
    a = SequenceGroup.create("a", [*system, 1, 2], max_tokens=1)
    sched.add(a)
    run_to_end(sched)
    b = SequenceGroup.create("b", [*system, 3, 4, 5], max_tokens=1)
    sched.add(b)
    out, _ = step(sched)
    (sl,) = out.slices
    assert sl.start == 12 and sl.token_ids == (3, 4, 5)
    assert b.leader.output_token_ids == [next_token([*system, 3, 4, 5])]


def test_n_choices_share_the_prompt_and_copy_on_write() -> None:
    sched = make(budget=16, block_size=4)
    g = SequenceGroup.create("n", [1, 2, 3, 4, 5, 6], n=3, max_tokens=3)
    sched.add(g)
    out, _ = step(sched)
    (sl,) = out.slices
    assert sl.sample_seq_ids == tuple(s.seq_id for s in g.seqs)
    bm = sched.block_manager
    tables = [bm.block_table(s.seq_id) for s in g.seqs]
    assert tables[0] == tables[1] == tables[2]
    assert bm.ref_count(tables[0][1]) == 3
    out, _ = step(sched)
    assert len(out.slices) == 3
    assert len(out.blocks_to_copy) == 2  # the last of the three owners writes in place
    assert all(src == tables[0][1] for src, _ in out.blocks_to_copy)
    run_to_end(sched)
    assert all(len(s.output_token_ids) == 3 for s in g.seqs)
    assert bm.usage().used == 0


def test_tenants_alternate_even_when_one_floods() -> None:
    sched = make(budget=64, max_seqs=1)
    for i in range(10):
        sched.add(req(f"flood{i}", 2, max_tokens=1, tenant="flood", arrival=float(i)))
    sched.add(req("quiet0", 2, max_tokens=1, tenant="quiet", arrival=100.0))
    sched.add(req("quiet1", 2, max_tokens=1, tenant="quiet", arrival=101.0))
    order = [sl.request_id for o in run_to_end(sched) for sl in o.slices]
    assert order[:5] == ["flood0", "quiet0", "flood1", "quiet1", "flood2"]


def test_engine_can_finish_a_sequence_and_stop_tokens_finish() -> None:
    sched = make()
    g = req("s", 3, max_tokens=10)
    stop = next_token([0, 1, 2])
    h = SequenceGroup.create("t", [0, 1, 2], max_tokens=10, stop_token_ids=[stop])
    sched.add(g)
    sched.add(h)
    _, finished = step(sched)
    assert finished == [h.leader] and h.leader.status is SequenceStatus.FINISHED_STOPPED
    assert sched.finish(g.leader.seq_id, SequenceStatus.FINISHED_STOPPED) is g.leader
    assert sched.finish(g.leader.seq_id, SequenceStatus.FINISHED_STOPPED) is None
    assert not sched.has_unfinished() and sched.block_manager.usage().used == 0
    with pytest.raises(ValueError):
        sched.finish(0, SequenceStatus.RUNNING)


def test_length_is_capped_by_model_len_and_pool() -> None:
    sched = make(blocks=3, block_size=4)  # the pool holds 12 tokens
    assert sched.max_seq_len == 12
    g = req("long", 8, max_tokens=100)
    sched.add(g)
    run_to_end(sched)
    assert g.leader.status is SequenceStatus.FINISHED_LENGTH and g.leader.num_tokens == 12


def test_add_rejects_requests_that_can_never_run() -> None:
    sched = make(blocks=3, block_size=4, max_seqs=2)
    with pytest.raises(ValueError):
        sched.add(req("too-long", 12))
    with pytest.raises(ValueError):
        sched.add(SequenceGroup.create("too-many", [1], n=3))
    sched.add(req("ok", 2))
    with pytest.raises(ValueError):
        sched.add(req("ok", 2))


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        SchedulerConfig(max_num_batched_tokens=4, max_num_seqs=8)
    with pytest.raises(ValueError):
        SchedulerConfig(max_num_batched_tokens=64, chunked_prefill=False, max_model_len=128)


def test_missing_sampled_token_is_an_error() -> None:
    sched = make()
    sched.add(req("a", 2))
    out = sched.schedule()
    with pytest.raises(ValueError):
        sched.on_step_finished(out, {})


def test_runtime_core_does_not_import_torch_or_async_frameworks() -> None:
    code = (
        "import sys, chorusline.runtime.scheduler, chorusline.runtime.block_manager, "
        "chorusline.runtime.sequence; "
        "bad = {'torch', 'trio', 'pykka'} & set(sys.modules); assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_more_important_arrival_takes_the_place_of_a_less_important_one() -> None:
    sched = make(budget=8, max_seqs=1)
    low = req("low", 3, max_tokens=20, priority=2)
    sched.add(low)
    step(sched)
    high = req("high", 3, max_tokens=2, priority=0, base=50)
    sched.add(high)
    out, _ = step(sched)
    assert out.preempted == (low.leader,)
    assert [sl.request_id for sl in out.slices] == ["high"]
    while high.leader.status is SequenceStatus.RUNNING:
        step(sched)
    kept = list(low.leader.output_token_ids)
    run_to_end(sched)
    assert low.leader.output_token_ids[: len(kept)] == kept
    # Equal priority never displaces a running sequence.
    sched.add(req("a", 3, max_tokens=20, priority=1))
    step(sched)
    sched.add(req("b", 3, max_tokens=2, priority=1, base=50))
    out, _ = step(sched)
    assert not out.preempted and [sl.request_id for sl in out.slices] == ["a"]


# -- a local pool for sliding-window layers -------------------------------------------------


def make_local(window: int = 4, local: int = 5, blocks: int = 64, block_size: int = 2,
               budget: int = 16, max_seqs: int = 8) -> Scheduler:
    bm = BlockManager(blocks, block_size, sliding_window=window, num_local_blocks=local)
    return Scheduler(SchedulerConfig(budget, max_seqs), bm)


def assert_pools_full(sched: Scheduler) -> None:
    bm = sched.block_manager
    assert bm.num_free_blocks == bm.num_blocks
    assert bm.num_free_local_blocks == bm.num_local_blocks
    local = bm.local_usage()
    assert bm.usage().used == 0 and local is not None and local.used == 0


def test_admission_waits_for_the_local_pool() -> None:
    """Plenty of global blocks and budget, but the local pool holds one prompt's blocks:
    the second prompt is admitted once the first one's old blocks leave the window."""
    sched = make_local(window=4, local=5)
    sched.add(req("a", 6, max_tokens=6))
    sched.add(req("b", 6, max_tokens=6, base=50))
    out, _ = step(sched)
    assert [sl.request_id for sl in out.slices] == ["a"] and out.num_batched_tokens == 6
    assert sched.block_manager.num_free_blocks > 50
    # a computed 6: its block of positions 0..1 went back, but its decode at 6 takes a
    # new one, leaving 2 of the 3 that b needs.
    out, _ = step(sched)
    assert [(sl.request_id, sl.num_tokens) for sl in out.slices] == [("a", 1)]
    out, _ = step(sched)  # a at 7 lets 2..3 go and writes into its block of 6..7
    assert [(sl.request_id, sl.num_tokens) for sl in out.slices] == [("a", 1), ("b", 6)]
    run_to_end(sched)
    assert_pools_full(sched)


def test_slices_are_cut_to_what_the_local_pool_holds() -> None:
    sched = make_local(window=4, local=5, budget=16)
    assert sched.max_slice_tokens == (5 - 1) * 2 - 4 + 2 == 6
    sched.add(req("long", 20, max_tokens=2))
    outs = run_to_end(sched)
    assert [sl.num_tokens for o in outs for sl in o.slices] == [6, 6, 6, 2, 1]
    assert_pools_full(sched)
    with pytest.raises(ValueError, match="local pool"):
        Scheduler(SchedulerConfig(32, 4, chunked_prefill=False, max_model_len=32),
                  BlockManager(64, 2, sliding_window=4, num_local_blocks=5))


def test_finish_abort_and_preempt_give_both_pools_back() -> None:
    def history(local: int) -> tuple[dict[str, list[int]], Scheduler]:
        sched = make_local(window=4, local=local, blocks=12, budget=8, max_seqs=4)
        groups = [req(f"r{i}", 7, max_tokens=9, base=10 * i) for i in range(3)]
        groups.append(SequenceGroup.create("fork", [3] * 5, n=2, max_tokens=9))
        for g in groups:
            sched.add(g)
        run_to_end(sched)
        assert_pools_full(sched)
        return {g.request_id: g.leader.output_token_ids for g in groups}, sched

    roomy, calm = history(local=64)
    tight, busy = history(local=5)
    assert tight == roomy
    # 12 global blocks of 2 cannot hold every sequence; the local pool adds some more.
    assert busy.num_preemptions > calm.num_preemptions > 0
    sched = make_local(window=4, local=8, budget=8)
    sched.add(req("a", 9, max_tokens=30))
    sched.add(SequenceGroup.create("n2", [5] * 6, n=2, max_tokens=30))
    for _ in range(4):
        step(sched)
    assert sched.num_running == 3 and sched.block_manager.num_free_local_blocks < 8
    sched.abort("n2")
    sched.abort("a")
    assert_pools_full(sched)
    sched.block_manager.check_invariants()


def test_slices_carry_local_tables_and_slots() -> None:
    sched = make_local(window=4, local=8, budget=8)
    sched.add(req("a", 12, max_tokens=3))
    out, _ = step(sched)  # positions 0..7
    out, _ = step(sched)  # 8..11: the first query (8) sees 5.. so block 2 (4..5) is held
    (sl,) = out.slices
    bm = sched.block_manager
    null = bm.local_null_block
    assert sl.local_block_table[:2] == (null, null) and null not in sl.local_block_table[2:]
    assert len(sl.local_block_table) == len(sl.block_table) == 6
    assert sl.local_slot_mapping == tuple(
        sl.local_block_table[p // 2] * 2 + p % 2 for p in sl.positions)
    plain = make(budget=8)
    plain.add(req("a", 5))
    (sl,) = plain.schedule().slices
    assert sl.local_block_table == () and sl.local_slot_mapping == ()
