"""The cell of a trio actor: its mailbox, its message loop and its children.

The hot path is written for speed: ``tell`` is a deque append plus, when the actor is
parked, one ``reschedule``; the loop drains a batch of messages without yielding and
checkpoints every ``BATCH`` messages so a flooded actor cannot starve the others.
Exceptions escaping ``receive`` end the loop (the supervisor decides what next); the
ones the actor declared in ``expected_errors`` go back to the asker instead.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

import trio
from trio.lowlevel import Abort, RaiseCancelT, Task

from chorusline.actors.actor import Actor, ActorContext, SyncActor
from chorusline.actors.envelopes import Ask, Crash, Stop, fail_queued
from chorusline.actors.errors import ActorDead, AskTimeout, MailboxFull
from chorusline.actors.mailbox import Overflow
from chorusline.actors.messages import (
    KILLED,
    NORMAL,
    PASSIVATED,
    ChildExit,
    ExitReason,
    Terminated,
)
from chorusline.actors.parenting import ParentCell
from chorusline.actors.reply import ReplySlot
from chorusline.actors.stats import ActorState

if TYPE_CHECKING:
    from chorusline.actors.cell import Cell
    from chorusline.actors.ref import ActorRef
    from chorusline.actors.spec import ActorSpec
    from chorusline.actors.system import ActorSystem

BATCH = 64


class TrioCell(ParentCell):
    def __init__(
        self,
        system: ActorSystem,
        parent: ParentCell | None,
        spec: ActorSpec,
        name: str,
        actor: Actor,
        restarts: int = 0,
    ) -> None:
        mailbox = spec.mailbox or type(actor).mailbox
        super().__init__(system, parent, spec, name, actor, mailbox.capacity, restarts)
        actor.context = ActorContext(self)
        self.handle = actor.handle if isinstance(actor, SyncActor) else None
        self.direct = self.handle is not None and spec.idle_timeout is None
        self.direct_budget = BATCH
        self.overflow = mailbox.overflow
        self.children: dict[Cell, None] = {}
        self.watching: dict[ActorRef, None] = {}
        self.queue: deque[Any] = deque()
        self.sysq: deque[Any] = deque()
        self.parked: Task | None = None
        self.space = trio.lowlevel.ParkingLot()
        self.current: Any = None
        self.kill_scope = trio.CancelScope()
        self.outer_scope = trio.CancelScope()
        self.nursery: trio.Nursery | None = None

    # -- sending ----------------------------------------------------------------------
    def enqueue(self, message: Any) -> None:
        if self.dead:
            self.system.dead_letters.publish(self.path, message, "recipient dead")
            return
        queue = self.queue
        if len(queue) >= self.capacity:
            self._overflow()
        queue.append(message)
        task = self.parked
        if task is not None:
            self.parked = None
            trio.lowlevel.reschedule(task)

    def _overflow(self) -> None:
        if self.overflow is Overflow.DROP_OLDEST:
            error = MailboxFull(self.path, self.capacity)
            fail_queued([self.queue.popleft()], error, self, "dropped: mailbox full")
            return
        raise MailboxFull(self.path, self.capacity)

    async def _wait_for_room(self) -> None:
        while len(self.queue) >= self.capacity and not self.dead:
            if self.overflow is not Overflow.BACKPRESSURE:
                self._overflow()
                return
            await self.space.park()

    async def enqueue_wait(self, message: Any) -> None:
        if len(self.queue) >= self.capacity:
            await self._wait_for_room()
        self.enqueue(message)

    async def ask(self, message: Any, timeout: float) -> Any:
        if self.dead:
            raise ActorDead(self.path, self.exit_reason)
        if (
            self.direct
            and self.parked is not None
            and not self.queue
            and not self.sysq
            and self.fault is None
        ):
            return await self._ask_directly(message)
        if len(self.queue) >= self.capacity:
            # The ask's timeout covers the wait for room too: nothing waits forever.
            with trio.move_on_after(timeout) as waited:
                await self._wait_for_room()
            if waited.cancelled_caught:
                raise AskTimeout(self.path, timeout)
            if self.dead:
                raise ActorDead(self.path, self.exit_reason)
        slot = ReplySlot()
        self.enqueue(Ask(message, slot))
        if not await slot.wait(self.system.timer, timeout):
            raise AskTimeout(self.path, timeout)
        return slot.value

    async def _ask_directly(self, message: Any) -> Any:
        """Answer an ask to an idle ``SyncActor`` in the asker's task.

        The actor's own task stays parked; nothing else can run while ``handle`` (a
        plain function) runs, so the actor still sees one message at a time. Every
        ``BATCH`` direct answers the asker checkpoints, so a hot loop cannot starve
        the other tasks.
        """
        assert self.handle is not None
        try:
            value = self.handle(message)
        except type(self.actor).expected_errors as error:
            self.record_failure(error)
            raise
        except Exception as error:
            self.record_failure(error)
            self.post_system(Crash(error))
            raise ActorDead(self.path, ExitReason.crash(error)) from error
        self.processed += 1
        self.direct_budget -= 1
        if not self.direct_budget:
            self.direct_budget = BATCH
            await trio.lowlevel.checkpoint()
        return value

    def enqueue_terminated(self, message: Terminated) -> None:
        """Watch notifications skip the capacity check: losing one would break the
        exactly-once promise of ``watch``."""
        self.queue.append(message)
        self._wake()

    def post_system(self, message: Any) -> None:
        self.sysq.append(message)
        self._wake()

    def _wake(self) -> None:
        task = self.parked
        if task is not None:
            self.parked = None
            trio.lowlevel.reschedule(task)

    def request_stop(self, reason: ExitReason | None = None) -> None:
        if not self.dead:
            self.post_system(Stop(reason or NORMAL))

    def kill(self) -> None:
        self.kill_scope.cancel()

    def hard_cancel(self) -> None:
        self.outer_scope.cancel()

    # -- the loop -----------------------------------------------------------------------
    def _abort_park(self, _raise_cancel: RaiseCancelT) -> Abort:
        self.parked = None
        return Abort.SUCCEEDED

    async def _park(self) -> bool:
        """Sleep until a message arrives; False if the idle timeout passed first."""
        idle = self.spec.idle_timeout
        self.parked = trio.lowlevel.current_task()
        if idle is None:
            await trio.lowlevel.wait_task_rescheduled(self._abort_park)
            return True
        with trio.move_on_after(idle) as scope:
            await trio.lowlevel.wait_task_rescheduled(self._abort_park)
        return not scope.cancelled_caught or bool(self.queue) or bool(self.sysq)

    async def _system(self, message: Any) -> ExitReason | None:
        if type(message) is Stop:
            return message.reason
        if type(message) is ChildExit:
            await self.actor.on_child_exit(message)
            return None
        if type(message) is Crash:
            raise message.error
        raise TypeError(f"unknown system message {message!r}")

    def current_message(self) -> str | None:
        item = self.current
        if item is None:
            return None
        message = item.message if type(item) is Ask else item
        return type(message).__name__

    def inspect(self) -> dict[str, Any]:
        detail = super().inspect()
        detail["watching"] = sorted(ref.path for ref in self.watching)
        return detail

    async def _loop(self) -> ExitReason:
        queue = self.queue
        sysq = self.sysq
        receive = self.actor.receive
        handle = self.handle
        expected = type(self.actor).expected_errors
        budget = BATCH
        while True:
            if sysq:
                reason = await self._system(sysq.popleft())
                if reason is not None:
                    return reason
                continue
            if not queue:
                if not await self._park():
                    return PASSIVATED
                budget = BATCH
                continue
            item = queue.popleft()
            if self.space:
                self.space.unpark()
            self.current = item
            if self.fault is not None and not await self.fault.apply(
                self.path, item, self.system.dead_letters
            ):
                self.current = None
                continue
            if type(item) is Ask:
                slot = item.slot
                if not slot.abandoned:
                    try:
                        if handle is not None:
                            value = handle(item.message)
                        else:
                            value = await receive(item.message)
                    except expected as error:
                        self.record_failure(error)
                        slot.fail(error)
                    else:
                        slot.resolve(value)
            else:
                if type(item) is Terminated:
                    self.watching.pop(item.ref, None)
                try:
                    if handle is not None:
                        handle(item)
                    else:
                        await receive(item)
                except expected as error:
                    self.record_failure(error)
            self.current = None
            self.processed += 1
            budget -= 1
            if not budget:
                budget = BATCH
                await trio.lowlevel.checkpoint()

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        reason: ExitReason = NORMAL
        try:
            with self.outer_scope:
                async with trio.open_nursery() as nursery:
                    self.nursery = nursery
                    reason = await self._live(task_status)
                    self.state = ActorState.STOPPING
                    await self._stop_children()
                    nursery.cancel_scope.cancel()
                try:
                    await self.actor.on_stop(reason)
                except Exception as error:
                    self.record_failure(error)
        finally:
            if self.outer_scope.cancelled_caught and reason.is_normal:
                reason = KILLED
            self.die(reason)
            if not self.started:
                task_status.started()

    async def _live(self, task_status: trio.TaskStatus[None]) -> ExitReason:
        reason: ExitReason = NORMAL
        with self.kill_scope:
            try:
                await self.actor.on_start()
            except Exception as error:
                self.start_error = error
                return ExitReason.crash(error)
            self.started = True
            self.state = ActorState.RUNNING
            task_status.started()
            try:
                reason = await self._loop()
            except Exception as error:
                self.record_failure(error)
                reason = ExitReason.crash(error)
        if self.kill_scope.cancelled_caught:
            reason = KILLED
            if not self.started:
                self.start_error = ActorDead(self.path, KILLED)
        return reason

    def drain_on_death(self) -> None:
        current, self.current = self.current, None
        pending = list(self.queue)
        self.queue.clear()
        if current is not None:
            pending.insert(0, current)
        fail_queued(pending, ActorDead(self.path, self.exit_reason), self, "recipient died")
        self.space.unpark_all()

    def mailbox_depth(self) -> int:
        return len(self.queue)
