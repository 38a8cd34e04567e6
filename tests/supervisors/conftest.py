"""Shared actors for the kernel's tests: they record what happens to them into a log the
test can wait on (no sleeps), and fail on command."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio

from chorusline.actors import Actor, ActorSystem, ExitReason, SyncActor, open_actor_system


class Log:
    """An append-only event log with a way to wait for an event to appear."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self._changed = trio.Event()

    def add(self, event: Any) -> None:
        self.events.append(event)
        self._changed.set()
        self._changed = trio.Event()

    async def wait_for(self, predicate: Any) -> None:
        while not any(predicate(e) for e in self.events):
            await self._changed.wait()


class Recorder(Actor):
    """Echoes asks; ``"boom"`` crashes it; ``("sleep", s)`` sleeps; logs its lifecycle."""

    def __init__(self, log: Log, name: str = "r") -> None:
        self.log = log
        self.name = name
        self.seen: list[Any] = []

    async def on_start(self) -> None:
        self.log.add(("start", self.name))

    async def receive(self, message: Any) -> Any:
        self.seen.append(message)
        if message == "boom":
            raise RuntimeError("boom")
        if message == "stop":
            self.context.stop()
            return "stopping"
        if message == "seen":
            return list(self.seen)
        if isinstance(message, tuple) and message[0] == "sleep":
            await trio.sleep(message[1])
            return "slept"
        if isinstance(message, tuple) and message[0] == "wait":
            await message[1].wait()
            return "waited"
        return message

    async def on_stop(self, reason: ExitReason) -> None:
        self.log.add(("stop", self.name, reason.kind.value))


class Counter(SyncActor):
    def __init__(self) -> None:
        self.count = 0

    def handle(self, message: Any) -> Any:
        if message == "get":
            return self.count
        if message == "boom":
            raise RuntimeError("boom")
        self.count += 1
        return self.count


@pytest.fixture
def log() -> Log:
    return Log()


@pytest.fixture
async def system() -> AsyncIterator[ActorSystem]:
    async with open_actor_system("test") as actor_system:
        yield actor_system
