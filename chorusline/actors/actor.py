"""The actor base classes and the context the kernel hands to each running trio actor.

An actor is private state plus hooks. Where it runs is decided by its class, nothing
else: an ``Actor`` (or ``SyncActor``) runs as a trio task, a ``ThreadActor``
(``thread_actor.py``) on its own OS thread. Both share ``ActorBase``: what the kernel
reads from the class whatever the actor's home (its kind, its expected errors, its
snapshot fields). The kernel guarantees that the hooks of one actor never run
concurrently, so the state needs no locks; everything else talks to it through its
``ActorRef``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, ClassVar

from chorusline.actors.mailbox import MailboxConfig
from chorusline.actors.messages import ChildExit, ExitReason
from chorusline.actors.stats import ActorKind
from chorusline.protocols import ChildCrashed

if TYPE_CHECKING:
    from chorusline.actors.ref import ActorRef
    from chorusline.actors.spec import ActorSpec
    from chorusline.actors.system import ActorSystem
    from chorusline.actors.trio_cell import TrioCell


class ActorBase:
    """What every actor declares to the kernel, wherever it runs.

    ``expected_errors``: exception types raised by the message handler that go back to
    the asker and leave the actor running ("your request is wrong" answers); any other
    exception crashes the actor. ``kind`` is shown in statistics and snapshots and tells
    the console what the actor is.
    """

    kind: ClassVar[ActorKind] = ActorKind.ACTOR
    expected_errors: ClassVar[tuple[type[Exception], ...]] = ()

    def introspect(self) -> dict[str, Any]:
        """Extra JSON-safe fields for the tree snapshot (supervisors add their strategy)."""
        return {}


class Actor(ActorBase):
    """A trio actor: override ``receive``; optionally ``on_start`` and ``on_stop``.

    ``receive``'s return value is the reply to an ``ask`` (ignored for a ``tell``). An
    exception escaping ``receive`` crashes the actor ("let it crash": its supervisor
    decides what happens next), except types listed in ``expected_errors``.
    """

    mailbox: ClassVar[MailboxConfig] = MailboxConfig()

    context: ActorContext

    async def on_start(self) -> None:
        """Runs before the first message; an exception here fails the spawn."""

    async def receive(self, message: Any) -> Any:
        """Handle one message. Unknown messages are a bug in the sender: say so loudly."""
        raise TypeError(f"{type(self).__name__} does not handle {type(message).__name__}")

    async def on_stop(self, reason: ExitReason) -> None:
        """Runs once after the last message (also after a crash), children already gone."""

    # -- hooks for actors that host children (supervisors, the root guardian) --------
    async def on_child_started(self, ref: ActorRef, spec: ActorSpec) -> None:
        """A child this actor spawned has finished ``on_start``."""

    async def on_child_exit(self, child: ChildExit) -> None:
        """A child died. The default links the two: an abnormal exit crashes the parent."""
        if not child.reason.is_normal:
            raise ChildCrashed(child.ref.path, child.reason)


class SyncActor(Actor):
    """An actor whose handler never awaits: override ``handle`` instead of ``receive``.

    Pure state machines (rate-limit buckets, counters, routers) need no awaiting, and
    saying so lets the kernel answer an ask to an idle actor directly in the asker's
    task: no scheduler pass, no task switch. That is sound because a plain function
    cannot be interrupted, so "one message at a time" still holds.
    """

    def handle(self, message: Any) -> Any:
        raise TypeError(f"{type(self).__name__} does not handle {type(message).__name__}")

    async def receive(self, message: Any) -> Any:
        return self.handle(message)


class ActorContext:
    """What a running trio actor may do to the world beyond replying."""

    __slots__ = ("_cell",)

    def __init__(self, cell: TrioCell) -> None:
        self._cell = cell

    @property
    def self_ref(self) -> ActorRef:
        return self._cell.ref

    @property
    def path(self) -> str:
        return self._cell.path

    @property
    def system(self) -> ActorSystem:
        return self._cell.system

    @property
    def children(self) -> list[ActorRef]:
        """Live children in start order."""
        return [c.ref for c in self._cell.children]

    async def spawn(self, spec: ActorSpec, *, restarts: int = 0) -> ActorRef:
        """Start a child owned by this actor; returns once its ``on_start`` succeeded.
        ``restarts`` is what the child's statistics (and its ``ChildExit``) carry on from:
        a supervisor passes the count of earlier incarnations."""
        return await self._cell.spawn_child(spec, restarts=restarts)

    async def stop_child(self, ref: ActorRef, timeout: float | None = None) -> None:
        """Stop one child (``on_stop`` runs); cancel it if it overruns ``timeout``."""
        await self._cell.stop_child(ref, timeout)

    def watch(self, ref: ActorRef) -> None:
        """Get ``Terminated(ref, reason)`` once when ``ref`` dies (at once if it is dead).

        Watching an actor already watched is a no-op until its ``Terminated`` has been
        handled, so a watch never yields two notifications.
        """
        cell = self._cell
        if ref in cell.watching:
            return
        cell.watching[ref] = None
        ref._cell.add_watcher(cell)

    def unwatch(self, ref: ActorRef) -> None:
        self._cell.watching.pop(ref, None)
        ref._cell.remove_watcher(self._cell)

    def stop(self) -> None:
        """Stop this actor after the current message (exit reason: normal)."""
        self._cell.request_stop()

    def start_soon(self, fn: Callable[[], Awaitable[object]], name: str | None = None) -> None:
        """Run a background task owned by this actor: cancelled when it stops, and an
        exception in it crashes the actor as if ``receive`` had raised."""
        self._cell.start_background(fn, name)
