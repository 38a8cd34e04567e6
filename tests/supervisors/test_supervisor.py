"""Static supervisors: strategies, restart types, intensity, escalation, backoff."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from chorusline.actors import ActorRef, ActorSystem, ExitKind
from chorusline.supervisors import (
    AutoShutdown,
    Backoff,
    ChildSpec,
    GetChild,
    Intensity,
    Restart,
    Strategy,
    WhichChildren,
    supervisor_spec,
)
from tests.supervisors.conftest import Log, Recorder


def child(log: Log, name: str, restart: Restart = Restart.PERMANENT, **kw: Any) -> ChildSpec:
    return ChildSpec(factory=lambda: Recorder(log, name), name=name, restart=restart, **kw)


async def start_tree(
    system: ActorSystem, log: Log, strategy: Strategy, **kw: Any
) -> ActorRef:
    spec = supervisor_spec(
        "sup",
        [child(log, "a"), child(log, "b"), child(log, "c")],
        strategy=strategy,
        **kw,
    )
    return await system.spawn(spec)


async def crash_child(sup: ActorRef, name: str) -> None:
    ref = await sup.ask(GetChild(name))
    with pytest.raises(Exception):  # noqa: B017 - ActorDead: the crash answers the ask
        await ref.ask("boom")
    await ref.join()


def lifecycle(log: Log, since: int) -> list[tuple[str, ...]]:
    return [e[:2] for e in log.events[since:]]


async def wait_started(log: Log, since: int, names: list[str]) -> None:
    await log.wait_for(lambda _e: [e[1] for e in log.events[since:] if e[0] == "start"] == names)


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        (Strategy.ONE_FOR_ONE, [("start", "b")]),
        (
            Strategy.ONE_FOR_ALL,
            [("stop", "c"), ("stop", "a"), ("start", "a"), ("start", "b"), ("start", "c")],
        ),
        (Strategy.REST_FOR_ONE, [("stop", "c"), ("start", "b"), ("start", "c")]),
    ],
)
async def test_strategies_restart_exactly_the_right_children_in_order(
    system: ActorSystem, log: Log, strategy: Strategy, expected: list[tuple[str, str]]
) -> None:
    sup = await start_tree(system, log, strategy)
    assert lifecycle(log, 0) == [("start", "a"), ("start", "b"), ("start", "c")]
    mark = len(log.events)
    await crash_child(sup, "b")
    names = [e[1] for e in expected if e[0] == "start"]
    await wait_started(log, mark, names)
    # The crashed child's own on_stop ("stop", "b") runs as it dies; leave it out.
    events = [e for e in lifecycle(log, mark) if e != ("stop", "b")]
    assert events == expected
    children = dict(await sup.ask(WhichChildren()))
    assert all(ref is not None and ref.is_alive for ref in children.values())
    assert children["b"].statistics().restarts == 1


async def test_intensity_exceeded_stops_children_and_escalates(
    system: ActorSystem, log: Log, autojump_clock: trio.testing.MockClock
) -> None:
    sup = await start_tree(
        system, log, Strategy.ONE_FOR_ONE, intensity=Intensity(max_restarts=2, period=60)
    )
    for _ in range(2):
        mark = len(log.events)
        await crash_child(sup, "a")
        await wait_started(log, mark, ["a"])
    await crash_child(sup, "a")
    reason = await sup.join()
    assert reason.kind is ExitKind.CRASH
    assert "more than 2 restarts" in str(reason.error)
    # Escalation stopped the surviving children, in reverse start order.
    stops = [e[1] for e in log.events if e[0] == "stop"]
    assert stops[-2:] == ["c", "b"]


async def test_restarts_outside_the_period_do_not_escalate(
    system: ActorSystem, log: Log, autojump_clock: trio.testing.MockClock
) -> None:
    sup = await start_tree(
        system, log, Strategy.ONE_FOR_ONE, intensity=Intensity(max_restarts=1, period=5)
    )
    for _ in range(4):
        mark = len(log.events)
        await crash_child(sup, "a")
        await wait_started(log, mark, ["a"])
        await trio.sleep(6)
    assert sup.is_alive


async def test_escalation_reaches_the_parent_supervisor(
    system: ActorSystem, log: Log, autojump_clock: trio.testing.MockClock
) -> None:
    inner = supervisor_spec(
        "inner", [child(log, "x")], intensity=Intensity(max_restarts=0, period=60)
    )
    outer = await system.spawn(supervisor_spec("outer", [inner, child(log, "y")]))
    inner_ref = await outer.ask(GetChild("inner"))
    x = await inner_ref.ask(GetChild("x"))
    mark = len(log.events)
    with pytest.raises(Exception):  # noqa: B017
        await x.ask("boom")
    assert (await inner_ref.join()).kind is ExitKind.CRASH
    await wait_started(log, mark, ["x"])
    new_inner = await outer.ask(GetChild("inner"))
    assert new_inner is not inner_ref and new_inner.is_alive
    assert new_inner.statistics().restarts == 1


async def test_transient_children_are_not_restarted_after_a_normal_exit(
    system: ActorSystem, log: Log
) -> None:
    sup = await system.spawn(
        supervisor_spec("sup", [child(log, "t", Restart.TRANSIENT), child(log, "p")])
    )
    t = await sup.ask(GetChild("t"))
    await t.ask("stop")
    await t.join()
    await trio.testing.wait_all_tasks_blocked()
    assert await sup.ask(GetChild("t")) is None
    assert [e for e in log.events if e == ("start", "t")] == [("start", "t")]
    # ...but an abnormal exit of a transient child is restarted.
    mark = len(log.events)
    sup2 = await system.spawn(supervisor_spec("sup2", [child(log, "t2", Restart.TRANSIENT)]))
    await crash_child(sup2, "t2")
    await wait_started(log, mark, ["t2", "t2"])


async def test_temporary_children_are_never_restarted(system: ActorSystem, log: Log) -> None:
    sup = await system.spawn(supervisor_spec("sup", [child(log, "tmp", Restart.TEMPORARY)]))
    await crash_child(sup, "tmp")
    await trio.testing.wait_all_tasks_blocked()
    assert dict(await sup.ask(WhichChildren())) == {}


async def test_any_significant_child_exit_stops_the_supervisor(
    system: ActorSystem, log: Log
) -> None:
    sup = await system.spawn(
        supervisor_spec(
            "sup",
            [child(log, "job", Restart.TRANSIENT, significant=True), child(log, "helper")],
            auto_shutdown=AutoShutdown.ANY_SIGNIFICANT,
        )
    )
    job = await sup.ask(GetChild("job"))
    await job.ask("stop")
    assert (await sup.join()).kind is ExitKind.NORMAL
    assert ("stop", "helper") in lifecycle(log, 0)


async def test_backoff_delays_repeated_restarts(
    system: ActorSystem, log: Log, autojump_clock: trio.testing.MockClock
) -> None:
    sup = await start_tree(
        system,
        log,
        Strategy.ONE_FOR_ONE,
        intensity=Intensity(max_restarts=10, period=100),
        backoff=Backoff(initial=1.0, factor=2.0, maximum=10.0, jitter=0.0),
    )
    delays = []
    for _ in range(4):
        mark = len(log.events)
        before = trio.current_time()
        await crash_child(sup, "a")
        await wait_started(log, mark, ["a"])
        delays.append(round(trio.current_time() - before, 2))
    assert delays == [0.0, 1.0, 2.0, 4.0]


async def test_snapshot_shows_strategy_and_restart_history(
    system: ActorSystem, log: Log
) -> None:
    sup = await start_tree(system, log, Strategy.REST_FOR_ONE)
    mark = len(log.events)
    await crash_child(sup, "c")
    await wait_started(log, mark, ["c"])
    (node,) = system.snapshot()["tree"]["children"]
    assert node["kind"] == "supervisor" and node["strategy"] == "rest_for_one"
    history = node["intensity"]["history"]
    assert [(h["child"], h["action"]) for h in history] == [("c", "restart")]
    assert [c["name"] for c in node["children"]] == ["a", "b", "c"]


async def test_a_child_crashing_while_its_supervisor_starts_is_restarted(
    system: ActorSystem, log: Log
) -> None:
    class Crasher(Recorder):
        async def on_start(self) -> None:
            await super().on_start()

            async def boom() -> None:
                raise RuntimeError("early")

            if len([e for e in log.events if e == ("start", "early")]) == 1:
                self.context.start_soon(boom)

    class SlowStart(Recorder):
        async def on_start(self) -> None:
            for _ in range(20):
                await trio.lowlevel.checkpoint()
            await super().on_start()

    sup = await system.spawn(
        supervisor_spec(
            "sup",
            [
                ChildSpec(factory=lambda: Crasher(log, "early"), name="a"),
                ChildSpec(factory=lambda: SlowStart(log, "slow"), name="b"),
            ],
        )
    )
    await log.wait_for(lambda _e: log.events.count(("start", "early")) == 2)
    a = await sup.ask(GetChild("a"))
    assert a is not None and a.is_alive and a.statistics().restarts == 1


async def test_stopping_a_child_from_outside_tells_its_supervisor(
    system: ActorSystem, log: Log
) -> None:
    sup = await start_tree(system, log, Strategy.ONE_FOR_ONE)
    b = await sup.ask(GetChild("b"))
    await system.stop(b)
    await trio.testing.wait_all_tasks_blocked()
    assert await sup.ask(GetChild("b")) is None  # forgotten, not restarted
    assert log.events.count(("start", "b")) == 1


async def test_a_child_backing_off_shows_as_restarting_and_each_restart_is_recorded(
    system: ActorSystem, log: Log, mock_clock: trio.testing.MockClock
) -> None:
    sup = await start_tree(
        system, log, Strategy.ONE_FOR_ONE, intensity=Intensity(max_restarts=10, period=100),
        backoff=Backoff(initial=5.0, factor=2.0, maximum=10.0, jitter=0.0))
    mark = len(log.events)
    await crash_child(sup, "b")  # the first restart in a window is immediate
    await wait_started(log, mark, ["b"])
    await crash_child(sup, "b")  # the second backs off for 5 s
    await trio.testing.wait_all_tasks_blocked()
    (node,) = system.snapshot()["tree"]["children"]
    assert node["restarting"] == ["b"]
    assert [c["name"] for c in node["children"]] == ["a", "c"]
    mark = len(log.events)
    mock_clock.jump(5.0)
    await wait_started(log, mark, ["b"])
    await trio.testing.wait_all_tasks_blocked()  # the supervisor sees the start return
    (node,) = system.snapshot()["tree"]["children"]
    assert node["restarting"] == []
    restarts = [e for e in system.recorder.events if e.kind == "restart"]
    assert [(e.path, e.detail["delay"]) for e in restarts] == [("/sup/b", 0.0),
                                                                ("/sup/b", 5.0)]
    assert restarts[1].detail["restarts_in_window"] == 2


async def test_an_escalation_is_recorded(system: ActorSystem, log: Log) -> None:
    sup = await start_tree(system, log, Strategy.ONE_FOR_ONE,
                           intensity=Intensity(max_restarts=0, period=100))
    await crash_child(sup, "a")
    await sup.join()
    (escalated,) = [e for e in system.recorder.events if e.kind == "escalated"]
    assert escalated.path == "/sup" and escalated.detail["child"] == "a"
