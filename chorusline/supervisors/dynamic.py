"""Dynamic supervisors: children started on demand (sessions, conversations).

Every child is independent (one_for_one). Children are started with ``StartChild`` or
through ``Registry.get_or_spawn(key, spec, under=this)``, restarted according to their own
restart type, and passivated by their ``idle_timeout``; a passivated child is gone until
the next ``get_or_spawn`` brings it back from wherever it keeps its state.
"""

from __future__ import annotations

from typing import Any

import trio

from chorusline.actors import (
    Actor,
    ActorRef,
    ActorSpec,
    ActorStartFailed,
    ExitReason,
    NameTaken,
    StartChild,
)
from chorusline.supervisors.intensity import RestartLog
from chorusline.supervisors.spec import Backoff, ChildSpec, Intensity, Restart


class TooManyChildren(Exception):
    """The dynamic supervisor is at ``max_children``."""


class DynamicSupervisor(Actor):
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
        self.counts: dict[str, int] = {}
        self.passivated = 0
        self.log: RestartLog | None = None

    async def on_start(self) -> None:
        self.log = RestartLog(self.context.path, self._intensity, self._backoff)

    async def receive(self, message: Any) -> Any:
        if isinstance(message, StartChild):
            spec = message.spec
            if not isinstance(spec, ChildSpec):
                spec = as_child_spec(spec)
            if self.max_children is not None and len(self.specs) >= self.max_children:
                raise TooManyChildren(f"{self.context.path} has {self.max_children} children")
            return await self._start(spec, 0)
        if isinstance(message, _Restart):
            await self._restart(message.spec, message.restarts)
            return None
        return await super().receive(message)

    async def _start(self, spec: ChildSpec, restarts: int) -> ActorRef:
        ref = await self.context.spawn(spec, restarts=restarts)
        self.specs[ref] = spec
        return ref

    async def on_child_exit(self, ref: ActorRef, reason: ExitReason) -> None:
        spec = self.specs.pop(ref, None)
        if spec is None:
            return
        if reason.kind.value == "passivated":
            self.passivated += 1
        if ref.cell.stopped_by_parent or not spec.restart.wants_restart(reason):
            return
        assert self.log is not None
        delay = self.log.admit(ref.name, reason.summary())
        restarts = ref.cell.restarts + 1
        if delay <= 0:
            await self._restart(spec, restarts)
            return
        me = self.context.self_ref

        async def later() -> None:
            await trio.sleep(delay)
            me.tell(_Restart(spec, restarts))

        self.context.start_soon(later, name=f"{self.context.path}:backoff")

    async def _restart(self, spec: ChildSpec, restarts: int) -> None:
        try:
            await self._start(spec, restarts)
        except ActorStartFailed as error:
            assert self.log is not None
            delay = self.log.admit(str(spec.name), f"start failed: {error.__cause__!r}")
            me = self.context.self_ref

            async def later() -> None:
                await trio.sleep(delay)
                me.tell(_Restart(spec, restarts + 1))

            self.context.start_soon(later)

    def introspect(self) -> dict[str, Any]:
        return {
            "strategy": "dynamic",
            "max_children": self.max_children,
            "passivated": self.passivated,
            "intensity": None if self.log is None else self.log.to_json(),
        }


class _Restart:
    def __init__(self, spec: ChildSpec, restarts: int) -> None:
        self.spec = spec
        self.restarts = restarts


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


