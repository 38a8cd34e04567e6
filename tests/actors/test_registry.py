"""Named actors and get_or_spawn: at most one live actor per key."""

from __future__ import annotations

import pytest
import trio

from chorusline.actors import ActorSpec, ActorSystem, NameTaken
from tests.actors.conftest import Log, Recorder


async def test_get_or_spawn_under_100_concurrent_callers_yields_one_actor(
    system: ActorSystem, log: Log
) -> None:
    class Slow(Recorder):
        async def on_start(self) -> None:
            await trio.sleep(0.01)  # widen the race window: every caller arrives mid-spawn
            await super().on_start()

    refs = []

    async def call() -> None:
        refs.append(await system.registry.get_or_spawn("conv-1", ActorSpec(lambda: Slow(log))))

    async with trio.open_nursery() as nursery:
        for _ in range(100):
            nursery.start_soon(call)
    assert len({id(r) for r in refs}) == 1
    assert [e for e in log.events if e[0] == "start"] == [("start", "r")]
    assert system.registry.lookup("conv-1") is refs[0]


async def test_key_is_freed_when_the_actor_dies(system: ActorSystem, log: Log) -> None:
    spec = ActorSpec(lambda: Recorder(log))
    first = await system.registry.get_or_spawn("k", spec)
    first.tell("stop")
    await first.join()
    assert system.registry.lookup("k") is None
    second = await system.registry.get_or_spawn("k", spec)
    assert second is not first and second.is_alive


async def test_failed_spawn_lets_the_next_caller_try_again(system: ActorSystem, log: Log) -> None:
    attempts = []

    class Flaky(Recorder):
        async def on_start(self) -> None:
            attempts.append(1)
            if len(attempts) == 1:
                raise OSError("first start fails")

    spec = ActorSpec(lambda: Flaky(log))
    with pytest.raises(Exception, match="failed to start"):
        await system.registry.get_or_spawn("k", spec)
    assert (await system.registry.get_or_spawn("k", spec)).is_alive


async def test_register_refuses_a_second_live_actor(system: ActorSystem, log: Log) -> None:
    a = await system.spawn(ActorSpec(lambda: Recorder(log), name="a"))
    b = await system.spawn(ActorSpec(lambda: Recorder(log), name="b"))
    system.registry.register("name", a)
    with pytest.raises(NameTaken):
        system.registry.register("name", b)
    with pytest.raises(NameTaken):
        await system.spawn(ActorSpec(lambda: Recorder(log), name="a"))
