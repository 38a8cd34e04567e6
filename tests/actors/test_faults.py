"""Fault injection by path hits exactly what it names."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from chorusline.actors import ActorDead, ActorSpec, ActorSystem, AskTimeout, ExitKind
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
