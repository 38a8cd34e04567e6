"""The runtime half of an actor: identity, tree position, watchers, death and statistics.

``Cell`` holds everything trio actors and thread actors share; ``TrioCell``
(``trio_cell.py``) and ``ThreadCell`` (``thread_actor.py``) differ only in how messages
reach the actor. Death is handled in one place (``die``) so that every way of dying
(crash, stop, kill, passivation, start failure) fails pending asks, tells watchers and
the parent, and unregisters, exactly once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import trio

from chorusline.actors.errors import ActorDead
from chorusline.actors.messages import ExitKind, ExitReason, Terminated, failure_summary
from chorusline.actors.ref import ActorRef
from chorusline.actors.stats import ActorState, ActorStatistics

if TYPE_CHECKING:
    from chorusline.actors.faults import FaultPlan
    from chorusline.actors.spec import ActorSpec
    from chorusline.actors.system import ActorSystem


class Ask:
    """A queued ask: the message plus the slot its reply goes to."""

    __slots__ = ("message", "slot")

    def __init__(self, message: Any, slot: Any) -> None:
        self.message = message
        self.slot = slot


class ChildExit:
    """System message: one of my children died."""

    __slots__ = ("child", "reason")

    def __init__(self, child: Cell, reason: ExitReason) -> None:
        self.child = child
        self.reason = reason


class Stop:
    """System message: finish the current message, then stop with ``reason``."""

    __slots__ = ("reason",)

    def __init__(self, reason: ExitReason) -> None:
        self.reason = reason


class Crash:
    """System message: a background task of this actor failed."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


class Cell:
    kind = "actor"

    def __init__(
        self,
        system: ActorSystem,
        parent: Cell | None,
        spec: ActorSpec,
        name: str,
        restarts: int = 0,
    ) -> None:
        self.system = system
        self.parent = parent
        self.spec = spec
        self.name = name
        self.path: str = f"{parent.path}/{name}" if parent is not None else ""
        self.ref = ActorRef(self)
        self.children: dict[Cell, None] = {}
        self.watchers: dict[Cell, None] = {}
        self.watching: dict[Cell, None] = {}
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
        self.fault: FaultPlan | None = system.faults.plan_for(self.path)
        self._dead_event = trio.Event()

    # -- subclass interface -----------------------------------------------------------
    def enqueue(self, message: Any) -> None:
        raise NotImplementedError

    async def enqueue_wait(self, message: Any) -> None:
        raise NotImplementedError

    async def ask(self, message: Any, timeout: float) -> Any:
        raise NotImplementedError

    def request_stop(self, reason: ExitReason | None = None) -> None:
        raise NotImplementedError

    def kill(self) -> None:
        raise NotImplementedError

    def post_system(self, message: Any) -> None:
        raise NotImplementedError

    def hard_cancel(self) -> None:
        """Cancel everything the actor is doing (its shutdown timeout ran out)."""
        raise NotImplementedError

    def mailbox_depth(self) -> int:
        raise NotImplementedError

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        raise NotImplementedError

    async def spawn_child(self, spec: ActorSpec, *, restarts: int = 0) -> ActorRef:
        raise TypeError(f"{self.path} cannot host children")

    async def stop_child(self, ref: ActorRef, timeout: float | None = None) -> None:
        raise TypeError(f"{self.path} cannot host children")

    def start_background(self, fn: Callable[[], Awaitable[object]], name: str | None) -> None:
        raise TypeError(f"{self.path} cannot run background tasks")

    def mailbox_capacity(self) -> int:
        raise NotImplementedError

    def actor_class(self) -> str:
        raise NotImplementedError

    def introspect(self) -> dict[str, Any]:
        return {}

    # -- shared behaviour -------------------------------------------------------------
    def record_failure(self, error: BaseException) -> None:
        self.failed += 1
        self.last_failure = failure_summary(error)

    def child_exited(self, child: Cell, reason: ExitReason) -> None:
        """Tell the parent's loop (queued while it is still starting). A child that never
        started is not reported: its spawner already got ``ActorStartFailed``. A child
        stopped on purpose is reported too (``ref.cell.stopped_by_parent`` says so), so a
        supervisor can forget it instead of restarting it."""
        self.children.pop(child, None)
        if not child.started or self.state not in (ActorState.STARTING, ActorState.RUNNING):
            return
        self.post_system(ChildExit(child, reason))

    def add_watcher(self, watcher: Cell) -> None:
        if self.dead:
            watcher.enqueue_terminated(Terminated(self.ref, self.exit_reason_or_normal()))
        else:
            self.watchers[watcher] = None

    def remove_watcher(self, watcher: Cell) -> None:
        self.watchers.pop(watcher, None)

    def enqueue_terminated(self, message: Terminated) -> None:
        """Watch notifications skip the capacity check: losing one would break the
        exactly-once promise of ``watch``."""
        raise NotImplementedError

    def exit_reason_or_normal(self) -> ExitReason:
        return self.exit_reason if self.exit_reason is not None else ExitReason(ExitKind.NORMAL)

    async def wait_dead(self) -> ExitReason:
        await self._dead_event.wait()
        return self.exit_reason_or_normal()

    def fail_pending(
        self, items: Any, error: BaseException | None = None, why: str = "recipient died"
    ) -> None:
        """Fail every queued ask (with ``ActorDead`` unless ``error`` is given); queued
        tells become dead letters."""
        error = error or ActorDead(self.path, self.exit_reason)
        letters = self.system.dead_letters
        for item in items:
            if type(item) is Ask:
                item.slot.fail(error)
            elif not isinstance(item, Terminated):
                letters.publish(self.path, item, why)

    def die(self, reason: ExitReason) -> None:
        if self.dead:
            return
        self.dead = True
        self.state = ActorState.DEAD
        self.exit_reason = reason
        if reason.error is not None and reason.kind is ExitKind.CRASH and self.last_failure is None:
            self.last_failure = failure_summary(reason.error)
        self.drain_on_death()
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

    def drain_on_death(self) -> None:
        raise NotImplementedError

    def statistics(self) -> ActorStatistics:
        return ActorStatistics(
            path=self.path or "/",
            name=self.name,
            kind=self.kind,
            actor_class=self.actor_class(),
            state=self.state,
            mailbox_depth=self.mailbox_depth(),
            mailbox_capacity=self.mailbox_capacity(),
            processed=self.processed,
            failed=self.failed,
            restarts=self.restarts,
            last_failure=self.last_failure,
            exit_reason=None if self.exit_reason is None else self.exit_reason.summary(),
        )

    def snapshot(self) -> dict[str, Any]:
        node = self.statistics().to_json()
        node.update(self.introspect())
        node["children"] = [child.snapshot() for child in list(self.children)]
        return node
