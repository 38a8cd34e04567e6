"""Fault context managers: the plan holds inside the block, and is gone after it, however
the block ends. Uses the plugin's ``actor_system`` fixture, as an embedding app would."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from chorusline.actors import ActorDead, ActorSpec, ActorSystem, AskTimeout, ExitKind, SyncActor
from chorusline.testing import crash, delay, drop, injector


class Echo(SyncActor):
    def handle(self, message: Any) -> Any:
        return message


async def test_crash_fires_on_the_nth_message_and_is_cleared_after(
    actor_system: ActorSystem,
) -> None:
    echo = await actor_system.spawn(ActorSpec(Echo, name="echo"))
    with crash(actor_system, "/echo", nth=2):
        assert "/echo" in actor_system.faults.active()
        assert await echo.ask(1) == 1
        with pytest.raises(ActorDead):
            await echo.ask(2)
    assert (await echo.join()).kind is ExitKind.CRASH
    assert actor_system.faults.active() == {}


async def test_a_crash_not_yet_due_is_cancelled_when_the_block_ends(
    actor_system: ActorSystem,
) -> None:
    echo = await actor_system.spawn(ActorSpec(Echo, name="echo"))
    with crash(actor_system, "/echo", nth=5):
        assert await echo.ask(1) == 1
    for i in range(5):
        assert await echo.ask(i) == i
    assert echo.is_alive


async def test_delay_by_pattern_holds_for_the_block_only(
    actor_system: ActorSystem, autojump_clock: trio.testing.MockClock
) -> None:
    refs = [await actor_system.spawn(ActorSpec(Echo, name=f"slow-{i}")) for i in range(2)]
    with delay(actor_system, "/slow-*", 1.5):
        assert actor_system.faults.active()["/slow-*"]["delay"] == 1.5
        start = trio.current_time()
        for ref in refs:
            await ref.ask("x", timeout=10)
        assert trio.current_time() - start == pytest.approx(3.0, abs=0.1)
    start = trio.current_time()
    for ref in refs:
        await ref.ask("x")
    assert trio.current_time() - start < 0.1


async def test_drop_loses_asks_inside_the_block_only(
    actor_system: ActorSystem, autojump_clock: trio.testing.MockClock
) -> None:
    echo = await actor_system.spawn(ActorSpec(Echo, name="echo"))
    with drop(actor_system, "/echo", 1.0, seed=3), pytest.raises(AskTimeout):
        await echo.ask("lost", timeout=1.0)
    assert await echo.ask("kept") == "kept"


async def test_an_exception_inside_the_block_still_clears_the_plan(
    actor_system: ActorSystem, autojump_clock: trio.testing.MockClock
) -> None:
    echo = await actor_system.spawn(ActorSpec(Echo, name="anyone-1"))
    with (
        pytest.raises(RuntimeError, match="the test failed"),
        delay(actor_system, "/anyone-*", 5.0),
    ):
        assert "/anyone-*" in actor_system.faults.active()
        raise RuntimeError("the test failed")
    assert actor_system.faults.active() == {}
    start = trio.current_time()
    assert await echo.ask("quick") == "quick"
    assert trio.current_time() - start < 0.1


async def test_a_path_that_already_has_a_plan_is_refused(actor_system: ActorSystem) -> None:
    actor_system.faults.delay("/busy", 1.0)
    with (
        pytest.raises(ValueError, match="already has a fault plan"),
        crash(actor_system, "/busy"),
    ):
        pass
    assert actor_system.faults.active()["/busy"]["delay"] == 1.0  # left as it was
    assert actor_system.faults.active()["/busy"]["crash_after"] is None
    assert injector(actor_system) is actor_system.faults
