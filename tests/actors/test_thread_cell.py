"""The thread cell: a thread actor awaited without blocking the event loop, its crashes,
start failures, stops and kills."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import trio

from chorusline.actors import (
    ActorDead,
    ActorSpec,
    ActorStartFailed,
    ActorSystem,
    ExitKind,
    SyncActor,
    ThreadActor,
)


class Blocking(ThreadActor):
    """Blocks its thread on request; records which thread runs it."""

    expected_errors = (ValueError,)

    def __init__(self, release: threading.Event | None = None) -> None:
        super().__init__()
        self.release = release or threading.Event()

    def receive(self, message: Any) -> Any:
        if message == "block":
            self.release.wait(10)
            return "unblocked"
        if message == "thread":
            return threading.current_thread().name
        if message == "bad":
            raise ValueError("bad input")
        if message == "crash":
            raise RuntimeError("thread crash")
        return message


class FailsToStart(ThreadActor):
    def on_start(self) -> None:
        raise OSError("no model file")


class Echo(SyncActor):
    def handle(self, message: Any) -> Any:
        return message


async def test_ask_runs_on_the_actors_thread(system: ActorSystem) -> None:
    ref = await system.spawn(ActorSpec(Blocking, name="w"))
    assert await ref.ask(41) == 41
    name = await ref.ask("thread")
    assert name != threading.current_thread().name and name.startswith("Blocking")
    assert ref.statistics().kind == "thread"


async def test_a_blocked_thread_actor_does_not_delay_trio_actors(system: ActorSystem) -> None:
    release = threading.Event()
    worker = await system.spawn(ActorSpec(lambda: Blocking(release), name="w"))
    echo = await system.spawn(ActorSpec(Echo, name="echo"))
    async with trio.open_nursery() as nursery:
        result: list[str] = []

        async def blocked() -> None:
            result.append(await worker.ask("block", timeout=30))

        nursery.start_soon(blocked)
        # While the worker's thread is blocked, the loop keeps answering.
        for i in range(1000):
            assert await echo.ask(i) == i
        await trio.lowlevel.checkpoint()
        assert result == []
        release.set()
    assert result == ["unblocked"]


async def test_expected_errors_return_and_other_errors_crash(system: ActorSystem) -> None:
    ref = await system.spawn(ActorSpec(Blocking, name="w"))
    with pytest.raises(ValueError, match="bad input"):
        await ref.ask("bad")
    assert await ref.ask("still alive") == "still alive"
    with pytest.raises(ActorDead):
        await ref.ask("crash")
    reason = await ref.join()
    assert reason.kind is ExitKind.CRASH and isinstance(reason.error, RuntimeError)


async def test_start_failure_in_the_thread_is_reported(system: ActorSystem) -> None:
    with pytest.raises(Exception, match="did not start"):
        await system.spawn(ActorSpec(FailsToStart, name="f"))


async def test_kill_declares_a_stuck_thread_dead_at_once(system: ActorSystem) -> None:
    release = threading.Event()
    ref = await system.spawn(ActorSpec(lambda: Blocking(release), name="w"))
    async with trio.open_nursery() as nursery:

        async def stuck() -> None:
            with pytest.raises(ActorDead):
                await ref.ask("block", timeout=30)

        nursery.start_soon(stuck)
        await trio.testing.wait_all_tasks_blocked()
        started = time.monotonic()
        assert system.faults.kill("/w")
        assert (await ref.join()).kind is ExitKind.KILLED
        assert time.monotonic() - started < 5
    release.set()


async def test_stop_runs_pending_messages_then_stops_the_thread(system: ActorSystem) -> None:
    ref = await system.spawn(ActorSpec(Blocking, name="w"))
    pykka_ref = ref._cell.pykka_ref  # type: ignore[attr-defined]
    reason = await system.stop(ref)
    assert reason.kind is ExitKind.SHUTDOWN
    assert not pykka_ref.is_alive()


async def test_a_failed_on_start_names_its_cause(system: ActorSystem) -> None:
    with pytest.raises(ActorStartFailed) as info:
        await system.spawn(ActorSpec(FailsToStart, name="f"))
    causes = []
    error: BaseException | None = info.value
    while error is not None:
        causes.append(error)
        error = error.__cause__
    assert any(isinstance(e, OSError) and str(e) == "no model file" for e in causes)
    assert system.lookup("/f") is None
