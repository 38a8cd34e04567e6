"""The actor system: root guardian, registry, dead letters, faults, and clean shutdown.

``open_actor_system`` runs the root guardian in a task whose cancel scope is shielded,
so cancelling the block that owns the system does not tear actors down in random order:
the block's exit (normal, error or cancellation) stops everything in reverse start order,
each actor bounded by its shutdown timeout, and only then returns.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio

from chorusline.actors.actor import Actor
from chorusline.actors.cell import Cell
from chorusline.actors.dead_letters import DeadLetters
from chorusline.actors.errors import ActorSystemCrashed
from chorusline.actors.faults import FaultInjector
from chorusline.actors.messages import SHUTDOWN, ChildExit, ExitReason, StartChild, Terminated
from chorusline.actors.parenting import ParentCell
from chorusline.actors.recorder import FlightRecorder
from chorusline.actors.ref import ActorRef
from chorusline.actors.registry import Registry
from chorusline.actors.reply import AskTimer
from chorusline.actors.spec import ActorSpec
from chorusline.actors.thread_actor import ThreadActor
from chorusline.actors.thread_cell import ThreadCell
from chorusline.actors.trio_cell import TrioCell


class Guardian(Actor):
    """The root: hosts top-level actors, starts children on request, and brings the
    system down when a ``critical`` child dies abnormally."""

    async def receive(self, message: Any) -> Any:
        if isinstance(message, StartChild):
            return await self.context.spawn(message.spec)
        return await super().receive(message)

    async def on_child_exit(self, child: ChildExit) -> None:
        if child.spec.critical and not child.reason.is_normal:
            self.context.system.crash(child.ref, child.reason)


class ActorSystem:
    def __init__(self, name: str = "chorusline", *,
                 recorder: FlightRecorder | None = None) -> None:
        self.name = name
        self.recorder = recorder or FlightRecorder()
        self.dead_letters = DeadLetters()
        self.faults = FaultInjector(self)
        self.registry = Registry(self)
        self.timer = AskTimer()
        self._cells: dict[str, Cell] = {}
        self._counter = itertools.count(1)
        self.root = TrioCell(self, None, ActorSpec(Guardian, name=""), "", Guardian())
        self.crashed: tuple[ActorRef, ExitReason] | None = None
        self._body_scope: trio.CancelScope | None = None

    # -- cells ----------------------------------------------------------------------------
    def make_cell(self, parent: ParentCell, spec: ActorSpec, name: str, restarts: int) -> Cell:
        """Build the actor, then the cell its class calls for: where an actor runs is
        decided by what it is, so no flag can disagree with the factory."""
        actor = spec.factory()
        if isinstance(actor, ThreadActor):
            return ThreadCell(self, parent, spec, name, actor, restarts)
        if isinstance(actor, Actor):
            return TrioCell(self, parent, spec, name, actor, restarts)
        raise TypeError(f"it returned {type(actor).__name__}, not an Actor or a ThreadActor")

    def fresh_name(self, spec: ActorSpec) -> str:
        probe = getattr(spec.factory, "__name__", "actor")
        return f"{probe}-{next(self._counter)}"

    def remember(self, cell: Cell) -> None:
        self._cells[cell.path] = cell

    def started(self, cell: Cell) -> None:
        """Bind the registry key only once ``on_start`` succeeded, so whoever waits for
        the key never gets an actor that cannot take messages yet."""
        if cell.spec.register_as is not None and not cell.dead:
            self.registry.register(cell.spec.register_as, cell.ref)

    def forget(self, cell: Cell) -> None:
        if self._cells.get(cell.path) is cell:
            del self._cells[cell.path]
        if cell.spec.register_as is not None:
            self.registry.unregister(cell.spec.register_as, cell.ref)

    def cell_at(self, path: str) -> Cell | None:
        return self._cells.get(path)

    def live_cells(self) -> list[Cell]:
        """Every live actor's cell (not the root's), for what addresses actors by pattern."""
        return list(self._cells.values())

    # -- public API -----------------------------------------------------------------------
    def lookup(self, path: str) -> ActorRef | None:
        """The live actor at ``path`` (e.g. ``/app/sessions/s-1``), or None."""
        cell = self._cells.get(path)
        return None if cell is None else cell.ref

    async def spawn(self, spec: ActorSpec) -> ActorRef:
        """Start a top-level actor; returns once its ``on_start`` succeeded."""
        return await self.root.spawn_child(spec)

    async def stop(self, ref: ActorRef, timeout: float | None = None) -> ExitReason:
        """Stop any actor from outside; a supervised one counts as stopped by its parent,
        so it is not restarted."""
        parent = ref._cell.parent
        if parent is not None:
            await parent.stop_child(ref, timeout)
        return await ref.join()

    @asynccontextmanager
    async def watch(self, ref: ActorRef) -> AsyncIterator[trio.MemoryReceiveChannel[Terminated]]:
        """For code outside actors: a channel that yields ``Terminated`` exactly once."""
        send, receive = trio.open_memory_channel[Terminated](1)
        cell = ref._cell
        if cell.dead:
            send.send_nowait(Terminated(ref, cell.exit_reason_or_normal()))
            send.close()
        else:
            cell.outside_watchers.append(send)
        async with receive:
            yield receive

    def snapshot(self, max_children: int | None = None) -> dict[str, Any]:
        """A JSON-serialisable tree of every live actor with its statistics; with
        ``max_children``, each parent lists at most that many (its busiest)."""
        return {
            "system": self.name,
            "tree": self.root.snapshot(max_children),
            "dead_letters": self.dead_letters.to_json(),
            "faults": self.faults.active(),
            "registry_size": len(self.registry.keys()),
        }

    def children(self, path: str) -> list[dict[str, Any]] | None:
        """The nodes (without their own children) of the live actor at ``path``'s
        children, in start order; None if no actor lives there."""
        cell = self.root if path == "/" else self._cells.get(path)
        if cell is None:
            return None
        return [child.node() for child in getattr(cell, "children", ())]

    def inspect(self, path: str) -> dict[str, Any] | None:
        """One live actor's statistics, current message and watchers; None if no actor
        lives at ``path``."""
        cell = self.root if path == "/" else self._cells.get(path)
        return None if cell is None else cell.inspect()

    def crash(self, ref: ActorRef, reason: ExitReason) -> None:
        if self.crashed is None:
            self.crashed = (ref, reason)
        if self._body_scope is not None:
            self._body_scope.cancel()

    async def _run_root(self, task_status: trio.TaskStatus[None]) -> None:
        with trio.CancelScope(shield=True):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self.timer.run)
                await self.root.run(task_status)
                nursery.cancel_scope.cancel()

    async def shutdown(self, timeout: float = 30.0) -> None:
        self.root.request_stop(SHUTDOWN)
        with trio.move_on_after(timeout):
            await self.root.wait_dead()
            return
        self.root.hard_cancel()
        await self.root.wait_dead()


@asynccontextmanager
async def open_actor_system(
    name: str = "chorusline", *, shutdown_timeout: float = 30.0,
    recorder: FlightRecorder | None = None,
) -> AsyncIterator[ActorSystem]:
    """Run an actor system for the duration of the block.

    ``recorder`` sets how much history the flight recorder keeps (the default keeps the
    last 1,000 events and 200 finished traces).

    Raises ``ActorSystemCrashed`` after shutdown if a critical top-level actor died
    abnormally (the block is cancelled when that happens).
    """
    system = ActorSystem(name, recorder=recorder)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(system._run_root)
            try:
                with trio.CancelScope() as body:
                    system._body_scope = body
                    yield system
            finally:
                system._body_scope = None
                with trio.CancelScope(shield=True):
                    await system.shutdown(shutdown_timeout)
    except BaseExceptionGroup as group:
        # The root task never raises, so a group here only wraps the block's own error:
        # hand it back unwrapped, as if no nursery were involved.
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from group.exceptions[0].__cause__
        raise
    if system.crashed is not None:
        ref, reason = system.crashed
        raise ActorSystemCrashed(f"critical actor {ref.path} died: {reason}") from reason.error
