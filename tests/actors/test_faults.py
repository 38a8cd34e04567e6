"""Fault injection by path hits exactly what it names, and a pattern every match."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from chorusline.actors import (
    Actor,
    ActorDead,
    ActorRef,
    ActorSpec,
    ActorSystem,
    AskTimeout,
    ExitKind,
    StartChild,
)
from tests.actors.conftest import Log, Recorder


async def test_crash_on_nth_message_hits_only_the_named_actor(
    system: ActorSystem, log: Log
) -> None:
    a = await system.spawn(ActorSpec(lambda: Recorder(log, "a"), name="a"))
    b = await system.spawn(ActorSpec(lambda: Recorder(log, "b"), name="b"))
    system.faults.crash("/a", on_message=3)
    assert await a.ask(1) == 1
    assert await a.ask(2) == 2
    with pytest.raises(ActorDead):
        await a.ask(3)
    assert (await a.join()).kind is ExitKind.CRASH
    for i in range(5):
        assert await b.ask(i) == i
    assert b.is_alive and b.statistics().failed == 0
    # The one-shot crash was consumed.
    assert system.faults.active() == {}


async def test_delay_slows_each_message(
    system: ActorSystem, log: Log, autojump_clock: trio.testing.MockClock
) -> None:
    a = await system.spawn(ActorSpec(lambda: Recorder(log), name="a"))
    system.faults.delay("/a", 2.0)
    start = trio.current_time()
    await a.ask(1, timeout=10)
    await a.ask(2, timeout=10)
    assert trio.current_time() - start == pytest.approx(4.0, abs=0.1)
    system.faults.clear("/a")
    start = trio.current_time()
    await a.ask(3)
    assert trio.current_time() - start < 0.1


async def test_drop_loses_messages_and_asks_time_out(
    system: ActorSystem, log: Log, autojump_clock: trio.testing.MockClock
) -> None:
    a = await system.spawn(ActorSpec(lambda: Recorder(log), name="a"))
    system.faults.drop("/a", 1.0)
    with pytest.raises(AskTimeout):
        await a.ask("lost", timeout=1.0)
    system.faults.drop("/a", 0.5, seed=7)
    outcomes = []
    for i in range(40):
        try:
            outcomes.append(await a.ask(i, timeout=1.0) == i)
        except AskTimeout:
            outcomes.append(False)
    assert 5 < sum(outcomes) < 35
    assert system.dead_letters.by_reason["dropped by fault injection"] == 41 - sum(outcomes)


async def test_kill_stops_a_busy_actor_at_once(system: ActorSystem, log: Log) -> None:
    a = await system.spawn(ActorSpec(lambda: Recorder(log, "a"), name="a"))
    gate = trio.Event()
    async with trio.open_nursery() as nursery:
        async def stuck() -> None:
            with pytest.raises(ActorDead):
                await a.ask(("wait", gate))

        nursery.start_soon(stuck)
        await trio.testing.wait_all_tasks_blocked()
        assert system.faults.kill("/a")
    assert (await a.join()).kind is ExitKind.KILLED
    assert not system.faults.kill("/nobody")


# -- patterns: one shared plan for every matching actor --------------------------------------

async def test_pattern_crash_counts_messages_across_matching_actors(
    system: ActorSystem, log: Log
) -> None:
    a = await system.spawn(ActorSpec(lambda: Recorder(log, "a"), name="w-a"))
    b = await system.spawn(ActorSpec(lambda: Recorder(log, "b"), name="w-b"))
    other = await system.spawn(ActorSpec(lambda: Recorder(log, "o"), name="other"))
    system.faults.crash("/w-*", on_message=2)
    assert "/w-*" in system.faults.active()
    assert await other.ask(1) == 1  # not matched: does not count
    assert await a.ask(1) == 1
    with pytest.raises(ActorDead):
        await b.ask(2)  # the second message the matching actors handle, together
    assert (await b.join()).kind is ExitKind.CRASH
    # One crash, then consumed: neither actor crashes again.
    for i in range(3):
        assert await a.ask(i) == i
    assert a.is_alive and system.faults.active() == {}


class Host(Actor):
    """Spawns children on request, as a dynamic supervisor would (without restarts), and
    echoes anything else."""

    async def receive(self, message: Any) -> Any:
        if isinstance(message, StartChild):
            return await self.context.spawn(message.spec)
        return message


async def took(ref: ActorRef) -> float:
    start = trio.current_time()
    await ref.ask("x", timeout=10)
    return trio.current_time() - start


async def test_pattern_delay_reaches_a_child_spawned_after_it_was_set(
    system: ActorSystem, log: Log, autojump_clock: trio.testing.MockClock
) -> None:
    host = await system.spawn(ActorSpec(Host, name="host"))
    system.faults.delay("/host/s-?", 2.0)
    late = await host.ask(StartChild(ActorSpec(lambda: Recorder(log), name="s-1")))
    unmatched = await host.ask(StartChild(ActorSpec(lambda: Recorder(log), name="s-10")))
    assert late.path == "/host/s-1"
    assert await took(late) == pytest.approx(2.0, abs=0.1)
    assert await took(unmatched) < 0.1
    assert await took(host) < 0.1  # the parent is not matched either


async def test_an_exact_plan_wins_over_a_matching_pattern(
    system: ActorSystem, log: Log, autojump_clock: trio.testing.MockClock
) -> None:
    a = await system.spawn(ActorSpec(lambda: Recorder(log), name="p-a"))
    b = await system.spawn(ActorSpec(lambda: Recorder(log), name="p-b"))
    system.faults.delay("/p-*", 3.0)
    system.faults.delay("/p-a", 1.0)
    system.faults.delay("/p-?", 5.0)  # also matches both, but was set later: loses
    assert await took(a) == pytest.approx(1.0, abs=0.1)
    assert await took(b) == pytest.approx(3.0, abs=0.1)
    system.faults.clear("/p-a")  # the pattern applies to it again
    assert await took(a) == pytest.approx(3.0, abs=0.1)
    assert set(system.faults.active()) == {"/p-*", "/p-?"}


async def test_clearing_a_pattern_frees_every_actor_it_matched(
    system: ActorSystem, log: Log, autojump_clock: trio.testing.MockClock
) -> None:
    refs = [await system.spawn(ActorSpec(lambda: Recorder(log), name=f"c-{i}"))
            for i in range(2)]
    system.faults.drop("/c-*", 1.0)
    for ref in refs:
        with pytest.raises(AskTimeout):
            await ref.ask("lost", timeout=1.0)
    system.faults.clear("/c-*")
    assert system.faults.active() == {}
    start = trio.current_time()
    assert [await ref.ask(i) for i, ref in enumerate(refs)] == [0, 1]
    assert trio.current_time() - start < 0.1
    assert system.snapshot()["faults"] == {}


async def test_kill_by_pattern_kills_every_live_match(system: ActorSystem, log: Log) -> None:
    a = await system.spawn(ActorSpec(lambda: Recorder(log, "a"), name="k-a"))
    b = await system.spawn(ActorSpec(lambda: Recorder(log, "b"), name="k-b"))
    keep = await system.spawn(ActorSpec(lambda: Recorder(log, "keep"), name="keep"))
    assert system.faults.kill("/k-*")
    assert (await a.join()).kind is ExitKind.KILLED
    assert (await b.join()).kind is ExitKind.KILLED
    assert keep.is_alive and await keep.ask(1) == 1
    assert not system.faults.kill("/k-*")  # nothing left to kill
