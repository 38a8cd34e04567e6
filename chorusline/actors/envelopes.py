"""What travels through a trio actor's queues besides user messages.

Kept apart from the public messages (``messages.py``): these are the kernel's own
envelopes, never seen by an actor's hooks.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from chorusline.actors.messages import ExitReason, Terminated
from chorusline.actors.reply import ReplySlot

if TYPE_CHECKING:
    from chorusline.actors.cell import Cell


class Ask:
    """A queued ask: the message plus the slot its reply goes to."""

    __slots__ = ("message", "slot")

    def __init__(self, message: Any, slot: ReplySlot) -> None:
        self.message = message
        self.slot = slot


class Stop:
    """System message: finish the current message, then stop with ``reason``."""

    __slots__ = ("reason",)

    def __init__(self, reason: ExitReason) -> None:
        self.reason = reason


class Crash:
    """System message: a background task of this actor failed."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


def fail_queued(items: Iterable[Any], error: BaseException, cell: Cell, why: str) -> None:
    """Settle mail that will never be handled: asks fail with ``error`` (their askers
    must not wait), tells become dead letters (counted, never silent), and ``Terminated``
    notes vanish with the watcher they were for."""
    letters = cell.system.dead_letters
    for item in items:
        if type(item) is Ask:
            item.slot.fail(error)
        elif not isinstance(item, Terminated):
            letters.publish(cell.path, item, why)
