"""Continuous batching: which tokens of which sequences run in the next model step.

Interface used by the engine (stable; extend only compatibly)::

    bm = BlockManager(num_blocks, block_size, enable_prefix_caching=True)
    sched = Scheduler(SchedulerConfig(max_num_batched_tokens=512, max_num_seqs=64), bm)
    sched.add(SequenceGroup.create("req-1", prompt_ids, n=2, max_tokens=64,
                                   stop_token_ids={eos}, priority=0, tenant="acme"))
    while sched.has_unfinished():
        out = sched.schedule()                       # SchedulerOutput
        # runner: 1. perform out.blocks_to_copy (src -> dst, whole blocks, all layers)
        #            and out.local_blocks_to_copy (the local pool's, if any)
        #         2. for each slice: write KV of sl.token_ids at sl.slot_mapping,
        #            attend over sl.block_table up to sl.context_len (sliding-window
        #            layers with a local pool: sl.local_slot_mapping, sl.local_block_table)
        #         3. for slices with sl.sample: sample one token per seq in
        #            sl.sample_seqs from the logits of the slice's last token
        finished = sched.on_step_finished(out, {seq_id: token_id, ...})
        # engine: stream the new tokens; stop strings -> sched.finish(seq_id, STOPPED)
    sched.abort("req-1")                             # any time between steps
    sched.abort("req-2", SequenceStatus.FINISHED_TIMEOUT)   # same, for a passed deadline

A step first gives every running sequence its work (decodes, 1 token each, before
running chunked prefills, both in priority order), then admits waiting sequences into the
remaining token budget. When blocks run out a running sequence is preempted by
recompute: the lowest-ranked one (largest priority number, then latest arrival) loses
its blocks and returns to the front of its tenant's waiting queue; nothing new is
admitted in that step, which would only thrash. Admission picks the most important
priority class, and inside it rotates over tenants (the tenant served longest ago goes
first), so a tenant that floods the queue cannot starve the others. A waiting sequence
that finds no seat or no blocks may preempt running sequences of a strictly less
important class, never of its own: equal priority waits its turn.

With a local pool (sliding-window layers, see ``block_manager``) a sequence runs only if
both pools can supply its blocks, and no slice computes more than
``BlockManager.max_slice_tokens`` tokens: that bound is what keeps one sequence alone
inside the local pool, as ``max_seq_len`` keeps it inside the global one, so preemption
still converges.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from chorusline.runtime.batch import ScheduledSlice, SchedulerOutput
from chorusline.runtime.block_manager import BlockManager
from chorusline.runtime.fair_queue import FairQueue
from chorusline.runtime.sequence import SequenceGroup, SequenceStatus, TokenSequence

__all__ = ["ScheduledSlice", "Scheduler", "SchedulerConfig", "SchedulerOutput"]


@dataclass(frozen=True)
class SchedulerConfig:
    #: Tokens computed per step over all sequences (decode = 1 token each).
    max_num_batched_tokens: int = 512
    #: Sequences holding KV blocks at once (running, including partial prefills).
    max_num_seqs: int = 64
    #: Split prompts longer than the remaining budget over several steps.
    chunked_prefill: bool = True
    #: Longest prompt + output; capped further by what the block pool can hold.
    max_model_len: int = 8192

    def __post_init__(self) -> None:
        if self.max_num_seqs < 1:
            raise ValueError("max_num_seqs must be >= 1")
        # Every running sequence must be able to get its decode token in every step,
        # otherwise the most important sequence could be starved of budget.
        if self.max_num_batched_tokens < self.max_num_seqs:
            raise ValueError("max_num_batched_tokens must be >= max_num_seqs")
        if self.max_model_len < 2:
            raise ValueError("max_model_len must be >= 2")
        if not self.chunked_prefill and self.max_model_len > self.max_num_batched_tokens:
            raise ValueError(
                "without chunked_prefill a whole sequence must fit in one step: "
                "max_model_len must be <= max_num_batched_tokens"
            )


@dataclass
class _Plan:
    """The step being assembled; a preempted sequence gives back what it was granted."""

    budget: int
    tokens: dict[int, int] = field(default_factory=dict)
    copies: dict[int, list[tuple[int, int]]] = field(default_factory=dict)
    local_copies: dict[int, list[tuple[int, int]]] = field(default_factory=dict)
    preempted: list[TokenSequence] = field(default_factory=list)

    def add(self, seq: TokenSequence, n: int, copies: list[tuple[int, int]],
            local_copies: list[tuple[int, int]]) -> None:
        self.tokens[seq.seq_id] = n
        self.copies[seq.seq_id] = copies
        self.local_copies[seq.seq_id] = local_copies
        self.budget -= n

    def drop(self, seq: TokenSequence) -> None:
        self.budget += self.tokens.pop(seq.seq_id, 0)
        self.copies.pop(seq.seq_id, None)
        self.local_copies.pop(seq.seq_id, None)
        self.preempted.append(seq)


class Scheduler:
    """Owns the waiting and running sets; the only writer of sequence status."""

    def __init__(self, config: SchedulerConfig, block_manager: BlockManager) -> None:
        self.config = config
        self.block_manager = block_manager
        #: Longest sequence that can run: beyond it a sequence finishes with "length",
        #: so one sequence alone always fits in the pool and preemption converges.
        self.max_seq_len = min(
            config.max_model_len, block_manager.num_blocks * block_manager.block_size
        )
        #: Longest slice: one sequence alone must fit the local pool too (no local
        #: pool: the step budget, which bounds every slice anyway).
        self.max_slice_tokens = block_manager.max_slice_tokens or config.max_num_batched_tokens
        if not config.chunked_prefill and self.max_slice_tokens < self.max_seq_len:
            raise ValueError(
                "without chunked_prefill a whole sequence must fit in one step: the local "
                f"pool holds slices of at most {self.max_slice_tokens} tokens")
        self.num_preemptions = 0
        self._waiting = FairQueue()
        self._running: list[TokenSequence] = []
        # Siblings of an n > 1 request wait here until the leader samples its first
        # token; then they are forked from the leader's blocks.
        self._pending: dict[int, list[TokenSequence]] = {}
        self._leader_of: dict[int, int] = {}
        self._requests: dict[str, list[TokenSequence]] = {}
        self._by_id: dict[int, TokenSequence] = {}
        self._admissions = 0

    # -- requests --------------------------------------------------------------------

    def add(self, item: TokenSequence | SequenceGroup) -> None:
        """Queue a request. Raises ValueError if it can never run."""
        group = item if isinstance(item, SequenceGroup) else SequenceGroup(item.request_id, [item])
        if group.request_id in self._requests:
            raise ValueError(f"request {group.request_id!r} is already queued")
        if len(group.leader.prompt_token_ids) >= self.max_seq_len:
            raise ValueError(
                f"prompt of {len(group.leader.prompt_token_ids)} tokens leaves no room to "
                f"generate within {self.max_seq_len} tokens"
            )
        if len(group.seqs) > self.config.max_num_seqs:
            raise ValueError(f"n={len(group.seqs)} exceeds max_num_seqs")
        for s in group.seqs:
            s.status = SequenceStatus.WAITING
            self._by_id[s.seq_id] = s
        self._requests[group.request_id] = list(group.seqs)
        self._waiting.push(group.leader)
        if len(group.seqs) > 1:
            self._pending[group.leader.seq_id] = group.seqs[1:]
            self._leader_of.update((s.seq_id, group.leader.seq_id) for s in group.seqs[1:])

    def abort(
        self, request_id: str, status: SequenceStatus = SequenceStatus.FINISHED_ABORTED
    ) -> list[TokenSequence]:
        """End every sequence of the request now and free its blocks; [] if unknown.

        ``status`` says why (an abort, or a deadline that passed: FINISHED_TIMEOUT).
        """
        if not status.is_finished:
            raise ValueError(f"{status} is not a finished status")
        seqs = [s for s in self._requests.get(request_id, []) if not s.is_finished]
        for s in seqs:
            self._end(s, status)
        return seqs

    def finish(self, seq_id: int, status: SequenceStatus) -> TokenSequence | None:
        """End one sequence for a reason only the engine sees (a stop string).

        Finishing a leader whose siblings were not forked yet finishes them too: they
        have no blocks and no tokens of their own.
        """
        if not status.is_finished:
            raise ValueError(f"{status} is not a finished status")
        seq = self._by_id.get(seq_id)
        if seq is None:
            return None
        for sib in list(self._pending.get(seq_id, ())):
            self._end(sib, status)
        self._end(seq, status)
        return seq

    # -- queries -----------------------------------------------------------------------

    def has_unfinished(self) -> bool:
        return bool(self._requests)

    @property
    def num_waiting(self) -> int:
        """Sequences without blocks: queued, preempted, or unforked siblings."""
        return len(self._waiting) + sum(len(v) for v in self._pending.values())

    @property
    def num_running(self) -> int:
        return len(self._running)

    def get(self, seq_id: int) -> TokenSequence | None:
        """A live (waiting or running) sequence by id."""
        return self._by_id.get(seq_id)

    # -- the step ----------------------------------------------------------------------

    def schedule(self) -> SchedulerOutput:
        """Plan the next step. Call `on_step_finished` with its result before the next."""
        plan = _Plan(self.config.max_num_batched_tokens)
        by_rank = sorted(self._running, key=lambda s: s.rank)
        order = [s for s in by_rank if not s.is_prefilling]
        order += [s for s in by_rank if s.is_prefilling]
        for seq in order:
            if seq.status is not SequenceStatus.RUNNING:
                continue  # preempted earlier in this loop
            n = min(seq.num_uncomputed, plan.budget, self.max_slice_tokens)
            if n == 0:
                continue
            while not self.block_manager.can_append(seq, n):
                victim = max(self._running, key=lambda s: s.rank)
                self._preempt(victim, plan)
                if victim is seq:
                    break
            else:
                local: list[tuple[int, int]] = []
                plan.add(seq, n, self.block_manager.append_slots(seq, n, local), local)
        if not plan.preempted:  # admitting right after a preemption would only thrash
            self._admit(plan)
        slices = tuple(self._slice(self._by_id[i], n) for i, n in plan.tokens.items())
        pairs = tuple(p for ps in plan.copies.values() for p in ps)
        local_pairs = tuple(p for ps in plan.local_copies.values() for p in ps)
        return SchedulerOutput(slices, pairs, tuple(plan.preempted), local_pairs)

    def on_step_finished(
        self, output: SchedulerOutput, sampled: Mapping[int, int]
    ) -> list[TokenSequence]:
        """Record the computed slices and the sampled tokens (``seq_id -> token``).

        Slices of sequences aborted or finished since `schedule` are ignored. Returns
        the sequences that finished in this step (stop token or length); their blocks
        are already freed.
        """
        finished: list[TokenSequence] = []
        for sl in output.slices:
            seq = sl.seq
            if seq.status is not SequenceStatus.RUNNING or seq.num_computed_tokens != sl.start:
                continue
            seq.num_computed_tokens = sl.context_len
            self.block_manager.mark_computed(seq)
            if not sl.sample_seqs:
                continue
            for sib in self._pending.pop(seq.seq_id, []):
                del self._leader_of[sib.seq_id]
                self.block_manager.fork(seq, sib)
                sib.num_computed_tokens = seq.num_computed_tokens
                sib.admission_order = seq.admission_order
                sib.status = SequenceStatus.RUNNING
                self._running.append(sib)
            for s in sl.sample_seqs:
                if s.status is not SequenceStatus.RUNNING:
                    continue
                if s.seq_id not in sampled:
                    raise ValueError(f"no sampled token for sequence {s.seq_id}")
                token = sampled[s.seq_id]
                s.output_token_ids.append(token)
                status = self._stop_status(s, token)
                if status is not None:
                    self._end(s, status)
                    finished.append(s)
        return finished

    # -- internals ---------------------------------------------------------------------

    def _admit(self, plan: _Plan) -> None:
        bm = self.block_manager
        while plan.budget > 0:
            seq = self._waiting.peek()
            if seq is None:
                return
            cached = bm.num_cached_tokens(seq)
            n = min(seq.num_tokens - cached, plan.budget, self.max_slice_tokens)
            if n < seq.num_tokens - cached and not self.config.chunked_prefill:
                return
            group = 1 + len(self._pending.get(seq.seq_id, ()))
            if self._seats_taken() + group > self.config.max_num_seqs or not bm.can_allocate(
                seq, cached + n
            ):
                # A more important class takes room from a less important one; within a
                # class the head waits (skipping ahead would let small requests starve it).
                victim = max(self._running, key=lambda s: s.rank, default=None)
                if victim is None or victim.priority <= seq.priority:
                    return
                self._preempt(victim, plan)
                continue
            self._waiting.admit(seq)
            seq.num_computed_tokens = bm.allocate(seq, cached + n)
            seq.status = SequenceStatus.RUNNING
            if seq.admission_order is None:
                seq.admission_order = self._admissions
                self._admissions += 1
            self._running.append(seq)
            plan.add(seq, n, [], [])

    def _seats_taken(self) -> int:
        """Running sequences plus the unforked siblings of running leaders."""
        return len(self._running) + sum(
            len(sibs) for lid, sibs in self._pending.items()
            if self._by_id[lid].status is SequenceStatus.RUNNING
        )

    def _slice(self, seq: TokenSequence, n: int) -> ScheduledSlice:
        start = seq.num_computed_tokens
        sample: tuple[TokenSequence, ...] = ()
        if start + n == seq.num_tokens:
            sample = (seq, *self._pending.get(seq.seq_id, ()))
        bm = self.block_manager
        local = bm.has_local_pool
        return ScheduledSlice(
            seq=seq,
            token_ids=tuple(seq.token_ids_slice(start, start + n)),
            start=start,
            block_table=tuple(bm.block_table(seq.seq_id)),
            slot_mapping=tuple(bm.slot_mapping(seq.seq_id, start, n)),
            sample_seqs=sample,
            local_block_table=tuple(bm.local_block_table(seq.seq_id)) if local else (),
            local_slot_mapping=tuple(bm.local_slot_mapping(seq.seq_id, start, n)) if local
            else (),
        )

    def _preempt(self, seq: TokenSequence, plan: _Plan) -> None:
        plan.drop(seq)
        self.block_manager.free(seq)
        self._running.remove(seq)
        seq.num_computed_tokens = 0
        seq.status = SequenceStatus.PREEMPTED
        seq.num_preemptions += 1
        self.num_preemptions += 1
        self._waiting.push(seq, front=True)

    def _stop_status(self, seq: TokenSequence, token: int) -> SequenceStatus | None:
        if token in seq.stop_token_ids:
            return SequenceStatus.FINISHED_STOPPED
        if len(seq.output_token_ids) >= seq.max_tokens or seq.num_tokens >= self.max_seq_len:
            return SequenceStatus.FINISHED_LENGTH
        return None

    def _end(self, seq: TokenSequence, status: SequenceStatus) -> None:
        """Take ``seq`` out of whichever set holds it and free its blocks."""
        if seq.status is SequenceStatus.RUNNING:
            self._running.remove(seq)
        elif seq.seq_id in self._leader_of:
            sibs = self._pending.get(self._leader_of.pop(seq.seq_id), [])
            if seq in sibs:
                sibs.remove(seq)
        else:
            self._waiting.remove(seq)
        self._pending.pop(seq.seq_id, None)
        self.block_manager.free(seq)
        seq.status = status
        del self._by_id[seq.seq_id]
        live = [s for s in self._requests[seq.request_id] if not s.is_finished]
        if live:
            self._requests[seq.request_id] = live
        else:
            del self._requests[seq.request_id]
