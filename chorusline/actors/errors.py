"""Errors of the actor kernel: what a caller of ``tell``/``ask``/``spawn`` must handle."""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

if TYPE_CHECKING:
    from chorusline.actors.messages import ExitReason


class ActorError(Exception):
    """Base of the kernel's errors."""


class ActorDead(ActorError):
    """The actor is dead (or died while the message waited): nothing will ever answer.

    Raised at once for asks to a dead actor and for every pending ask when an actor
    dies, so that no caller waits for a reply that cannot come.
    """

    def __init__(self, path: str, reason: ExitReason | None = None) -> None:
        detail = f" ({reason})" if reason is not None else ""
        super().__init__(f"actor {path} is dead{detail}")
        self.path = path
        self.reason = reason


class AskTimeout(trio.TooSlowError, ActorError):
    """No reply within the ask's timeout; a reply that arrives later is discarded."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__(f"no reply from {path} within {timeout:g}s")
        self.path = path
        self.timeout = timeout


class MailboxFull(ActorError):
    """The mailbox is at capacity and its policy refuses the message."""

    def __init__(self, path: str, capacity: int) -> None:
        super().__init__(f"mailbox of {path} is full ({capacity} messages)")
        self.path = path
        self.capacity = capacity


class ActorStartFailed(ActorError):
    """``on_start`` raised; the actor never ran. The cause is chained."""


class InjectedFault(ActorError):
    """Raised inside an actor by the fault injector; never by real code."""


class NameTaken(ActorError):
    """A live actor is already registered under this name or path."""


class ActorSystemCrashed(ActorError):
    """A critical top-level actor (usually a supervisor that escalated) died abnormally."""
