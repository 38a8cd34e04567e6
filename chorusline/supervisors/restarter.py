"""Restarting children, written once for static and dynamic supervisors.

A restart is: admit it against the intensity (or escalate), wait out the backoff, start
the child again; a start that fails counts as one more restart and goes round again.
What "start again" means differs (a static supervisor restarts a run of named siblings,
a dynamic one a single spec), so the supervisor supplies that step as ``attempt`` and
the ``Restarter`` owns the loop. A delayed restart runs from a timer that sends the
supervisor a ``RestartDue`` message, so the start itself still happens in the
supervisor's own message loop, never concurrently with its other work.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import trio

from chorusline.actors import ActorContext, ChildExit
from chorusline.supervisors.intensity import RestartIntensityExceeded, RestartLog
from chorusline.supervisors.spec import Backoff, ChildSpec, Intensity

J = TypeVar("J")


@dataclass(frozen=True)
class RestartDue(Generic[J]):
    """The supervisor's own timer message: the backoff before ``job`` has passed."""

    job: J


@dataclass(frozen=True)
class StartFailed(Generic[J]):
    """What ``attempt`` returns when a child would not start: who, why, and what to try
    next time (for a static supervisor, the failed child and the siblings after it)."""

    child: str
    why: str
    retry: J


def wants_restart(spec: ChildSpec, child: ChildExit) -> bool:
    """A child stopped on purpose is forgotten; otherwise its restart type decides."""
    return not child.stopped_by_parent and spec.restart.wants_restart(child.reason)


class Restarter(Generic[J]):
    def __init__(
        self,
        context: ActorContext,
        intensity: Intensity,
        backoff: Backoff,
        attempt: Callable[[J], Awaitable[StartFailed[J] | None]],
    ) -> None:
        self.log = RestartLog(context.path, intensity, backoff)
        self._context = context
        self._attempt = attempt

    def admit(self, child: str, why: str) -> float:
        """Count one restart of ``child``; its backoff delay. Raises
        ``RestartIntensityExceeded`` past the intensity, which crashes the supervisor.

        Both outcomes go on the flight recorder's timeline, under the child's path."""
        recorder = self._context.system.recorder
        path = f"{self._context.path}/{child}"
        try:
            delay = self.log.admit(child, why)
        except RestartIntensityExceeded as error:
            recorder.record("escalated", self._context.path, child=child, reason=why,
                            message=str(error))
            raise
        recorder.record("restart", path, reason=why, delay=delay,
                        restarts_in_window=len(self.log.window))
        return delay

    async def restart(self, job: J, delay: float) -> None:
        """Start ``job`` now if ``delay`` is 0, else once it has passed (``due``)."""
        while delay <= 0:
            failed = await self._attempt(job)
            if failed is None:
                return
            delay = self.admit(failed.child, failed.why)
            job = failed.retry
        self._later(job, delay)

    async def due(self, message: RestartDue[J]) -> None:
        await self.restart(message.job, 0.0)

    def _later(self, job: J, delay: float) -> None:
        me = self._context.self_ref

        async def later() -> None:
            await trio.sleep(delay)
            await me.send(RestartDue(job))

        self._context.start_soon(later, name=f"{self._context.path}:backoff")
