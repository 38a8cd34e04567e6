"""Static supervisors: a fixed, ordered list of children and an OTP restart strategy.

The supervisor is an ordinary actor; the kernel tells it about child exits through
``on_child_exit`` and it reacts in its own message loop, so restarts, stops and requests
from outside never interleave. An exception from that hook (intensity exceeded, or a
restart that keeps failing) crashes the supervisor, which stops its remaining children in
reverse start order and hands the failure to its own parent: OTP's escalation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chorusline.actors import Actor, ActorKind, ActorRef, ActorStartFailed, ChildExit, StartChild
from chorusline.supervisors.restarter import RestartDue, Restarter, StartFailed, wants_restart
from chorusline.supervisors.spec import (
    AutoShutdown,
    Backoff,
    ChildSpec,
    Intensity,
    Restart,
    Strategy,
)


@dataclass(frozen=True)
class WhichChildren:
    """Ask a supervisor for ``[(name, ref or None)]`` in start order."""


@dataclass(frozen=True)
class GetChild:
    """Ask a supervisor for the current ref of one child (None while it restarts)."""

    name: str


class Supervisor(Actor):
    kind = ActorKind.SUPERVISOR

    def __init__(
        self,
        children: list[ChildSpec],
        strategy: Strategy = Strategy.ONE_FOR_ONE,
        intensity: Intensity | None = None,
        backoff: Backoff | None = None,
        auto_shutdown: AutoShutdown = AutoShutdown.NEVER,
    ) -> None:
        names = [spec.name for spec in children]
        if None in names or len(set(names)) != len(names):
            raise ValueError("every child of a static supervisor needs a unique name")
        self.specs: dict[str, ChildSpec] = {str(spec.name): spec for spec in children}
        self.strategy = strategy
        self.auto_shutdown = auto_shutdown
        self.refs: dict[str, ActorRef | None] = dict.fromkeys(self.specs)
        self.restart_counts: dict[str, int] = dict.fromkeys(self.specs, 0)
        self._intensity = intensity or Intensity()
        self._backoff = backoff or Backoff()
        self.restarter: Restarter[tuple[str, ...]] | None = None
        #: Children stopped and due to start again (backing off, or waiting their turn).
        self.restarting: set[str] = set()

    async def on_start(self) -> None:
        self.restarter = Restarter(self.context, self._intensity, self._backoff, self._restart)
        for name in self.specs:
            await self._start(name)

    async def _start(self, name: str) -> None:
        spec = self.specs[name]
        self.refs[name] = await self.context.spawn(spec, restarts=self.restart_counts[name])

    async def receive(self, message: Any) -> Any:
        if isinstance(message, WhichChildren):
            return list(self.refs.items())
        if isinstance(message, GetChild):
            return self.refs.get(message.name)
        if isinstance(message, RestartDue):
            assert self.restarter is not None
            await self.restarter.due(message)
            return None
        if isinstance(message, StartChild):
            spec = message.spec
            if not isinstance(spec, ChildSpec) or spec.name is None or spec.name in self.specs:
                raise ValueError("StartChild needs a ChildSpec with a new, unique name")
            self.specs[spec.name] = spec
            self.restart_counts[spec.name] = 0
            await self._start(spec.name)
            return self.refs[spec.name]
        return await super().receive(message)

    def _name_of(self, ref: ActorRef) -> str | None:
        for name, current in self.refs.items():
            if current is ref:
                return name
        return None

    async def on_child_exit(self, child: ChildExit) -> None:
        name = self._name_of(child.ref)
        if name is None:
            return
        self.refs[name] = None
        spec = self.specs[name]
        if not wants_restart(spec, child):
            if spec.restart is Restart.TEMPORARY:
                del self.specs[name], self.refs[name], self.restart_counts[name]
            self._maybe_auto_shutdown(spec)
            return
        assert self.restarter is not None
        delay = self.restarter.admit(name, child.reason.summary())
        affected = self._affected(name)
        self.restarting.update(affected)
        for other in reversed(affected):
            current = self.refs.get(other)
            if current is not None:
                await self.context.stop_child(current)
                self.refs[other] = None
        await self.restarter.restart(tuple(affected), delay)

    def _affected(self, name: str) -> list[str]:
        order = list(self.specs)
        if self.strategy is Strategy.ONE_FOR_ALL:
            return order
        if self.strategy is Strategy.REST_FOR_ONE:
            return order[order.index(name) :]
        return [name]

    async def _restart(self, names: tuple[str, ...]) -> StartFailed[tuple[str, ...]] | None:
        """Start, in order, those of ``names`` that are still children and not running."""
        for position, name in enumerate(names):
            if name not in self.specs or self.refs.get(name) is not None:
                self.restarting.discard(name)
                continue
            self.restart_counts[name] += 1
            try:
                await self._start(name)
            except ActorStartFailed as error:
                return StartFailed(name, f"start failed: {error.__cause__!r}", names[position:])
            self.restarting.discard(name)
        return None

    def _maybe_auto_shutdown(self, spec: ChildSpec) -> None:
        if not spec.significant or self.auto_shutdown is AutoShutdown.NEVER:
            return
        if self.auto_shutdown is AutoShutdown.ANY_SIGNIFICANT:
            self.context.stop()
            return
        alive = [n for n, s in self.specs.items() if s.significant and self.refs.get(n)]
        if not alive:
            self.context.stop()

    def introspect(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy.value,
            "auto_shutdown": self.auto_shutdown.value,
            "intensity": None if self.restarter is None else self.restarter.log.to_json(),
            # Children between incarnations (backing off, or waiting on a sibling's
            # restart): they have no cell, so without this the tree would lose them.
            "restarting": sorted(self.restarting),
            "child_specs": [
                {"name": name, "restart": spec.restart.value, "significant": spec.significant}
                for name, spec in self.specs.items()
            ],
        }


def supervisor_spec(
    name: str,
    children: list[ChildSpec],
    *,
    strategy: Strategy = Strategy.ONE_FOR_ONE,
    intensity: Intensity | None = None,
    backoff: Backoff | None = None,
    auto_shutdown: AutoShutdown = AutoShutdown.NEVER,
    restart: Restart = Restart.PERMANENT,
    shutdown_timeout: float = 30.0,
    critical: bool = False,
) -> ChildSpec:
    """A child spec that starts a ``Supervisor`` (to nest trees or spawn at top level)."""
    frozen = list(children)

    def factory() -> Supervisor:
        return Supervisor(frozen, strategy, intensity, backoff, auto_shutdown)

    return ChildSpec(
        factory=factory,
        name=name,
        restart=restart,
        shutdown_timeout=shutdown_timeout,
        critical=critical,
    )


