"""Thread actors: pykka ``ThreadingActor``s supervised like any other actor.

Blocking work (a model step, a database driver without a trio API) runs on the actor's
own OS thread. The trio side holds a ``ThreadCell``; messages cross as ``_Bridged``
envelopes, and replies come back through ``TrioToken.run_sync_soon`` straight into the
asker's reply slot, so a trio task awaits a thread actor without blocking the event loop
(pykka's own ``Future.__await__`` blocks it, and is never used). A helper thread waits
on pykka's ``actor_stopped`` event so that any end of the thread, a crash in ``on_start``
included, reaches the supervisor.
"""

from __future__ import annotations

import contextlib
import queue
from typing import TYPE_CHECKING, Any, ClassVar

import pykka
import trio

from chorusline.actors.cell import Cell
from chorusline.actors.errors import ActorDead, AskTimeout, MailboxFull
from chorusline.actors.mailbox import MailboxConfig
from chorusline.actors.messages import KILLED, NORMAL, ExitReason, Terminated
from chorusline.actors.reply import ReplySlot
from chorusline.actors.stats import ActorState

if TYPE_CHECKING:
    from chorusline.actors.spec import ActorSpec
    from chorusline.actors.system import ActorSystem

_PING = object()
START_TIMEOUT = 60.0


class _Bridged:
    __slots__ = ("cell", "message", "slot")

    def __init__(self, cell: ThreadCell, message: Any, slot: ReplySlot | None) -> None:
        self.cell = cell
        self.message = message
        self.slot = slot


class ThreadActor(pykka.ThreadingActor):
    """Override ``receive(message)`` (synchronous; runs on the actor's thread).

    Heavy set-up belongs in ``on_start``, which also runs on that thread. Exceptions in
    ``expected_errors`` go back to the asker; any other exception crashes the actor.
    """

    use_daemon_thread: ClassVar[bool] = True
    expected_errors: ClassVar[tuple[type[Exception], ...]] = ()

    def receive(self, message: Any) -> Any:
        raise TypeError(f"{type(self).__name__} does not handle {type(message).__name__}")

    def on_receive(self, message: Any) -> Any:
        if type(message) is not _Bridged:
            return self.receive(message)
        cell = message.cell
        if cell.dead:
            return None
        if message.message is _PING:
            assert message.slot is not None
            cell.from_thread(message.slot.resolve, True)
            return None
        try:
            value = self.receive(message.message)
        except self.expected_errors as error:
            cell.processed += 1
            cell.from_thread(cell.reply_failed, message.slot, error)
            return None
        except Exception as error:
            cell.from_thread(cell.thread_crashed, error)
            raise
        cell.processed += 1
        if message.slot is not None:
            cell.from_thread(cell.replied, message.slot, value)
        return None


