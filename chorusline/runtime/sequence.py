"""One generation stream and the request that owns it.

A `TokenSequence` is the unit the scheduler and the block manager reason about: it owns one
block table and one output. A request with ``n > 1`` becomes a `SequenceGroup` whose
sequences share the prompt; only the first one (the leader) prefills it, the others are
forked from the leader when the prompt's last token is sampled, so the prompt's KV blocks
are computed once and shared by reference count.

Priority: a *lower* number is more important (0 before 1). Among equal priority the
scheduler keeps the sequence it admitted first (`TokenSequence.rank`): admission order rather
than arrival, because admission already rotates fairly between tenants, so preemption
does not single out the tenant whose requests happen to arrive last. A preempted
sequence keeps its place in that order, so the order is fixed once a sequence first
runs; that is what makes preemption converge instead of ping-ponging.
"""

from __future__ import annotations

import enum
import itertools
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

__all__ = ["SequenceGroup", "SequenceStatus", "TokenSequence", "next_seq_id"]

_seq_ids = itertools.count()


def next_seq_id() -> int:
    """Process-wide unique ids, so sequences of different requests never collide."""
    return next(_seq_ids)


class SequenceStatus(enum.Enum):
    WAITING = "waiting"
    RUNNING = "running"
    #: Lost its blocks under memory pressure; waits to be recomputed (prompt + output).
    PREEMPTED = "preempted"
    FINISHED_STOPPED = "stop"
    FINISHED_LENGTH = "length"
    FINISHED_ABORTED = "abort"
    #: The request's deadline passed first (``GenerationRequest.deadline``).
    FINISHED_TIMEOUT = "timeout"

    @property
    def is_finished(self) -> bool:
        return self in _FINISHED

    @property
    def finish_reason(self) -> str | None:
        """The OpenAI ``finish_reason`` word, or None while the sequence is alive."""
        return self.value if self in _FINISHED else None


_FINISHED = frozenset(
    {SequenceStatus.FINISHED_STOPPED, SequenceStatus.FINISHED_LENGTH,
     SequenceStatus.FINISHED_ABORTED, SequenceStatus.FINISHED_TIMEOUT}
)


@dataclass(eq=False)
class TokenSequence:
    """Token history plus how much of it already has KV in the cache.

    ``num_computed_tokens`` is the only cursor: everything at or after it must still be
    run through the model. After preemption it drops to 0 while ``output_token_ids`` is
    kept, so recompute re-prefills prompt + output and generation resumes where it was.
    """

    request_id: str
    prompt_token_ids: list[int]
    max_tokens: int = 256
    stop_token_ids: frozenset[int] = frozenset()
    priority: int = 0
    tenant: str = ""
    arrival: float = field(default_factory=time.monotonic)
    seq_id: int = field(default_factory=next_seq_id)
    #: Index of this sequence among its request's ``n`` choices.
    index: int = 0
    output_token_ids: list[int] = field(default_factory=list)
    num_computed_tokens: int = 0
    status: SequenceStatus = SequenceStatus.WAITING
    #: How many times it lost its blocks; exposed for metrics and tests.
    num_preemptions: int = 0
    #: Position in the scheduler's admission order, set on first admission and kept.
    admission_order: int | None = None

    def __post_init__(self) -> None:
        if not self.prompt_token_ids:
            raise ValueError("a sequence needs at least one prompt token")
        if self.max_tokens < 1:
            raise ValueError("max_tokens must be >= 1")

    @property
    def all_token_ids(self) -> list[int]:
        return self.prompt_token_ids + self.output_token_ids

    def token_ids_slice(self, start: int, stop: int) -> list[int]:
        """Tokens ``[start, stop)`` of prompt + output without concatenating the lists."""
        p = len(self.prompt_token_ids)
        if stop <= p:
            return self.prompt_token_ids[start:stop]
        if start >= p:
            return self.output_token_ids[start - p : stop - p]
        return self.prompt_token_ids[start:] + self.output_token_ids[: stop - p]

    @property
    def num_tokens(self) -> int:
        return len(self.prompt_token_ids) + len(self.output_token_ids)

    @property
    def num_uncomputed(self) -> int:
        return self.num_tokens - self.num_computed_tokens

    @property
    def is_prefilling(self) -> bool:
        """More than the last sampled token is missing from the cache."""
        return self.num_uncomputed > 1

    @property
    def is_finished(self) -> bool:
        return self.status.is_finished

    @property
    def rank(self) -> tuple[int, float, float, int]:
        """Sort key: smaller is kept first under memory pressure, larger preempted first."""
        order = float("inf") if self.admission_order is None else float(self.admission_order)
        return (self.priority, order, self.arrival, self.seq_id)


@dataclass(eq=False)
class SequenceGroup:
    """The ``n`` sequences of one request; ``seqs[0]`` is the leader that prefills."""

    request_id: str
    seqs: list[TokenSequence]

    def __post_init__(self) -> None:
        if not self.seqs:
            raise ValueError("a sequence group needs at least one sequence")
        for s in self.seqs:
            if s.request_id != self.request_id:
                raise ValueError("all sequences of a group share its request_id")
            if s.prompt_token_ids != self.seqs[0].prompt_token_ids:
                raise ValueError("all sequences of a group share the prompt")

    @classmethod
    def create(
        cls,
        request_id: str,
        prompt_token_ids: Sequence[int],
        n: int = 1,
        *,
        max_tokens: int = 256,
        stop_token_ids: Iterable[int] = (),
        priority: int = 0,
        tenant: str = "",
        arrival: float | None = None,
    ) -> SequenceGroup:
        if n < 1:
            raise ValueError("n must be >= 1")
        t = time.monotonic() if arrival is None else arrival
        stops = frozenset(stop_token_ids)
        return cls(
            request_id,
            [
                TokenSequence(
                    request_id=request_id,
                    prompt_token_ids=list(prompt_token_ids),
                    max_tokens=max_tokens,
                    stop_token_ids=stops,
                    priority=priority,
                    tenant=tenant,
                    arrival=t,
                    index=i,
                )
                for i in range(n)
            ],
        )

    @property
    def leader(self) -> TokenSequence:
        return self.seqs[0]

    @property
    def is_finished(self) -> bool:
        return all(s.is_finished for s in self.seqs)
