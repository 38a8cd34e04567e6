"""Scheduling and fan-out through the engine driver and GPU worker, on a fake engine."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing

from chorusline.actors import ActorRef, ActorSystem, open_actor_system
from chorusline.chat.engine_driver import AdmissionLimits, EngineDriver
from chorusline.chat.gpu_worker import GetStats, GpuWorker
from chorusline.chat.stream import TokenStream
from chorusline.protocols import (
    ContextTooLong,
    EngineRestarted,
    GenerationRequest,
    Overloaded,
    SamplingParams,
    SlowConsumer,
)
from chorusline.supervisors import ChildSpec, GetChild, Strategy, supervisor_spec
from tests.chat.fake_engine import FakeEngine

WORKER = "test-gpu-worker"


class Tree:
    def __init__(self, system: ActorSystem, sup: ActorRef, engines: list[FakeEngine]) -> None:
        self.system = system
        self.sup = sup
        self.engines = engines
        self.submitted = 0

    async def driver(self) -> ActorRef:
        ref = await self.sup.ask(GetChild("driver"))
        assert ref is not None
        return ref

    async def submit(self, prompt: int = 3, max_tokens: int = 8, **kw: object) -> TokenStream:
        params = SamplingParams(max_tokens=max_tokens)
        driver = await self.driver()
        self.submitted += 1
        stream: TokenStream = await driver.ask(
            GenerationRequest(f"req-{self.submitted}", tuple(range(prompt)), params,
                              **kw)  # type: ignore[arg-type]
        )
        return stream


@asynccontextmanager
async def start(
    limits: AdmissionLimits | None = None, gate: threading.Event | None = None
) -> AsyncIterator[Tree]:
    engines: list[FakeEngine] = []

    def make_engine() -> FakeEngine:
        engines.append(FakeEngine(max_context=50, step_gate=gate))
        return engines[-1]

    async with open_actor_system() as system:
        spec = supervisor_spec(
            "engine",
            [
                ChildSpec(factory=lambda: EngineDriver(WORKER, limits), name="driver"),
                ChildSpec(
                    factory=lambda: GpuWorker(make_engine),
                    name="gpu-worker",
                    register_as=WORKER,
                ),
            ],
            strategy=Strategy.REST_FOR_ONE,
        )
        sup = await system.spawn(spec)
        yield Tree(system, sup, engines)


@pytest.fixture
async def tree() -> AsyncIterator[Tree]:
    async with start() as t:
        yield t


async def read_all(stream: TokenStream) -> tuple[str, list[str | None]]:
    text = ""
    finishes: list[str | None] = []
    async for chunks in stream:
        for chunk in chunks:
            text += chunk.text
            finishes.append(chunk.finish_reason)
    return text, finishes


async def test_a_request_streams_to_the_end(tree: Tree) -> None:
    stream = await tree.submit(prompt=3, max_tokens=4)
    text, finishes = await read_all(stream)
    assert text == "t3 t4 t5 t6 "
    assert finishes[-1] == "length"


async def test_one_step_message_serves_the_whole_batch(tree: Tree) -> None:
    texts: list[str] = []

    async def one() -> None:
        stream = await tree.submit(prompt=2, max_tokens=50)
        texts.append((await read_all(stream))[0])

    async with trio.open_nursery() as nursery:
        for _ in range(20):
            nursery.start_soon(one)
    assert texts == ["".join(f"t{i} " for i in range(2, 52))] * 20
    engine = tree.engines[0]
    # Every engine step was one Step message, and steps carried many requests at once.
    driver = await tree.driver()
    assert find(tree.system.snapshot()["tree"], driver.path)["steps"] == engine.steps
    assert engine.max_batch >= 10
    assert engine.steps < 20 * 50 / 5


def find(node: dict[str, Any], path: str) -> dict[str, Any]:
    """The snapshot node of the actor at ``path`` (what the admin API shows)."""
    if node.get("path") == path:
        return node
    for child in node.get("children", []):
        if found := find(child, path):
            return found
    return {}


async def test_a_closed_stream_aborts_its_request_in_the_engine(tree: Tree) -> None:
    stream = await tree.submit(max_tokens=1000)
    first = await stream.next()
    assert first
    stream.close()
    worker = tree.system.registry.lookup(WORKER)
    assert worker is not None
    engine = tree.engines[0]
    while ("abort", stream.request_id) not in engine.log:
        await worker.ask(GetStats())
    assert stream.request_id not in engine.running


async def test_refused_requests_fail_their_stream_with_the_engines_error(tree: Tree) -> None:
    stream = await tree.submit(prompt=80)
    with pytest.raises(ContextTooLong):
        await stream.next()


async def test_admission_control_refuses_with_retry_after() -> None:
    gate = threading.Event()  # holds the engine's first step: nothing leaves the queue
    async with start(AdmissionLimits(max_waiting_requests=2), gate) as tree:
        driver = await tree.driver()
        params = SamplingParams(max_tokens=4)
        await driver.ask(GenerationRequest("a", (1, 2), params))
        await driver.ask(GenerationRequest("b", (1, 2), params))
        with pytest.raises(Overloaded) as info:
            await driver.ask(GenerationRequest("c", (1, 2), params))
        assert info.value.retry_after >= 1.0
        gate.set()


async def test_a_queue_longer_than_its_time_budget_refuses_at_once() -> None:
    gate = threading.Event()  # holds the engine's first step: nothing leaves the queue
    # 1,000 prompt tokens/s until a step is measured: 0.01 s of queue is 10 tokens.
    async with start(AdmissionLimits(max_queue_seconds=0.01), gate) as tree:
        driver = await tree.driver()
        params = SamplingParams(max_tokens=4)
        await driver.ask(GenerationRequest("alone", tuple(range(40)), params))  # empty
        with pytest.raises(Overloaded) as info:
            await driver.ask(GenerationRequest("behind", (1, 2), params))
        assert info.value.retry_after >= 1.0
        gate.set()


async def test_gpu_worker_crash_mid_stream_continues_the_request(tree: Tree) -> None:
    stream = await tree.submit(prompt=3, max_tokens=30)
    seen = ""
    while seen.count("t") < 3:
        chunks = await stream.next()
        assert chunks is not None
        seen += "".join(c.text for c in chunks)
    worker = tree.system.registry.lookup(WORKER)
    assert worker is not None
    tree.system.faults.kill(worker.path)
    rest, finishes = await read_all(stream)
    tokens = (seen + rest).split()
    assert tokens == [f"t{i}" for i in range(3, 33)]
    assert finishes[-1] == "length"
    assert len(tree.engines) == 2  # the worker was restarted with a fresh engine


async def test_a_driver_crash_mid_stream_ends_the_stream_with_a_retryable_error(
        tree: Tree) -> None:
    stream = await tree.submit(prompt=3, max_tokens=30)
    assert await stream.next()
    driver = await tree.driver()
    tree.system.faults.kill(driver.path)
    with trio.fail_after(30), pytest.raises(EngineRestarted):  # a hang guard: it hung
        await read_all(stream)
    fresh = await tree.submit(prompt=3, max_tokens=2)  # the restarted pair serves again
    assert (await read_all(fresh))[0] == "t3 t4 "


async def test_a_reader_that_stops_reading_is_cut_off_with_bounded_memory() -> None:
    async with start(AdmissionLimits(max_pending_chars=200)) as tree:
        stream = await tree.submit(max_tokens=10_000)
        engine_steps_before = tree.engines[0].steps
        worker = tree.system.registry.lookup(WORKER)
        assert worker is not None
        with trio.fail_after(300):
            while not stream.finished:
                await worker.ask(GetStats())  # one engine step at a time, no sleeping
        assert tree.engines[0].steps - engine_steps_before < 200
        with pytest.raises(SlowConsumer):
            while await stream.next() is not None:
                pass
