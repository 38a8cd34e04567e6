"""Fault injection by actor path: crash, delay, drop, kill.

Plans are keyed by path, not by ref, so they also apply to the next incarnation of a
restarted actor (a delay keeps delaying) while one-shot crashes are consumed. When no
plan names an actor its cell holds ``fault = None`` and the message loop pays one
attribute test per message: free when off.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import trio

from chorusline.actors.errors import InjectedFault

if TYPE_CHECKING:
    from chorusline.actors.dead_letters import DeadLetters
    from chorusline.actors.system import ActorSystem


@dataclass
class FaultPlan:
    crash_after: int | None = None
    delay: float = 0.0
    drop_fraction: float = 0.0
    rng: random.Random = field(default_factory=random.Random)

    def should_drop(self) -> bool:
        return self.drop_fraction > 0.0 and self.rng.random() < self.drop_fraction

    def crash_due(self) -> bool:
        if self.crash_after is None:
            return False
        self.crash_after -= 1
        if self.crash_after > 0:
            return False
        self.crash_after = None
        return True

    async def apply(self, path: str, message: Any, letters: DeadLetters) -> bool:
        """Act on one message a trio actor is about to handle: False if it is dropped,
        after sleeping the delay; raises ``InjectedFault`` when a crash is due."""
        if self.should_drop():
            # A dropped ask is simply never answered: its asker times out, as it would
            # if the message had been lost on a wire.
            letters.publish(path, message, "dropped by fault injection")
            return False
        if self.delay:
            await trio.sleep(self.delay)
        if self.crash_due():
            raise InjectedFault(f"fault injected into {path}")
        return True

    @property
    def empty(self) -> bool:
        return self.crash_after is None and not self.delay and not self.drop_fraction

    def to_json(self) -> dict[str, Any]:
        return {
            "crash_after": self.crash_after,
            "delay": self.delay,
            "drop_fraction": self.drop_fraction,
        }


class FaultInjector:
    """The one place faults are configured; the console's fault buttons call this."""

    def __init__(self, system: ActorSystem) -> None:
        self._system = system
        self._plans: dict[str, FaultPlan] = {}

    def plan_for(self, path: str) -> FaultPlan | None:
        plan = self._plans.get(path)
        if plan is not None and plan.empty:
            del self._plans[path]
            return None
        return plan

    def _update(self, path: str, **changes: Any) -> FaultPlan:
        plan = self._plans.setdefault(path, FaultPlan())
        for key, value in changes.items():
            setattr(plan, key, value)
        self._push(path)
        self._system.recorder.record("fault_injected", path, **plan.to_json())
        return plan

    def _push(self, path: str) -> None:
        cell = self._system.cell_at(path)
        if cell is not None:
            cell.fault = self.plan_for(path)

    def crash(self, path: str, *, on_message: int = 1) -> None:
        """Crash the actor at ``path`` while it handles its ``on_message``-th next message."""
        if on_message < 1:
            raise ValueError("on_message counts from 1")
        self._update(path, crash_after=on_message)

    def delay(self, path: str, seconds: float) -> None:
        """Delay every message of the actor at ``path`` by ``seconds`` (0 clears it)."""
        if seconds < 0:
            raise ValueError("delay must be >= 0")
        self._update(path, delay=seconds)

    def drop(self, path: str, fraction: float, *, seed: int | None = None) -> None:
        """Drop ``fraction`` of the messages to ``path`` (asks then time out)."""
        if not 0.0 <= fraction <= 1.0:
            raise ValueError("fraction must be within [0, 1]")
        self._update(path, drop_fraction=fraction, rng=random.Random(seed))

    def kill(self, path: str) -> bool:
        """Kill the actor at ``path`` now (no further message is handled). False if absent."""
        cell = self._system.cell_at(path)
        if cell is None:
            return False
        self._system.recorder.record("fault_injected", path, kill=True)
        cell.kill()
        return True

    def clear(self, path: str | None = None) -> None:
        paths = list(self._plans) if path is None else [path]
        for each in paths:
            if self._plans.pop(each, None) is not None:
                self._system.recorder.record("fault_cleared", each)
            self._push(each)

    def active(self) -> dict[str, dict[str, Any]]:
        return {path: plan.to_json() for path, plan in self._plans.items() if not plan.empty}
