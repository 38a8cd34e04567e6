"""Statistics every actor reports; the console and ``/metrics`` read only these."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import Enum
from typing import Any


class ActorState(Enum):
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    DEAD = "dead"


@dataclass(frozen=True)
class ActorStatistics:
    path: str
    name: str
    kind: str
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
        return data
