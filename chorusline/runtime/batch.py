"""What one scheduling step hands the model runner: one slice of tokens per sequence to
compute, and the block copies to make first. Pure Python (no torch).

A slice is the whole of a sequence's work in one step: a single token for a decode, or a
run of prompt tokens for a prefill (all of it, or one chunk of a chunked prefill).
With a local pool for sliding-window layers (``block_manager``), a slice also carries
the sequence's local table and slots, and the step its local copy-on-write pairs; both
are empty otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

from chorusline.runtime.sequence import TokenSequence


@dataclass(frozen=True)
class ScheduledSlice:
    """Tokens ``[start, start + len(token_ids))`` of one sequence, computed this step."""

    seq: TokenSequence
    token_ids: tuple[int, ...]
    #: Position of ``token_ids[0]``; positions run consecutively from here.
    start: int
    #: Physical block ids of the sequence, covering at least ``context_len`` tokens.
    block_table: tuple[int, ...]
    #: Flat KV slot (``block * block_size + offset``) for each token of ``token_ids``.
    slot_mapping: tuple[int, ...]
    #: Sequences that get one token sampled from the logits of this slice's last
    #: token: empty for a slice in the middle of a chunked prefill; the sequence itself
    #: for a decode or a completing prefill; the leader plus its ``n - 1`` siblings when
    #: the leader of a group completes its prompt (each sibling samples on its own).
    sample_seqs: tuple[TokenSequence, ...]
    #: The local pool's table (same logical indices; blocks already out of the window
    #: name its null block) and slots; empty without a local pool.
    local_block_table: tuple[int, ...] = ()
    local_slot_mapping: tuple[int, ...] = ()

    @property
    def seq_id(self) -> int:
        return self.seq.seq_id

    @property
    def request_id(self) -> str:
        return self.seq.request_id

    @property
    def num_tokens(self) -> int:
        return len(self.token_ids)

    @property
    def context_len(self) -> int:
        """Tokens to attend over, including this slice's own."""
        return self.start + len(self.token_ids)

    @property
    def positions(self) -> range:
        return range(self.start, self.start + len(self.token_ids))

    @property
    def sample(self) -> bool:
        return bool(self.sample_seqs)

    @property
    def sample_seq_ids(self) -> tuple[int, ...]:
        return tuple(s.seq_id for s in self.sample_seqs)

    @property
    def is_prefill(self) -> bool:
        """Part of a (re)prefill rather than a single-token decode."""
        return len(self.token_ids) > 1 or not self.sample


@dataclass(frozen=True)
class SchedulerOutput:
    slices: tuple[ScheduledSlice, ...]
    #: Copy-on-write pairs ``(src_block, dst_block)``; copy before running the step.
    blocks_to_copy: tuple[tuple[int, int], ...]
    #: Sequences that lost their blocks this step (they will be recomputed later).
    preempted: tuple[TokenSequence, ...]
    #: Copy-on-write pairs of the local pool (its own block ids); copy them too.
    local_blocks_to_copy: tuple[tuple[int, int], ...] = ()

    @property
    def num_batched_tokens(self) -> int:
        return sum(len(sl.token_ids) for sl in self.slices)

    @property
    def is_empty(self) -> bool:
        return not self.slices
