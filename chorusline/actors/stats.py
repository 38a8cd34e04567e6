"""Statistics every actor reports; the console and ``/metrics`` read only these."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import Enum, StrEnum
from typing import Any


class ActorKind(StrEnum):
    """What an actor is, as the console and the admin API show it.

    A class attribute of the actor (``Actor.kind``), so the kernel never guesses from an
    actor's fields: ``ThreadActor`` says ``thread``, the supervisors say ``supervisor``.
    A ``StrEnum``, so statistics compare equal to, and serialise as, the plain strings.
    """

    ACTOR = "actor"
    THREAD = "thread"
    SUPERVISOR = "supervisor"


class ActorState(Enum):
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    DEAD = "dead"


@dataclass(frozen=True)
class ActorStatistics:
    path: str
    name: str
    kind: ActorKind
    actor_class: str
    state: ActorState
    mailbox_depth: int
    mailbox_capacity: int
    processed: int
    failed: int
    restarts: int
    last_failure: dict[str, Any] | None
    exit_reason: str | None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["state"] = self.state.value
        data["kind"] = self.kind.value
        return data
