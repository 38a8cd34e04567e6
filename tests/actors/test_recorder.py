"""The flight recorder keeps a bounded history, feeds watchers without ever waiting for
them, and hears about every crash, kill, passivation and fault from the kernel."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from chorusline.actors import (
    ActorDead,
    ActorSpec,
    ActorSystem,
    FlightRecorder,
    open_actor_system,
)
from tests.actors.conftest import Log, Recorder


def test_events_are_numbered_in_order_and_only_the_newest_are_kept() -> None:
    recorder = FlightRecorder(keep_events=3)
    for n in range(5):
        recorder.record("tick", "/a", n=n)
    assert [e.seq for e in recorder.events] == [3, 4, 5]
    assert [e.detail["n"] for e in recorder.events] == [2, 3, 4]
    assert recorder.events[-1].to_json()["kind"] == "tick"


def test_a_slow_subscriber_keeps_a_bounded_queue_and_learns_what_it_skipped() -> None:
    recorder = FlightRecorder()
    slow = recorder.subscribe(capacity=10)
    for n in range(10_000):
        recorder.record("tick", "/a", n=n)
    assert slow.pending() == 10
    skipped, items = slow.take()
    assert skipped == 9_990
    assert [item.detail["n"] for _, item in items] == list(range(9_990, 10_000))
    assert slow.take() == (0, [])
    slow.close()
    assert not recorder.watched
    recorder.record("tick", "/a")
    assert slow.pending() == 0


async def test_a_subscriber_wakes_when_something_is_recorded() -> None:
    recorder = FlightRecorder()
    subscription = recorder.subscribe()
    async with trio.open_nursery() as nursery:
        woke = trio.Event()

        async def waiter() -> None:
            await subscription.wait()
            woke.set()

        nursery.start_soon(waiter)
        await trio.testing.wait_all_tasks_blocked()
        assert not woke.is_set()
        recorder.record("tick", "/a")
        with trio.fail_after(10):
            await woke.wait()


def test_a_trace_follows_its_request_through_a_rename_and_finishes_once() -> None:
    recorder = FlightRecorder(keep_traces=2)
    watcher = recorder.subscribe()
    trace = recorder.open_trace("r-2", tenant="t")
    with trace.span("session", "/chat/sessions/s"):
        pass
    trace.first_token("/chat/engines/smollm2-135m-instruct/driver")
    trace.first_token("/chat/engines/smollm2-135m-instruct/driver")  # only the first counts
    recorder.rename("r-2", "r-1")
    assert recorder.trace("r-2") is None and recorder.trace("r-1") is trace
    recorder.finish_trace("r-1", "complete", "stop")
    recorder.finish_trace("r-1", "error")  # ignored: it already finished
    body = recorder.find("r-1").to_json()  # type: ignore[union-attr]
    assert body["status"] == "complete" and body["finish_reason"] == "stop"
    assert body["state"] == "finished" and body["retry_of"] == "r-2"
    assert [s["name"] for s in body["spans"]] == ["session", "first_token"]
    assert body["ttft_ms"] is not None
    assert "spans" not in trace.to_json(spans=False)
    assert [kind for kind, _ in watcher.take()[1]] == ["trace"]
    for n in range(3):
        recorder.open_trace(f"x-{n}")
        recorder.finish_trace(f"x-{n}", "complete")
    assert [t.request_id for t in recorder.traces] == ["x-1", "x-2"]


def test_spans_for_an_untraced_request_go_nowhere() -> None:
    recorder = FlightRecorder()
    recorder.spans_for("nobody").mark("draft", "/x")
    assert recorder.find("nobody") is None


async def test_the_kernel_records_crashes_kills_and_faults(log: Log) -> None:
    recorder = FlightRecorder()
    async with open_actor_system("t", recorder=recorder) as system:
        a = await system.spawn(ActorSpec(lambda: Recorder(log, "a"), name="a"))
        with pytest.raises(ActorDead):
            await a.ask("boom")
        await a.join()
        b = await system.spawn(ActorSpec(lambda: Recorder(log, "b"), name="b"))
        system.faults.delay("/b", 1.0)
        system.faults.clear("/b")
        assert system.faults.kill("/b")
        await b.join()
    kinds = [(e.kind, e.path) for e in recorder.events]
    assert kinds[:4] == [("actor_crashed", "/a"), ("fault_injected", "/b"),
                         ("fault_cleared", "/b"), ("fault_injected", "/b")]
    assert ("actor_killed", "/b") in kinds
    crash = recorder.events[0].detail
    assert crash["actor_class"] == "Recorder"
    assert crash["failure"]["type"] == "RuntimeError"
    assert recorder.events[3].detail == {"kill": True}


async def test_passivation_is_recorded(system: ActorSystem, log: Log,
                                       autojump_clock: trio.testing.MockClock) -> None:
    ref = await system.spawn(ActorSpec(lambda: Recorder(log, "p"), name="p",
                                       idle_timeout=5.0))
    await ref.join()
    assert [e.kind for e in system.recorder.events] == ["actor_passivated"]
