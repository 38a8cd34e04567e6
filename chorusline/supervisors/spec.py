"""Child specs and restart policy: what a supervisor knows about each child."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from enum import Enum

from chorusline.actors import ActorSpec, ExitKind, ExitReason


class Restart(Enum):
    """OTP's restart types.

    PERMANENT: always restarted. TRANSIENT: restarted only after an abnormal exit.
    TEMPORARY: never restarted. A passivated child (idle timeout) is never restarted:
    passivation is the actor's own decision to go to sleep, not a failure.
    """

    PERMANENT = "permanent"
    TRANSIENT = "transient"
    TEMPORARY = "temporary"

    def wants_restart(self, reason: ExitReason) -> bool:
        if self is Restart.TEMPORARY or reason.kind is ExitKind.PASSIVATED:
            return False
        if self is Restart.TRANSIENT:
            return not reason.is_normal
        return True


@dataclass(frozen=True)
class ChildSpec(ActorSpec):
    """An ``ActorSpec`` plus restart policy. ``name`` is the child's id in its supervisor.

    ``significant`` children drive the supervisor's ``auto_shutdown``: with
    ``ANY_SIGNIFICANT`` the supervisor stops when one of them exits for good.
    """

    restart: Restart = Restart.PERMANENT
    significant: bool = False


class Strategy(Enum):
    ONE_FOR_ONE = "one_for_one"
    ONE_FOR_ALL = "one_for_all"
    REST_FOR_ONE = "rest_for_one"


class AutoShutdown(Enum):
    NEVER = "never"
    ANY_SIGNIFICANT = "any_significant"
    ALL_SIGNIFICANT = "all_significant"


@dataclass(frozen=True)
class Intensity:
    """At most ``max_restarts`` restarts within ``period`` seconds, else escalate."""

    max_restarts: int = 3
    period: float = 5.0

    def __post_init__(self) -> None:
        if self.max_restarts < 0 or self.period <= 0:
            raise ValueError("max_restarts must be >= 0 and period > 0")


@dataclass(frozen=True)
class Backoff:
    """Delay before a restart, growing with the restarts already in the window.

    The first restart in a window is immediate (a lone crash costs no latency); the
    n-th waits ``initial * factor**(n-2)``, capped at ``maximum``, with +-``jitter``
    relative noise so that siblings crashing together do not restart in lockstep.
    """

    initial: float = 0.01
    factor: float = 2.0
    maximum: float = 2.0
    jitter: float = 0.2
    rng: random.Random = field(default_factory=random.Random, compare=False)

    def delay(self, restarts_in_window: int) -> float:
        if restarts_in_window <= 1:
            return 0.0
        base = min(self.maximum, self.initial * self.factor ** (restarts_in_window - 2))
        return base * (1.0 + self.jitter * (2.0 * self.rng.random() - 1.0))
