"""The actor system: shutdown order, cancellation, snapshots, critical actors, watch."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio
import trio.testing

from chorusline.actors import (
    Actor,
    ActorSpec,
    ActorStartFailed,
    ActorSystem,
    ActorSystemCrashed,
    ExitKind,
    open_actor_system,
)
from tests.actors.conftest import Log, Recorder


class Parent(Actor):
    def __init__(self, log: Log, name: str, children: list[str]) -> None:
        self.log = log
        self.name = name
        self.names = children

    async def on_start(self) -> None:
        for child in self.names:
            await self.context.spawn(ActorSpec(lambda c=child: Recorder(self.log, c), name=child))

    async def on_stop(self, reason: Any) -> None:
        self.log.add(("stop", self.name, reason.kind.value))


async def test_block_exit_stops_everything_in_reverse_start_order() -> None:
    log = Log()
    async with open_actor_system() as system:
        await system.spawn(ActorSpec(lambda: Parent(log, "p1", ["a", "b"]), name="p1"))
        await system.spawn(ActorSpec(lambda: Recorder(log, "c"), name="c"))
    stops = [e[1] for e in log.events if e[0] == "stop"]
    assert stops == ["c", "b", "a", "p1"]


async def test_cancelling_the_block_still_shuts_down_in_order() -> None:
    log = Log()
    with trio.CancelScope() as scope:
        async with open_actor_system() as system:
            await system.spawn(ActorSpec(lambda: Recorder(log, "a"), name="a"))
            await system.spawn(ActorSpec(lambda: Recorder(log, "b"), name="b"))
            scope.cancel()
            await trio.sleep_forever()
    assert [e[1:] for e in log.events if e[0] == "stop"] == [
        ("b", "shutdown"),
        ("a", "shutdown"),
    ]


async def test_an_error_in_the_block_propagates_unwrapped_after_shutdown() -> None:
    log = Log()
    with pytest.raises(KeyError):
        async with open_actor_system() as system:
            await system.spawn(ActorSpec(lambda: Recorder(log, "a"), name="a"))
            raise KeyError("mine")
    assert ("stop", "a", "shutdown") in log.events


async def test_snapshot_is_json_and_shows_the_tree(system: ActorSystem, log: Log) -> None:
    await system.spawn(ActorSpec(lambda: Parent(log, "p", ["x"]), name="p"))
    snapshot = json.loads(json.dumps(system.snapshot()))
    (parent,) = snapshot["tree"]["children"]
    assert parent["path"] == "/p" and parent["state"] == "running"
    assert [child["path"] for child in parent["children"]] == ["/p/x"]
    assert {"mailbox_depth", "mailbox_capacity", "processed", "restarts"} <= set(parent)


async def test_a_pruned_snapshot_shows_the_busiest_children_and_counts_the_rest(
        system: ActorSystem, log: Log) -> None:
    names = [f"c{n}" for n in range(8)]
    await system.spawn(ActorSpec(lambda: Parent(log, "p", names), name="p"))
    busy = system.lookup("/p/c5")
    assert busy is not None
    gate = trio.Event()
    busy.tell(("wait", gate))  # c5 is stuck on this one...
    busy.tell("queued")        # ...so this one waits in its mailbox
    await trio.testing.wait_all_tasks_blocked()
    (parent,) = system.snapshot(max_children=3)["tree"]["children"]
    assert parent["children_total"] == 8
    assert [c["path"] for c in parent["children"]] == ["/p/c5", "/p/c0", "/p/c1"]
    (whole,) = system.snapshot()["tree"]["children"]
    assert "children_total" not in whole and len(whole["children"]) == 8
    detail = system.inspect("/p/c5")
    assert detail is not None and detail["current_message"] == "tuple"
    assert detail["node"]["mailbox_depth"] == 1 and "children" not in detail["node"]
    assert [c["name"] for c in system.children("/p") or []] == names
    assert system.children("/p/c5") == [] and system.children("/nobody") is None
    assert system.inspect("/nobody") is None
    gate.set()


async def test_inspect_names_who_watches_an_actor(system: ActorSystem, log: Log) -> None:
    class Watcher(Actor):
        async def on_start(self) -> None:
            target = self.context.system.lookup("/target")
            assert target is not None
            self.context.watch(target)

    await system.spawn(ActorSpec(lambda: Recorder(log, "t"), name="target"))
    await system.spawn(ActorSpec(Watcher, name="watcher"))
    target = system.inspect("/target")
    watcher = system.inspect("/watcher")
    assert target is not None and watcher is not None
    assert target["watchers"] == ["/watcher"] and target["current_message"] is None
    assert watcher["watching"] == ["/target"]


async def test_critical_actor_crash_brings_the_system_down() -> None:
    log = Log()
    with pytest.raises(ActorSystemCrashed):
        async with open_actor_system() as system:
            ref = await system.spawn(
                ActorSpec(lambda: Recorder(log, "core"), name="core", critical=True)
            )
            await system.spawn(ActorSpec(lambda: Recorder(log, "other"), name="other"))
            ref.tell("boom")
            await trio.sleep_forever()
    assert ("stop", "other", "shutdown") in log.events


async def test_watch_delivers_terminated_exactly_once(system: ActorSystem, log: Log) -> None:
    class Watcher(Actor):
        def __init__(self) -> None:
            self.notes: list[Any] = []

        async def receive(self, message: Any) -> Any:
            if message == "notes":
                return [(n.ref.path, n.reason.kind) for n in self.notes]
            if isinstance(message, tuple):
                for _ in range(2):
                    self.context.watch(message[1])
                return None
            self.notes.append(message)
            return None

    target = await system.spawn(ActorSpec(lambda: Recorder(log), name="t"))
    watcher = await system.spawn(ActorSpec(Watcher, name="w"))
    await watcher.ask(("watch", target))
    target.tell("boom")
    await target.join()
    await trio.testing.wait_all_tasks_blocked()
    assert await watcher.ask("notes") == [("/t", ExitKind.CRASH)]
    # Watching an actor that is already dead delivers at once, still exactly once.
    await watcher.ask(("watch", target))
    assert await watcher.ask("notes") == [("/t", ExitKind.CRASH)] * 2


async def test_outside_watch_of_live_and_dead_actors(system: ActorSystem, log: Log) -> None:
    ref = await system.spawn(ActorSpec(lambda: Recorder(log), name="r"))
    async with system.watch(ref) as notes:
        ref.tell("stop")
        note = await notes.receive()
        assert note.ref is ref and note.reason.kind is ExitKind.NORMAL
    async with system.watch(ref) as notes:
        assert [n.reason.kind async for n in notes] == [ExitKind.NORMAL]


async def test_a_factory_must_return_an_actor(system: ActorSystem) -> None:
    with pytest.raises(ActorStartFailed, match="not an Actor or a ThreadActor"):
        await system.spawn(ActorSpec(lambda: object(), name="x"))  # type: ignore[arg-type,return-value]
    assert system.lookup("/x") is None
