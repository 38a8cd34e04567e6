"""Fault injection by actor path: crash, delay, drop, kill.

Plans are keyed by path, not by ref, so they also apply to the next incarnation of a
restarted actor (a delay keeps delaying) while one-shot crashes are consumed. When no
plan names an actor its cell holds ``fault = None`` and the message loop pays one
attribute test per message: free when off.

A path with ``*``, ``?`` or ``[`` is a pattern (``fnmatch``; ``*`` also crosses ``/``):
one shared plan for every matching actor, live or spawned later, because per-key actors
(one per conversation) have paths nobody knows in advance. Sharing the object is the
point: ``crash(pattern, on_message=2)`` fires once, on the second message any of them
handles, as a fault that hits "some conversation" would.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

import trio

from chorusline.actors.errors import InjectedFault

if TYPE_CHECKING:
    from chorusline.actors.cell import Cell
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


def is_pattern(path: str) -> bool:
    """Whether ``path`` names actors by pattern rather than one actor."""
    return any(char in path for char in "*?[")


class FaultInjector:
    """The one place faults are configured; the console's fault buttons call this."""

    def __init__(self, system: ActorSystem) -> None:
        self._system = system
        self._plans: dict[str, FaultPlan] = {}
        #: Pattern plans in the order they were first set: the first match wins.
        self._patterns: dict[str, FaultPlan] = {}

    def plan_for(self, path: str) -> FaultPlan | None:
        """The plan a cell at ``path`` should hold: its own, else the first matching
        pattern's (an exact plan is the more specific intent)."""
        plan = self._in_force(self._plans, path)
        if plan is not None:
            return plan
        for pattern in list(self._patterns):
            if fnmatchcase(path, pattern):
                plan = self._in_force(self._patterns, pattern)
                if plan is not None:
                    return plan
        return None

    @staticmethod
    def _in_force(table: dict[str, FaultPlan], key: str) -> FaultPlan | None:
        plan = table.get(key)
        if plan is not None and plan.empty:
            del table[key]  # a consumed crash: forget it, so ``active`` stops listing it
            return None
        return plan

    def _table(self, path: str) -> dict[str, FaultPlan]:
        return self._patterns if is_pattern(path) else self._plans

    def _update(self, path: str, **changes: Any) -> FaultPlan:
        plan = self._table(path).setdefault(path, FaultPlan())
        for key, value in changes.items():
            setattr(plan, key, value)
        self._push(path)
        self._system.recorder.record("fault_injected", path, **plan.to_json())
        return plan

    def _matching(self, path: str) -> list[Cell]:
        """The live cells ``path`` names: the one at it, or every one a pattern matches."""
        if not is_pattern(path):
            cell = self._system.cell_at(path)
            return [] if cell is None else [cell]
        return [cell for cell in self._system.live_cells() if fnmatchcase(cell.path, path)]

    def _push(self, path: str) -> None:
        for cell in self._matching(path):
            cell.fault = self.plan_for(cell.path)

    def crash(self, path: str, *, on_message: int = 1) -> None:
        """Crash the actor at ``path`` while it handles its ``on_message``-th next message
        (for a pattern: the ``on_message``-th handled by the matching actors together)."""
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
        """Kill the actor at ``path`` (every live match of a pattern) now: no further
        message is handled. False if no actor was there."""
        cells = self._matching(path)
        for cell in cells:
            self._system.recorder.record("fault_injected", cell.path, kill=True)
            cell.kill()
        return bool(cells)

    def clear(self, path: str | None = None) -> None:
        """Remove ``path``'s plan (exact or pattern), or every plan; the actors it named
        fall back to whatever else still applies to them."""
        if path is None:
            cleared = [*self._plans, *self._patterns]
            self._plans.clear()
            self._patterns.clear()
        else:
            cleared = [path] if self._table(path).pop(path, None) is not None else []
        for each in cleared:
            self._system.recorder.record("fault_cleared", each)
        for each in cleared if path is None else [path]:
            self._push(each)

    def active(self) -> dict[str, dict[str, Any]]:
        """Plans in force by path or pattern (a consumed crash is gone)."""
        plans = {**self._plans, **self._patterns}
        return {path: plan.to_json() for path, plan in plans.items() if not plan.empty}
