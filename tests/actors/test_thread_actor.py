"""A thread actor is an actor like any other: its class alone puts it on a thread, with
the same hooks (on_start / receive / on_stop, introspect, expected_errors) as a trio actor."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from chorusline.actors import (
    ActorDead,
    ActorKind,
    ActorSpec,
    ActorSystem,
    ExitKind,
    ExitReason,
    ThreadActor,
)


class Hooked(ThreadActor):
    """Declares nothing but its base class: that alone makes it a thread actor."""

    def __init__(self, events: list[tuple[Any, ...]]) -> None:
        self.events = events

    def on_start(self) -> None:
        self.events.append(("start", threading.current_thread().name))

    def receive(self, message: Any) -> Any:
        if message == "crash":
            raise RuntimeError("thread crash")
        self.events.append(("receive", threading.current_thread().name))
        return message * 2

    def on_stop(self, reason: ExitReason) -> None:
        self.events.append(("stop", threading.current_thread().name, reason.kind))

    def introspect(self) -> dict[str, Any]:
        return {"events_seen": len(self.events)}



async def test_a_thread_actor_needs_no_flag_its_class_decides(system: ActorSystem) -> None:
    events: list[tuple[Any, ...]] = []
    ref = await system.spawn(ActorSpec(lambda: Hooked(events), name="h"))
    assert await ref.ask(21) == 42
    stats = ref.statistics()
    assert stats.kind == "thread"  # what the admin API and the console read
    assert stats.kind is ActorKind.THREAD
    assert stats.actor_class == "Hooked" and stats.processed == 1
    (node,) = system.snapshot()["tree"]["children"]
    assert node["kind"] == "thread" and node["events_seen"] == 2 and node["children"] == []
    reason = await system.stop(ref)
    assert reason.kind is ExitKind.SHUTDOWN
    # All three hooks ran on one thread of the actor's own, and on_stop was done (with
    # the reason) before the actor was declared dead, as for a trio actor.
    threads = {event[1] for event in events}
    assert len(threads) == 1 and threads != {threading.current_thread().name}
    assert next(iter(threads)).startswith("Hooked")
    assert [event[0] for event in events] == ["start", "receive", "stop"]
    assert events[-1][2] is ExitKind.SHUTDOWN


async def test_on_stop_runs_on_the_thread_after_a_crash(system: ActorSystem) -> None:
    events: list[tuple[Any, ...]] = []
    ref = await system.spawn(ActorSpec(lambda: Hooked(events), name="h"))
    with pytest.raises(ActorDead):
        await ref.ask("crash")
    assert (await ref.join()).kind is ExitKind.CRASH
    assert events[-1][0] == "stop" and events[-1][2] is ExitKind.CRASH
    assert ref.statistics().failed == 1