class ThreadCell(Cell):
    kind = "thread"

    def __init__(
        self,
        system: ActorSystem,
        parent: Cell | None,
        spec: ActorSpec,
        name: str,
        restarts: int = 0,
    ) -> None:
        super().__init__(system, parent, spec, name, restarts)
        self.capacity = (spec.mailbox or MailboxConfig()).capacity
        self.token = trio.lowlevel.current_trio_token()
        self.pykka_ref: pykka.ActorRef[Any] | None = None
        self.pending: set[ReplySlot] = set()
        self.reason: ExitReason | None = None
        self.requested: ExitReason | None = None
        self.stopped = trio.Event()
        self.class_name = "ThreadActor"

    # -- called from the actor's thread -----------------------------------------------
    def from_thread(self, fn: Any, *args: Any) -> None:
        with contextlib.suppress(trio.RunFinishedError):
            self.token.run_sync_soon(fn, *args)

    def replied(self, slot: ReplySlot, value: Any) -> None:
        self.pending.discard(slot)
        slot.resolve(value)

    def reply_failed(self, slot: ReplySlot | None, error: BaseException) -> None:
        self.record_failure(error)
        if slot is not None:
            self.pending.discard(slot)
            slot.fail(error)

    def thread_crashed(self, error: BaseException) -> None:
        self.record_failure(error)
        self._end(ExitReason.crash(error))

    # -- trio side ----------------------------------------------------------------------
    def _end(self, reason: ExitReason) -> None:
        if self.reason is None:
            self.reason = reason
        self.stopped.set()

    def _send(self, message: Any, slot: ReplySlot | None) -> None:
        ref = self.pykka_ref
        if ref is None or self.dead:
            raise ActorDead(self.path, self.exit_reason)
        if inbox_size(ref) >= self.capacity:
            raise MailboxFull(self.path, self.capacity)
        try:
            ref.tell(_Bridged(self, message, slot))
        except pykka.ActorDeadError:
            raise ActorDead(self.path, self.exit_reason) from None

    def enqueue(self, message: Any) -> None:
        if self.dead:
            self.system.dead_letters.publish(self.path, message, "recipient dead")
            return
        self._send(message, None)

    async def enqueue_wait(self, message: Any) -> None:
        self.enqueue(message)

    async def ask(self, message: Any, timeout: float) -> Any:
        if self.dead:
            raise ActorDead(self.path, self.exit_reason)
        slot = ReplySlot()
        self.pending.add(slot)
        try:
            self._send(message, slot)
            if not await slot.wait(self.system.timer, timeout):
                raise AskTimeout(self.path, timeout)
        finally:
            self.pending.discard(slot)
        return slot.value

    def enqueue_terminated(self, message: Terminated) -> None:
        if not self.dead and self.pykka_ref is not None:
            self.pykka_ref.tell(_Bridged(self, message, None))

    def post_system(self, message: Any) -> None:
        raise TypeError("thread actors host no children")

    def request_stop(self, reason: ExitReason | None = None) -> None:
        if self.dead:
            return
        self.requested = reason or NORMAL
        if self.pykka_ref is not None:
            self.pykka_ref.stop(block=False)
        else:
            self._end(self.requested)

    def kill(self) -> None:
        """The thread cannot be interrupted: the actor is declared dead at once, its
        thread told to stop and abandoned (it ignores anything still queued)."""
        self._end(KILLED)
        if self.pykka_ref is not None and self.pykka_ref.is_alive():
            self.pykka_ref.stop(block=False)

    def hard_cancel(self) -> None:
        self.kill()

    async def _watch_thread(self, ref: pykka.ActorRef[Any]) -> None:
        await trio.to_thread.run_sync(
            ref.actor_stopped.wait, abandon_on_cancel=True, limiter=trio.CapacityLimiter(1)
        )
        self._end(self.requested or ExitReason.crash(RuntimeError("thread stopped unexpectedly")))

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            ref = await trio.to_thread.run_sync(self.spec.factory)
            if not isinstance(ref, pykka.ActorRef):
                raise TypeError("a thread actor's factory must return ThreadActor.start(...)")
            self.pykka_ref = ref
            self.class_name = ref.actor_class.__name__
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._watch_thread, ref)
                await self._confirm_started()
                self.started = True
                self.state = ActorState.RUNNING
                task_status.started()
                await self.stopped.wait()
                nursery.cancel_scope.cancel()
        except Exception as error:
            self.start_error = error
            self._end(ExitReason.crash(error))
            if ref_alive(self.pykka_ref):
                assert self.pykka_ref is not None
                self.pykka_ref.stop(block=False)
        finally:
            self.die(self.reason or NORMAL)
            if not self.started:
                task_status.started()

    async def _confirm_started(self) -> None:
        slot = ReplySlot()
        try:
            self._send(_PING, slot)
        except ActorDead:
            raise RuntimeError(f"thread actor {self.path} did not start (see its log)") from None
        with trio.move_on_after(START_TIMEOUT):
            async with trio.open_nursery() as race:

                async def ping() -> None:
                    await slot.wait(self.system.timer, START_TIMEOUT)
                    race.cancel_scope.cancel()

                async def stopped() -> None:
                    await self.stopped.wait()
                    race.cancel_scope.cancel()

                race.start_soon(ping)
                race.start_soon(stopped)
        if not slot.done:
            raise RuntimeError(f"thread actor {self.path} did not start (see its log)")

    def drain_on_death(self) -> None:
        error = ActorDead(self.path, self.exit_reason)
        for slot in list(self.pending):
            slot.fail(error)
        self.pending.clear()

    def mailbox_depth(self) -> int:
        return 0 if self.pykka_ref is None else inbox_size(self.pykka_ref)

    def mailbox_capacity(self) -> int:
        return self.capacity

    def actor_class(self) -> str:
        return self.class_name


def ref_alive(ref: pykka.ActorRef[Any] | None) -> bool:
    return ref is not None and ref.is_alive()


def inbox_size(ref: pykka.ActorRef[Any]) -> int:
    inbox = ref.actor_inbox
    return inbox.qsize() if isinstance(inbox, queue.Queue) else 0
