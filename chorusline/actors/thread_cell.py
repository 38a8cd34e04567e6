"""The cell of a thread actor: a pykka thread that runs the actor, bridged to trio.

The kernel starts a pykka ``ThreadingActor`` (``_Host``) for each ``ThreadActor``
incarnation and runs the actor's hooks inside it. Messages cross as ``_Bridged``
envelopes, and replies come back through ``TrioToken.run_sync_soon`` straight into the
asker's reply slot, so a trio task awaits a thread actor without blocking the event loop
(pykka's own ``Future.__await__`` blocks it, and is never used). A helper thread waits
on the host's ``finished`` event (set after the actor's ``on_stop``, however the thread
ends, a crash in ``on_start`` included), so every end reaches the supervisor; a kill
does not wait for it.
"""

from __future__ import annotations

import contextlib
import itertools
import queue
import threading
from types import TracebackType
from typing import TYPE_CHECKING, Any

import pykka
import trio

from chorusline.actors.cell import Cell
from chorusline.actors.errors import ActorDead, AskTimeout, MailboxFull
from chorusline.actors.mailbox import MailboxConfig
from chorusline.actors.messages import KILLED, NORMAL, ExitReason
from chorusline.actors.reply import ReplySlot
from chorusline.actors.stats import ActorState

if TYPE_CHECKING:
    from chorusline.actors.parenting import ParentCell
    from chorusline.actors.spec import ActorSpec
    from chorusline.actors.system import ActorSystem
    from chorusline.actors.thread_actor import ThreadActor

_PING = object()
START_TIMEOUT = 60.0
_thread_numbers = itertools.count(1)


class _Bridged:
    __slots__ = ("message", "slot")

    def __init__(self, message: Any, slot: ReplySlot | None) -> None:
        self.message = message
        self.slot = slot


class _Host(pykka.ThreadingActor):
    """Runs one ``ThreadActor`` incarnation's hooks on a pykka thread.

    Everything here runs on that thread; it reaches the trio side only through
    ``ThreadCell.from_thread``.
    """

    def __init__(self, cell: ThreadCell) -> None:
        super().__init__()
        self.cell = cell
        self.actor = cell.actor

    def on_start(self) -> None:
        # Named after the actor's class, not the host's, so thread dumps say who it is.
        threading.current_thread().name = f"{type(self.actor).__name__}-{next(_thread_numbers)}"
        try:
            self.actor.on_start()
        except Exception as error:
            self.cell.from_thread(self.cell.start_failed, error)
            self._run_on_stop(ExitReason.crash(error))
            raise

    def on_receive(self, message: Any) -> Any:
        cell = self.cell
        if type(message) is not _Bridged or cell.dead:
            return None  # killed: whatever is still queued is ignored
        if message.message is _PING:
            assert message.slot is not None
            cell.from_thread(message.slot.resolve, True)
            return None
        try:
            value = self.actor.receive(message.message)
        except type(self.actor).expected_errors as error:
            cell.processed += 1
            cell.from_thread(cell.reply_failed, message.slot, error)
            return None
        except Exception as error:
            cell.from_thread(cell.thread_crashed, error)
            raise  # pykka stops the thread and calls on_failure
        cell.processed += 1
        if message.slot is not None:
            cell.from_thread(cell.replied, message.slot, value)
        return None

    def on_stop(self) -> None:
        self._run_on_stop(self.cell.stop_reason())

    def on_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        error = exception_value or RuntimeError("thread actor failed")
        self._run_on_stop(ExitReason.crash(error))

    def _run_on_stop(self, reason: ExitReason) -> None:
        """Every end of the thread passes here once; ``finished`` tells the trio side
        that the actor is done, so that, as for a trio actor, it dies after ``on_stop``."""
        try:
            self.actor.on_stop(reason)
        except Exception as error:
            self.cell.from_thread(self.cell.record_failure, error)
        finally:
            self.cell.finished.set()


class _DaemonHost(_Host):
    use_daemon_thread = True


