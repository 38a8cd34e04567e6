"""What a trio cell does as a parent: spawning, stopping, child exits, background tasks.

Split from ``trio_cell`` so that the message loop and the child bookkeeping each read as
one idea. Children run in the parent's own nursery, so no child can outlive its parent;
stopping them in reverse start order, each bounded by its shutdown timeout, is what
gives supervisors and the actor system their orderly shutdown. Only trio actors host
children: a thread actor has no nursery to run them in.
"""

from __future__ import annotations

import heapq
from abc import abstractmethod
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import trio

from chorusline.actors.cell import Cell
from chorusline.actors.envelopes import Crash
from chorusline.actors.errors import ActorDead, ActorStartFailed, NameTaken
from chorusline.actors.messages import SHUTDOWN, ChildExit, ExitReason
from chorusline.actors.stats import ActorState

if TYPE_CHECKING:
    from chorusline.actors.actor import Actor
    from chorusline.actors.ref import ActorRef
    from chorusline.actors.spec import ActorSpec


class ParentCell(Cell):
    """A cell whose actor may host children and background tasks (in its run's nursery)."""

    actor: Actor
    nursery: trio.Nursery | None
    children: dict[Cell, None]

    @abstractmethod
    def post_system(self, message: Any) -> None:
        """Queue a system message (child exit, background crash) ahead of user mail."""

    async def spawn_child(self, spec: ActorSpec, *, restarts: int = 0) -> ActorRef:
        if self.nursery is None or self.state not in (ActorState.STARTING, ActorState.RUNNING):
            raise ActorDead(self.path, self.exit_reason)
        name = spec.name or self.system.fresh_name(spec)
        if "/" in name or not name:
            raise ValueError(f"actor name {name!r} must be non-empty and contain no '/'")
        if self.system.lookup(f"{self.path}/{name}") is not None:
            raise NameTaken(f"{self.path}/{name} is already alive")
        try:
            child = self.system.make_cell(self, spec, name, restarts)
        except Exception as error:
            raise ActorStartFailed(f"factory of {self.path}/{name} failed: {error}") from error
        self.children[child] = None
        self.system.remember(child)
        await self.nursery.start(child.run)
        if child.start_error is not None:
            raise ActorStartFailed(
                f"{child.path} failed to start: {child.start_error!r}"
            ) from child.start_error
        self.system.started(child)
        await self.actor.on_child_started(child.ref, spec)
        return child.ref

    async def stop_child(self, ref: ActorRef, timeout: float | None = None) -> None:
        child = ref._cell
        if child.parent is not self:
            raise ValueError(f"{ref.path} is not a child of {self.path}")
        await stop_cell(child, child.spec.shutdown_timeout if timeout is None else timeout)

    async def _stop_children(self) -> None:
        for child in reversed(list(self.children)):
            await stop_cell(child, child.spec.shutdown_timeout)

    def child_exited(self, child: Cell, reason: ExitReason) -> None:
        """Tell the parent's loop (queued while it is still starting). A child that never
        started is not reported: its spawner already got ``ActorStartFailed``. A child
        stopped on purpose is reported too (``ChildExit.stopped_by_parent`` says so), so
        a supervisor can forget it instead of restarting it."""
        self.children.pop(child, None)
        if not child.started or self.state not in (ActorState.STARTING, ActorState.RUNNING):
            return
        self.post_system(
            ChildExit(
                ref=child.ref,
                reason=reason,
                spec=child.spec,
                stopped_by_parent=child.stopped_by_parent,
                restarts=child.restarts,
            )
        )

    def start_background(self, fn: Callable[[], Awaitable[object]], name: str | None) -> None:
        if self.nursery is None or self.dead:
            raise ActorDead(self.path, self.exit_reason)

        async def guarded() -> None:
            try:
                await fn()
            except Exception as error:
                self.post_system(Crash(error))

        self.nursery.start_soon(guarded, name=name or f"{self.path}:background")

    def snapshot(self, max_children: int | None = None) -> dict[str, Any]:
        """With ``max_children``, a parent of more children shows only that many of the
        busiest, and says how many it has (``children_total``): a dynamic supervisor of
        100,000 conversations costs a ranking by counters, not 100,000 snapshots."""
        node = super().snapshot()
        children = list(self.children)
        if max_children is not None and len(children) > max_children:
            node["children_total"] = len(children)
            children = heapq.nlargest(max_children, children, key=Cell.busyness)
        node["children"] = [child.snapshot(max_children) for child in children]
        return node


async def stop_cell(cell: Cell, timeout: float) -> None:
    """Stop ``cell`` (its ``on_stop`` runs); past ``timeout`` cancel it outright."""
    if cell.dead:
        return
    cell.stopped_by_parent = True
    cell.request_stop(SHUTDOWN)
    with trio.move_on_after(timeout):
        await cell.wait_dead()
        return
    cell.hard_cancel()
    await cell.wait_dead()
