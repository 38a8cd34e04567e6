"""What a parent learns when a child dies: one ``ChildExit`` value, never the child's cell."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import trio

from chorusline.actors import (
    Actor,
    ActorDead,
    ActorRef,
    ActorSpec,
    ActorSystem,
    ChildExit,
    ExitKind,
)
from chorusline.protocols import ChildCrashed
from tests.actors.conftest import Log, Recorder


class Parent(Actor):
    """Spawns children on request and hands every ``ChildExit`` to the test's log."""

    def __init__(self, log: Log) -> None:
        self.log = log

    async def receive(self, message: Any) -> Any:
        match message:
            case ("spawn", ActorSpec() as spec, int(restarts)):
                return await self.context.spawn(spec, restarts=restarts)
            case ("stop", ActorRef() as ref):
                await self.context.stop_child(ref)
                return None
        return await super().receive(message)

    async def on_child_exit(self, child: ChildExit) -> None:
        self.log.add(child)


async def exits(log: Log, count: int) -> list[ChildExit]:
    with trio.fail_after(30):
        await log.wait_for(lambda _e: sum(isinstance(e, ChildExit) for e in log.events) >= count)
    return [e for e in log.events if isinstance(e, ChildExit)]


async def test_a_crashed_child_is_reported_as_a_value(system: ActorSystem, log: Log) -> None:
    parent = await system.spawn(ActorSpec(lambda: Parent(log), name="p"))
    spec = ActorSpec(lambda: Recorder(log, "c"), name="c")
    child: ActorRef = await parent.ask(("spawn", spec, 3))
    with pytest.raises(ActorDead):
        await child.ask("boom")
    (note,) = await exits(log, 1)
    assert note.ref is child and note.spec is spec
    assert note.kind is ExitKind.CRASH and note.reason.kind is ExitKind.CRASH
    assert isinstance(note.error, RuntimeError) and str(note.error) == "boom"
    assert note.stopped_by_parent is False
    assert note.restarts == 3  # what the next incarnation carries on from
    with pytest.raises(dataclasses.FrozenInstanceError):
        note.restarts = 4  # type: ignore[misc]
    assert parent.is_alive


async def test_a_child_stopped_by_its_parent_says_so(system: ActorSystem, log: Log) -> None:
    parent = await system.spawn(ActorSpec(lambda: Parent(log), name="p"))
    child = await parent.ask(("spawn", ActorSpec(lambda: Recorder(log, "c"), name="c"), 0))
    await parent.ask(("stop", child))
    (note,) = await exits(log, 1)
    assert note.ref is child and note.kind is ExitKind.SHUTDOWN and note.error is None
    assert note.stopped_by_parent is True and note.restarts == 0


async def test_a_child_stopping_itself_is_not_stopped_by_its_parent(
    system: ActorSystem, log: Log
) -> None:
    parent = await system.spawn(ActorSpec(lambda: Parent(log), name="p"))
    child = await parent.ask(("spawn", ActorSpec(lambda: Recorder(log, "c"), name="c"), 0))
    assert await child.ask("stop") == "stopping"
    (note,) = await exits(log, 1)
    assert note.kind is ExitKind.NORMAL and note.stopped_by_parent is False


async def test_system_stop_of_a_child_counts_as_stopped_by_its_parent(
    system: ActorSystem, log: Log
) -> None:
    parent = await system.spawn(ActorSpec(lambda: Parent(log), name="p"))
    child = await parent.ask(("spawn", ActorSpec(lambda: Recorder(log, "c"), name="c"), 0))
    assert (await system.stop(child)).kind is ExitKind.SHUTDOWN
    (note,) = await exits(log, 1)
    assert note.stopped_by_parent is True


async def test_by_default_a_child_crash_crashes_its_parent(
    system: ActorSystem, log: Log
) -> None:
    class Linked(Actor):
        async def on_start(self) -> None:
            self.child = await self.context.spawn(ActorSpec(lambda: Recorder(log, "c"), name="c"))

        async def receive(self, message: Any) -> Any:
            return self.child

    parent = await system.spawn(ActorSpec(Linked, name="p"))
    child = await parent.ask("child")
    with pytest.raises(ActorDead):
        await child.ask("boom")
    reason = await parent.join()
    assert reason.kind is ExitKind.CRASH and isinstance(reason.error, ChildCrashed)
    assert reason.error.reason.kind is ExitKind.CRASH
