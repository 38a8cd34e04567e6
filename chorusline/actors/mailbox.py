"""Mailbox configuration: every mailbox is bounded and says what happens when full."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Overflow(Enum):
    """What a full mailbox does with one more user message.

    BACKPRESSURE: async senders (``send``/``ask``) wait for room; the synchronous
    ``tell`` cannot wait, so it raises ``MailboxFull``.
    REJECT: every sender gets ``MailboxFull`` at once.
    DROP_OLDEST: the oldest queued message goes to dead letters; the new one is queued.
    """

    BACKPRESSURE = "backpressure"
    REJECT = "reject"
    DROP_OLDEST = "drop_oldest"


@dataclass(frozen=True)
class MailboxConfig:
    capacity: int = 10_000
    overflow: Overflow = Overflow.BACKPRESSURE

    def __post_init__(self) -> None:
        if self.capacity < 1:
            raise ValueError(f"mailbox capacity must be >= 1, got {self.capacity}")
