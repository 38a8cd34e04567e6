"""The one restart loop both supervisors use: admit, back off, start, and count a start
that fails as one more restart."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from chorusline.actors import (
    SHUTDOWN,
    ActorDead,
    ActorRef,
    ActorSpec,
    ActorSystem,
    ChildExit,
    ExitKind,
    ExitReason,
)
from chorusline.supervisors import (
    Backoff,
    ChildSpec,
    GetChild,
    Intensity,
    Restart,
    RestartIntensityExceeded,
    Strategy,
    dynamic_supervisor_spec,
    supervisor_spec,
)
from chorusline.supervisors.restarter import wants_restart
from tests.supervisors.conftest import Log, Recorder

BACKOFF = Backoff(initial=1.0, factor=2.0, maximum=10.0, jitter=0.0)


class Flaky(Recorder):
    """Its ``on_start`` fails for the incarnations listed in ``fail_on`` (1 = first)."""

    def __init__(self, log: Log, name: str, starts: list[int], fail_on: set[int]) -> None:
        super().__init__(log, name)
        self.starts = starts
        self.fail_on = fail_on

    async def on_start(self) -> None:
        self.starts.append(1)
        if len(self.starts) in self.fail_on:
            raise OSError(f"start {len(self.starts)} fails")
        await super().on_start()


def history(node: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(h["child"], h["reason"].split(":")[0], h["action"])
            for h in node["intensity"]["history"]]


async def crash(ref: ActorRef) -> None:
    with pytest.raises(ActorDead):
        await ref.ask("boom")
    await ref.join()


async def test_a_failed_restart_of_a_static_child_backs_off_and_restarts_the_rest(
    system: ActorSystem, log: Log, autojump_clock: trio.testing.MockClock
) -> None:
    starts: list[int] = []
    sup = await system.spawn(supervisor_spec(
        "sup",
        [ChildSpec(factory=lambda: Flaky(log, "a", starts, {2}), name="a"),
         ChildSpec(factory=lambda: Recorder(log, "b"), name="b")],
        strategy=Strategy.REST_FOR_ONE,
        intensity=Intensity(max_restarts=5, period=60),
        backoff=BACKOFF,
    ))
    mark = len(log.events)
    before = trio.current_time()
    await crash(await sup.ask(GetChild("a")))
    # The second start of "a" fails: one more restart, after the backoff, and "b" (after
    # "a" in rest_for_one) is started only once "a" is up again.
    await log.wait_for(lambda _e: ("start", "b") in log.events[mark:])
    assert trio.current_time() - before == pytest.approx(1.0, abs=0.01)
    # ("stop", "a") twice: after the crash, and after the failed start (on_stop runs then too).
    assert [e[:2] for e in log.events[mark:]] == [
        ("stop", "a"), ("stop", "b"), ("stop", "a"), ("start", "a"), ("start", "b")
    ]
    (node,) = system.snapshot()["tree"]["children"]
    assert history(node) == [("a", "crash", "restart"), ("a", "start failed", "restart")]
    a, b = await sup.ask(GetChild("a")), await sup.ask(GetChild("b"))
    assert a.statistics().restarts == 2 and b.statistics().restarts == 1
    assert len(starts) == 3


async def test_a_failed_restart_of_a_dynamic_child_backs_off_and_counts(
    system: ActorSystem, log: Log, autojump_clock: trio.testing.MockClock
) -> None:
    starts: list[int] = []
    convs = await system.spawn(dynamic_supervisor_spec(
        "convs", intensity=Intensity(max_restarts=5, period=60), backoff=BACKOFF
    ))
    spec = ChildSpec(factory=lambda: Flaky(log, "c", starts, {2, 3}), name="c-1",
                     restart=Restart.PERMANENT)
    first = await system.registry.get_or_spawn("c-1", spec, under=convs)
    before = trio.current_time()
    await crash(first)
    with trio.fail_after(60):
        again = await system.registry.wait_for("c-1")
    # Restart 1 (immediate) and 2 (after 1 s) fail to start; restart 3 (after 2 s more) runs.
    assert trio.current_time() - before == pytest.approx(3.0, abs=0.01)
    assert again is not first and again.statistics().restarts == 3
    (node,) = system.snapshot()["tree"]["children"]
    assert history(node) == [
        ("c-1", "crash", "restart"),
        ("c-1", "start failed", "restart"),
        ("c-1", "start failed", "restart"),
    ]
    assert convs.is_alive and len(starts) == 4


async def test_restarts_that_keep_failing_to_start_escalate(
    system: ActorSystem, log: Log, autojump_clock: trio.testing.MockClock
) -> None:
    starts: list[int] = []
    sup = await system.spawn(supervisor_spec(
        "sup",
        [ChildSpec(factory=lambda: Flaky(log, "a", starts, set(range(2, 100))), name="a")],
        intensity=Intensity(max_restarts=3, period=60),
        backoff=BACKOFF,
    ))
    await crash(await sup.ask(GetChild("a")))
    reason = await sup.join()
    assert reason.kind is ExitKind.CRASH
    assert isinstance(reason.error, RestartIntensityExceeded)
    assert len(starts) == 1 + 3  # the first start, then the three restarts admitted


async def test_a_child_stopped_by_its_parent_is_never_restarted(system: ActorSystem) -> None:
    ref = await system.spawn(ActorSpec(lambda: Recorder(Log()), name="r"))
    spec = ChildSpec(factory=lambda: Recorder(Log()), name="r", restart=Restart.PERMANENT)
    crashed = ExitReason.crash(RuntimeError("boom"))
    assert wants_restart(spec, ChildExit(ref, crashed, spec))
    assert not wants_restart(spec, ChildExit(ref, crashed, spec, stopped_by_parent=True))
    assert wants_restart(spec, ChildExit(ref, SHUTDOWN, spec))  # permanent: any exit
    transient = ChildSpec(factory=spec.factory, name="r", restart=Restart.TRANSIENT)
    assert not wants_restart(transient, ChildExit(ref, SHUTDOWN, transient))