class ThreadCell(Cell):
    """Differences from a trio cell: no children, no system queue, a ``REJECT`` mailbox
    (pykka's inbox cannot make a sender wait), and kill abandons the thread."""

    actor: ThreadActor

    def __init__(
        self,
        system: ActorSystem,
        parent: ParentCell | None,
        spec: ActorSpec,
        name: str,
        actor: ThreadActor,
        restarts: int = 0,
    ) -> None:
        capacity = (spec.mailbox or MailboxConfig()).capacity
        super().__init__(system, parent, spec, name, actor, capacity, restarts)
        self.token = trio.lowlevel.current_trio_token()
        self.pykka_ref: pykka.ActorRef[Any] | None = None
        self.pending: set[ReplySlot] = set()
        self.reason: ExitReason | None = None
        self.requested: ExitReason | None = None
        self.start_failure: BaseException | None = None
        self.finished = threading.Event()  # set on the thread once its on_stop is done
        self.stopped = trio.Event()

    # -- called from the actor's thread -----------------------------------------------
    def from_thread(self, fn: Any, *args: Any) -> None:
        with contextlib.suppress(trio.RunFinishedError):
            self.token.run_sync_soon(fn, *args)

    def stop_reason(self) -> ExitReason:
        """What the thread's ``on_stop`` is told; set on the trio side before the stop
        message that makes the thread read it."""
        return self.reason or self.requested or NORMAL

    # -- run on the trio side, posted by the thread -------------------------------------
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
        self._note(ExitReason.crash(error))

    def start_failed(self, error: BaseException) -> None:
        self.start_failure = error
        self._note(ExitReason.crash(error))

    # -- trio side ----------------------------------------------------------------------
    def _note(self, reason: ExitReason) -> None:
        """The first reason wins: a crash noted by the thread, or a kill."""
        if self.reason is None:
            self.reason = reason

    def _end(self, reason: ExitReason) -> None:
        self._note(reason)
        self.stopped.set()

    def _send(self, message: Any, slot: ReplySlot | None) -> None:
        ref = self.pykka_ref
        if ref is None or self.dead:
            raise ActorDead(self.path, self.exit_reason)
        if inbox_size(ref) >= self.capacity:
            raise MailboxFull(self.path, self.capacity)
        try:
            ref.tell(_Bridged(message, slot))
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

    async def _watch_thread(self) -> None:
        await trio.to_thread.run_sync(
            self.finished.wait, abandon_on_cancel=True, limiter=trio.CapacityLimiter(1)
        )
        self._end(self.requested or ExitReason.crash(RuntimeError("thread stopped unexpectedly")))

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            host = _DaemonHost if type(self.actor).use_daemon_thread else _Host
            self.pykka_ref = host.start(self)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._watch_thread)
                if await self._confirm_started():
                    self.started = True
                    self.state = ActorState.RUNNING
                    task_status.started()
                    await self.stopped.wait()
                nursery.cancel_scope.cancel()
            if not self.started:
                # Raised out here, not in the nursery, so the spawner sees this error
                # (and its cause) rather than an exception group.
                cause = self.start_failure
                detail = f": {cause!r}" if cause is not None else " (see its log)"
                raise RuntimeError(f"thread actor {self.path} did not start{detail}") from cause
        except Exception as error:
            self.start_error = error
            self._end(ExitReason.crash(error))
            if self.pykka_ref is not None and self.pykka_ref.is_alive():
                self.pykka_ref.stop(block=False)
        finally:
            self.die(self.reason or NORMAL)
            if not self.started:
                task_status.started()

    async def _confirm_started(self) -> bool:
        """Wait for a ping through the inbox: it is answered only after ``on_start``.
        False if the thread ended first (``start_failed`` has said why) or took longer
        than ``START_TIMEOUT``."""
        slot = ReplySlot()
        with contextlib.suppress(ActorDead):
            self._send(_PING, slot)
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
        return slot.done

    def drain_on_death(self) -> None:
        error = ActorDead(self.path, self.exit_reason)
        for slot in list(self.pending):
            slot.fail(error)
        self.pending.clear()

    def mailbox_depth(self) -> int:
        return 0 if self.pykka_ref is None else inbox_size(self.pykka_ref)


def inbox_size(ref: pykka.ActorRef[Any]) -> int:
    inbox = ref.actor_inbox
    return inbox.qsize() if isinstance(inbox, queue.Queue) else 0
