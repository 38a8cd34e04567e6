"""Dynamic supervisors: children started on demand (sessions, conversations).

Every child is independent (one_for_one). Children are started with ``StartChild`` or
through ``Registry.get_or_spawn(key, spec, under=this)``, restarted according to their own
restart type, and passivated by their ``idle_timeout``; a passivated child is gone until
the next ``get_or_spawn`` brings it back from wherever it keeps its state.
"""

from __future__ import annotations

from typing import Any

from chorusline.actors import (
    Actor,
    ActorKind,
    ActorRef,
    ActorSpec,
    ActorStartFailed,
    ChildExit,
    ExitKind,
    NameTaken,
    StartChild,
)
from chorusline.supervisors.restarter import RestartDue, Restarter, StartFailed, wants_restart
from chorusline.supervisors.spec import Backoff, ChildSpec, Intensity, Restart

# A restart job: the child's spec and the restart count its next incarnation carries.
_Job = tuple[ChildSpec, int]


class TooManyChildren(Exception):
    """The dynamic supervisor is at ``max_children``."""


class DynamicSupervisor(Actor):
    kind = ActorKind.SUPERVISOR
    expected_errors = (TooManyChildren, ValueError, ActorStartFailed, NameTaken)

    def __init__(
        self,
        *,
        max_children: int | None = None,
        intensity: Intensity | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self.max_children = max_children
        self._intensity = intensity or Intensity()
        self._backoff = backoff or Backoff()
        self.specs: dict[ActorRef, ChildSpec] = {}
        self.passivated = 0
        self.restarter: Restarter[_Job] | None = None

    async def on_start(self) -> None:
        self.restarter = Restarter(self.context, self._intensity, self._backoff, self._restart)

    async def receive(self, message: Any) -> Any:
        if isinstance(message, StartChild):
            spec = message.spec
            if not isinstance(spec, ChildSpec):
                spec = as_child_spec(spec)
            if self.max_children is not None and len(self.specs) >= self.max_children:
                raise TooManyChildren(f"{self.context.path} has {self.max_children} children")
            return await self._start(spec, 0)
        if isinstance(message, RestartDue):
            assert self.restarter is not None
            await self.restarter.due(message)
            return None
        return await super().receive(message)

    async def _start(self, spec: ChildSpec, restarts: int) -> ActorRef:
        ref = await self.context.spawn(spec, restarts=restarts)
        self.specs[ref] = spec
        return ref

    async def on_child_exit(self, child: ChildExit) -> None:
        spec = self.specs.pop(child.ref, None)
        if spec is None:
            return
        if child.kind is ExitKind.PASSIVATED:
            self.passivated += 1
        if not wants_restart(spec, child):
            return
        assert self.restarter is not None
        delay = self.restarter.admit(child.ref.name, child.reason.summary())
        await self.restarter.restart((spec, child.restarts + 1), delay)

    async def _restart(self, job: _Job) -> StartFailed[_Job] | None:
        spec, restarts = job
        try:
            await self._start(spec, restarts)
        except ActorStartFailed as error:
            why = f"start failed: {error.__cause__!r}"
            return StartFailed(str(spec.name), why, (spec, restarts + 1))
        return None

    def introspect(self) -> dict[str, Any]:
        return {
            "strategy": "dynamic",
            "max_children": self.max_children,
            "passivated": self.passivated,
            "intensity": None if self.restarter is None else self.restarter.log.to_json(),
        }


def as_child_spec(spec: ActorSpec, restart: Restart = Restart.TEMPORARY) -> ChildSpec:
    """Lift a plain ``ActorSpec`` (e.g. from ``Registry.get_or_spawn``) to a child spec."""
    fields = {f: getattr(spec, f) for f in spec.__dataclass_fields__}
    return ChildSpec(**fields, restart=restart)


def dynamic_supervisor_spec(
    name: str,
    *,
    max_children: int | None = None,
    intensity: Intensity | None = None,
    backoff: Backoff | None = None,
    shutdown_timeout: float = 30.0,
    restart: Restart = Restart.PERMANENT,
) -> ChildSpec:
    def factory() -> DynamicSupervisor:
        return DynamicSupervisor(max_children=max_children, intensity=intensity, backoff=backoff)

    return ChildSpec(factory=factory, name=name, shutdown_timeout=shutdown_timeout, restart=restart)
