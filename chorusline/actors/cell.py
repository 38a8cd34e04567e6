"""The runtime half of an actor: identity, tree position, watchers, death and statistics.

``Cell`` is what every actor has whatever runs it; ``TrioCell`` (``trio_cell.py``, a
trio task with a mailbox, able to host children) and ``ThreadCell``
(``thread_cell.py``, a pykka thread) implement the abstract methods: how messages reach
the actor, how it stops, how it runs. Death is handled in one place (``die``) so that
every way of dying (crash, stop, kill, passivation, start failure) fails pending asks,
tells watchers and the parent, and unregisters, exactly once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

import trio

from chorusline.actors.messages import ExitKind, ExitReason, Terminated, failure_summary
from chorusline.actors.ref import ActorRef
from chorusline.actors.stats import ActorKind, ActorState, ActorStatistics

if TYPE_CHECKING:
    from chorusline.actors.actor import ActorBase
    from chorusline.actors.faults import FaultPlan
    from chorusline.actors.parenting import ParentCell
    from chorusline.actors.spec import ActorSpec
    from chorusline.actors.system import ActorSystem
    from chorusline.actors.trio_cell import TrioCell


#: The deaths an operator wants on the timeline (normal stops and shutdowns are not news).
_RECORDED = {ExitKind.CRASH: "actor_crashed", ExitKind.KILLED: "actor_killed",
             ExitKind.PASSIVATED: "actor_passivated"}


class Cell(ABC):
    def __init__(
        self,
        system: ActorSystem,
        parent: ParentCell | None,
        spec: ActorSpec,
        name: str,
        actor: ActorBase,
        capacity: int,
        restarts: int = 0,
    ) -> None:
        self.system = system
        self.parent = parent
        self.spec = spec
        self.name = name
        self.actor = actor
        self.capacity = capacity
        self.path: str = f"{parent.path}/{name}" if parent is not None else ""
        self.ref = ActorRef(self)
        # Only trio actors watch (``ActorContext.watch``), so watchers are trio cells.
        self.watchers: dict[TrioCell, None] = {}
        self.outside_watchers: list[trio.MemorySendChannel[Terminated]] = []
        self.state = ActorState.STARTING
        self.dead = False
        self.started = False
        self.stopped_by_parent = False
        self.exit_reason: ExitReason | None = None
        self.start_error: BaseException | None = None
        self.processed = 0
        self.failed = 0
        self.restarts = restarts
        self.last_failure: dict[str, Any] | None = None
        # Fault plans act in a trio actor's message loop; a thread actor only honours kill.
        self.fault: FaultPlan | None = system.faults.plan_for(self.path)
        self._dead_event = trio.Event()

    # -- how messages reach the actor and how it ends: the subclass's part --------------
    @abstractmethod
    def enqueue(self, message: Any) -> None:
        """``tell``: never blocks; a dead actor's mail goes to dead letters."""

    @abstractmethod
    async def enqueue_wait(self, message: Any) -> None:
        """``send``: ``tell`` that may wait for room where the mailbox allows waiting."""

    @abstractmethod
    async def ask(self, message: Any, timeout: float) -> Any:
        """Send and wait for the reply, at most ``timeout`` seconds."""

    @abstractmethod
    def request_stop(self, reason: ExitReason | None = None) -> None:
        """Stop gracefully (``on_stop`` runs); ``reason`` defaults to normal."""

    @abstractmethod
    def kill(self) -> None:
        """Fault injection's kill: end now, reason ``killed``."""

    @abstractmethod
    def hard_cancel(self) -> None:
        """Cancel everything the actor is doing (its shutdown timeout ran out)."""

    @abstractmethod
    def drain_on_death(self) -> None:
        """Fail whatever still waits on the actor (asks, queued mail) as it dies."""

    @abstractmethod
    def mailbox_depth(self) -> int: ...

    @abstractmethod
    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The actor's whole life; ``task_status.started()`` once ``on_start`` is done."""

    # -- shared behaviour -------------------------------------------------------------
    @property
    def kind(self) -> ActorKind:
        return type(self.actor).kind

    def record_failure(self, error: BaseException) -> None:
        self.failed += 1
        self.last_failure = failure_summary(error)

    def add_watcher(self, watcher: TrioCell) -> None:
        if self.dead:
            watcher.enqueue_terminated(Terminated(self.ref, self.exit_reason_or_normal()))
        else:
            self.watchers[watcher] = None

    def remove_watcher(self, watcher: TrioCell) -> None:
        self.watchers.pop(watcher, None)

    def exit_reason_or_normal(self) -> ExitReason:
        return self.exit_reason if self.exit_reason is not None else ExitReason(ExitKind.NORMAL)

    async def wait_dead(self) -> ExitReason:
        await self._dead_event.wait()
        return self.exit_reason_or_normal()

    def die(self, reason: ExitReason) -> None:
        if self.dead:
            return
        self.dead = True
        self.state = ActorState.DEAD
        self.exit_reason = reason
        if reason.error is not None and reason.kind is ExitKind.CRASH and self.last_failure is None:
            self.last_failure = failure_summary(reason.error)
        self.drain_on_death()
        if reason.kind in _RECORDED:
            self.system.recorder.record(
                _RECORDED[reason.kind], self.path, actor_class=type(self.actor).__name__,
                reason=reason.summary(), failure=self.last_failure
                if reason.kind is ExitKind.CRASH else None)
        note = Terminated(self.ref, reason)
        for watcher in self.watchers:
            if not watcher.dead:
                watcher.enqueue_terminated(note)
        self.watchers.clear()
        for channel in self.outside_watchers:
            channel.send_nowait(note)
            channel.close()
        self.outside_watchers.clear()
        self.system.forget(self)
        if self.parent is not None:
            self.parent.child_exited(self, reason)
        self._dead_event.set()

    def statistics(self) -> ActorStatistics:
        return ActorStatistics(
            path=self.path or "/",
            name=self.name,
            kind=self.kind,
            actor_class=type(self.actor).__name__,
            state=self.state,
            mailbox_depth=self.mailbox_depth(),
            mailbox_capacity=self.capacity,
            processed=self.processed,
            failed=self.failed,
            restarts=self.restarts,
            last_failure=self.last_failure,
            exit_reason=None if self.exit_reason is None else self.exit_reason.summary(),
        )

    def node(self) -> dict[str, Any]:
        """Statistics and what the actor reports of itself: a tree node without children."""
        node = self.statistics().to_json()
        node.update(self.actor.introspect())
        return node

    def snapshot(self, max_children: int | None = None) -> dict[str, Any]:
        node = self.node()
        node["children"] = []
        return node

    def busyness(self) -> tuple[int, int, int]:
        """How much an operator wants to see this actor: a deep mailbox first, then
        failures, then restarts (read from counters, with no snapshot built)."""
        return self.mailbox_depth(), self.failed, self.restarts

    def inspect(self) -> dict[str, Any]:
        """What the console's detail view shows beyond the tree: who watches this actor
        and, for a busy trio actor, the type of the message it is handling now."""
        return {
            "node": self.node(),
            "current_message": self.current_message(),
            "watchers": sorted(watcher.path for watcher in self.watchers),
            "watching": [],
        }

    def current_message(self) -> str | None:
        """Thread actors do not say what they are doing; trio cells override this."""
        return None
