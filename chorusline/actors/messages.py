"""Messages and exit reasons the kernel itself defines.

Exit reasons are values, not exceptions, so they can be stored in statistics, sent in
``Terminated`` and compared in tests. ``is_normal`` decides what a transient child means
by "exited normally" (OTP's normal/shutdown), which restart policies depend on.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chorusline.actors.ref import ActorRef
    from chorusline.actors.spec import ActorSpec


class ExitKind(Enum):
    NORMAL = "normal"
    SHUTDOWN = "shutdown"
    PASSIVATED = "passivated"
    CRASH = "crash"
    KILLED = "killed"


@dataclass(frozen=True)
class ExitReason:
    """Why an actor stopped. ``error`` is set for crashes (the exception that escaped)."""

    kind: ExitKind
    error: BaseException | None = field(default=None, compare=False)

    @property
    def is_normal(self) -> bool:
        return self.kind in (ExitKind.NORMAL, ExitKind.SHUTDOWN, ExitKind.PASSIVATED)

    def summary(self) -> str:
        if self.error is None:
            return self.kind.value
        return f"{self.kind.value}: {type(self.error).__name__}: {self.error}"

    def __str__(self) -> str:
        return self.summary()

    @staticmethod
    def crash(error: BaseException) -> ExitReason:
        return ExitReason(ExitKind.CRASH, error)


NORMAL = ExitReason(ExitKind.NORMAL)
SHUTDOWN = ExitReason(ExitKind.SHUTDOWN)
PASSIVATED = ExitReason(ExitKind.PASSIVATED)
KILLED = ExitReason(ExitKind.KILLED)


def failure_summary(error: BaseException, limit: int = 8) -> dict[str, Any]:
    """A JSON-safe summary of an exception for statistics and the console."""
    # walk_tb, not extract_tb: extract_tb reads source lines from disk, which made this
    # summary the largest part of a restart's cost.
    frames = list(traceback.walk_tb(error.__traceback__))[-limit:]
    return {
        "type": type(error).__name__,
        "message": str(error),
        "traceback": [
            f"{frame.f_code.co_filename}:{lineno} in {frame.f_code.co_name}"
            for frame, lineno in frames
        ],
    }


@dataclass(frozen=True)
class Terminated:
    """Delivered once to each watcher when the watched actor has died."""

    ref: ActorRef
    reason: ExitReason


@dataclass(frozen=True)
class ChildExit:
    """What a parent's ``on_child_exit`` learns when one of its children has died.

    A value, not the child's runtime cell, so that supervisors decide from it alone and
    the kernel's internals stay the kernel's. ``stopped_by_parent``: the parent (or
    ``system.stop``) stopped the child on purpose, so a supervisor forgets it instead of
    restarting it. ``restarts``: how often the child had been restarted before this
    incarnation, which the next incarnation carries on from. ``spec``: what it was
    started from (the root reads ``critical`` there).
    """

    ref: ActorRef
    reason: ExitReason
    spec: ActorSpec
    stopped_by_parent: bool = False
    restarts: int = 0

    @property
    def kind(self) -> ExitKind:
        return self.reason.kind

    @property
    def error(self) -> BaseException | None:
        return self.reason.error


@dataclass(frozen=True)
class StartChild:
    """Ask an actor that hosts children (a supervisor, the root) to start one.

    The reply is the new child's ``ActorRef``. ``spec`` is an ``ActorSpec`` or a subclass
    that the receiving parent understands (a supervisor's ``ChildSpec``).
    """

    spec: Any
