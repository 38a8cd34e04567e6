"""Properties of the scheduler + block manager over random workloads.

The fake model keeps a simulated KV cache: every step it performs the copy-on-write
copies, writes each slice's tokens at its slots, then reads every slice's context back
through its block table. The read must equal the sequence's true token history, so
prefix reuse, forking, copy-on-write and preemption are checked end to end, and the
sampled token is computed from what was read. With a sliding window the block manager
has a local pool too: the fake model also writes each slice into it and reads back the
positions the slice's queries see (the last ``window`` before each), which must equal
the history as well, so a local block released or reused too early is caught.

Stated bounds:
* budget: a step never computes more than ``max_num_batched_tokens`` tokens nor touches
  more than ``max_num_seqs`` sequences;
* liveness: with a pool that holds one maximal sequence, every request finishes or is
  aborted within ``LIVENESS_STEPS`` steps after the last arrival;
* fairness: while ``T`` tenants of one priority class all have waiting work, every run
  of ``T`` consecutive admissions includes each of them (so each gets at least
  ``floor(k / T)`` of any ``k`` such admissions, a ``1/T`` share), and when the pool
  never forces preemption a backlogged tenant waits at most ``T * (P + M + 1)`` steps
  between admissions (``P`` longest prompt, ``M`` largest ``max_tokens``): the
  longest-admitted running sequence finishes within ``P + M`` steps, freeing a place.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings, strategies as st

from chorusline.runtime.block_manager import (
    BlockManager,
    local_blocks_needed,
    local_blocks_per_seq,
)
from chorusline.runtime.scheduler import Scheduler, SchedulerConfig, SchedulerOutput
from chorusline.runtime.sequence import SequenceGroup, SequenceStatus, TokenSequence

LIVENESS_STEPS = 3000
MAX_PROMPT = 12
MAX_NEW = 6


def next_token(history: list[int]) -> int:
    return (sum(history) * 31 + len(history)) % 13 + 1


class FakeModel:
    def __init__(self, bm: BlockManager) -> None:
        self.bs = bm.block_size
        self.kv: list[int | None] = [None] * (bm.num_blocks * bm.block_size)
        self.window = bm.sliding_window
        self.null = bm.local_null_block
        # The null block's slots too: a read through a released entry finds None.
        self.local: list[int | None] = [None] * ((bm.num_local_blocks + 1) * bm.block_size)

    def run(self, out: SchedulerOutput) -> dict[int, int]:
        b = self.bs
        for src, dst in out.blocks_to_copy:
            self.kv[dst * b : (dst + 1) * b] = self.kv[src * b : (src + 1) * b]
        for src, dst in out.local_blocks_to_copy:
            self.local[dst * b : (dst + 1) * b] = self.local[src * b : (src + 1) * b]
        written: set[int] = set()
        local_written: set[int] = set()
        for sl in out.slices:
            assert not written & set(sl.slot_mapping), "two writers for one KV slot"
            written |= set(sl.slot_mapping)
            for slot, tok in zip(sl.slot_mapping, sl.token_ids, strict=True):
                self.kv[slot] = tok
            if self.window is not None:
                assert not local_written & set(sl.local_slot_mapping), "two local writers"
                assert all(s // b != self.null for s in sl.local_slot_mapping)
                local_written |= set(sl.local_slot_mapping)
                for slot, tok in zip(sl.local_slot_mapping, sl.token_ids, strict=True):
                    self.local[slot] = tok
        sampled = {}
        for sl in out.slices:
            ctx = [self.kv[sl.block_table[p // b] * b + p % b] for p in range(sl.context_len)]
            assert ctx == sl.seq.token_ids_slice(0, sl.context_len), "KV differs from history"
            if self.window is not None:
                seen = max(0, sl.start - self.window + 1)  # the first query's oldest key
                table = sl.local_block_table
                local = [self.local[table[p // b] * b + p % b]
                         for p in range(seen, sl.context_len)]
                assert local == sl.seq.token_ids_slice(seen, sl.context_len), "local KV"
            for s in sl.sample_seqs:
                sampled[s.seq_id] = next_token(ctx)  # type: ignore[arg-type]
        return sampled


@dataclass
class Arrival:
    tenant: int
    priority: int
    prefix: int
    prompt_len: int
    max_tokens: int
    n: int


arrivals = st.builds(
    Arrival,
    tenant=st.integers(0, 2),
    priority=st.integers(0, 2),
    prefix=st.integers(0, 2),
    prompt_len=st.integers(1, MAX_PROMPT),
    max_tokens=st.integers(1, MAX_NEW),
    n=st.integers(1, 3),
)
events = st.one_of(
    st.tuples(st.just("arrive"), arrivals),
    st.tuples(st.just("abort"), st.integers(0, 50)),
    st.tuples(st.just("step"), st.integers(1, 4)),
)


def prompt(a: Arrival, serial: int) -> list[int]:
    """Shared leading tokens per ``prefix`` so the prefix cache gets exercised."""
    shared = [100 * (a.prefix + 1) + i for i in range(8)]
    return (shared + [1000 + serial] * MAX_PROMPT)[: a.prompt_len]


def checked_step(sched: Scheduler, model: FakeModel) -> SchedulerOutput:
    cfg, bm = sched.config, sched.block_manager
    out = sched.schedule()
    assert out.num_batched_tokens <= cfg.max_num_batched_tokens
    assert len(out.slices) <= cfg.max_num_seqs and sched.num_running <= cfg.max_num_seqs
    assert len({sl.seq_id for sl in out.slices}) == len(out.slices)
    for sl in out.slices:
        assert sl.num_tokens >= 1 and sl.start == sl.seq.num_computed_tokens
    bm.check_invariants()
    sched.on_step_finished(out, model.run(out))
    bm.check_invariants()
    assert sched.num_running <= cfg.max_num_seqs
    local = bm.local_usage()
    if local is not None and bm.sliding_window is not None:
        assert local.used <= local_blocks_needed(bm.sliding_window, bm.block_size,
                                                 cfg.max_num_seqs, cfg.max_num_batched_tokens)
    return out


@settings(deadline=None, max_examples=120)
@given(
    block_size=st.sampled_from([1, 2, 4]),
    extra_blocks=st.integers(0, 12),
    max_seqs=st.integers(1, 5),
    extra_budget=st.integers(0, 12),
    chunked=st.booleans(),
    script=st.lists(events, max_size=30),
    window=st.one_of(st.none(), st.integers(1, 8)),
    extra_local=st.integers(0, 12),
)
def test_budget_invariants_and_liveness(
    block_size: int,
    extra_blocks: int,
    max_seqs: int,
    extra_budget: int,
    chunked: bool,
    script: list[tuple[str, object]],
    window: int | None,
    extra_local: int,
) -> None:
    longest = MAX_PROMPT + MAX_NEW
    blocks = -(-longest // block_size) + extra_blocks  # holds one maximal sequence
    budget = max(max_seqs + extra_budget, 1 if chunked else longest)
    local = None
    if window is not None:  # one window at least; without chunking, one whole sequence
        local = local_blocks_per_seq(window, block_size, 1 if chunked else longest)
        local += extra_local
    bm = BlockManager(blocks, block_size, sliding_window=window, num_local_blocks=local)
    sched = Scheduler(
        SchedulerConfig(budget, max_seqs, chunked_prefill=chunked, max_model_len=longest), bm
    )
    model = FakeModel(bm)
    groups: list[SequenceGroup] = []
    for kind, arg in script:
        if kind == "arrive":
            assert isinstance(arg, Arrival)
            g = SequenceGroup.create(
                f"r{len(groups)}", prompt(arg, len(groups)), n=min(arg.n, max_seqs),
                max_tokens=arg.max_tokens, priority=arg.priority, tenant=str(arg.tenant),
                stop_token_ids=[7],
            )
            sched.add(g)
            groups.append(g)
        elif kind == "abort" and groups:
            assert isinstance(arg, int)
            g = groups[arg % len(groups)]
            sched.abort(g.request_id)
            assert all(s.is_finished for s in g.seqs) and not bm.has_table(g.leader.seq_id)
            bm.check_invariants()
        else:
            assert isinstance(arg, int)
            for _ in range(arg):
                checked_step(sched, model)
    steps = 0
    while sched.has_unfinished():
        checked_step(sched, model)
        steps += 1
        assert steps <= LIVENESS_STEPS, "livelock"
    assert bm.usage().used == 0 and sched.num_waiting == 0
    assert bm.num_free_local_blocks == bm.num_local_blocks
    for g in groups:
        for s in g.seqs:
            assert s.is_finished
            hist = s.all_token_ids
            p = len(s.prompt_token_ids)
            for k in range(p, len(hist)):
                assert hist[k] == next_token(hist[:k])
            if s.status is SequenceStatus.FINISHED_STOPPED:
                assert s.output_token_ids[-1] == 7
            elif s.status is SequenceStatus.FINISHED_LENGTH:
                assert len(s.output_token_ids) == s.max_tokens or s.num_tokens == longest


@settings(deadline=None, max_examples=60)
@given(
    tenants=st.integers(2, 4),
    flood=st.integers(4, 12),
    max_seqs=st.integers(1, 4),
    block_size=st.sampled_from([2, 4]),
    ample=st.booleans(),
    lengths=st.lists(
        st.tuples(st.integers(1, MAX_PROMPT), st.integers(1, MAX_NEW)), min_size=1, max_size=8
    ),
)
def test_tenant_fairness(
    tenants: int,
    flood: int,
    max_seqs: int,
    block_size: int,
    ample: bool,
    lengths: list[tuple[int, int]],
) -> None:
    per_seq = -(-(MAX_PROMPT + MAX_NEW) // block_size)
    bm = BlockManager(per_seq * (max_seqs if ample else 1), block_size)
    sched = Scheduler(SchedulerConfig(max_seqs + 4, max_seqs), bm)
    model = FakeModel(bm)
    names = [str(t) for t in range(tenants)]
    seqs: list[TokenSequence] = []
    # Tenant 0 floods: it queues three times as much work, all of it first.
    for t in names:
        for _ in range(flood * 3 if t == "0" else flood):
            p, m = lengths[len(seqs) % len(lengths)]
            g = SequenceGroup.create(
                f"r{len(seqs)}", [1000 + len(seqs)] * p, max_tokens=m, tenant=t,
                arrival=float(len(seqs)),
            )
            sched.add(g)
            seqs.append(g.leader)
    waiting_states = (SequenceStatus.WAITING, SequenceStatus.PREEMPTED)
    admitted: list[str] = []  # tenants, in admission order, while all were backlogged
    last_admit = dict.fromkeys(names, 0)
    gap_bound = tenants * (MAX_PROMPT + MAX_NEW + 1)
    step_no = 0
    while True:
        backlog = dict.fromkeys(names, 0)
        for s in seqs:
            if s.status in waiting_states:
                backlog[s.tenant] += 1
        if not all(backlog.values()):
            break
        was_waiting = {s.seq_id for s in seqs if s.status in waiting_states}
        step_no += 1
        out = checked_step(sched, model)
        for sl in out.slices:
            if sl.seq_id in was_waiting:
                if all(backlog.values()):
                    admitted.append(sl.seq.tenant)
                backlog[sl.seq.tenant] -= 1
                last_admit[sl.seq.tenant] = step_no
        if ample:
            assert all(step_no - last <= gap_bound for last in last_admit.values()), "starved"
        assert step_no < LIVENESS_STEPS
    if ample:
        assert sched.num_preemptions == 0
    assert len(admitted) >= tenants
    for i in range(len(admitted) - tenants + 1):
        assert set(admitted[i : i + tenants]) == set(names), admitted
    for t in names:
        assert admitted.count(t) >= len(admitted) // tenants
