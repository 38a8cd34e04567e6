"""Dynamic supervisors: on-demand children, restart types, passivation, limits."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from chorusline.actors import ActorSpec, ActorSystem, ExitKind, StartChild
from chorusline.supervisors import (
    ChildSpec,
    Restart,
    TooManyChildren,
    dynamic_supervisor_spec,
)
from tests.supervisors.conftest import Log, Recorder


async def test_children_start_on_demand_through_the_registry(
    system: ActorSystem, log: Log
) -> None:
    sessions = await system.spawn(dynamic_supervisor_spec("sessions"))
    refs = []
    for key in ["s-1", "s-2", "s-1"]:
        spec = ActorSpec(lambda k=key: Recorder(log, k), name=key)
        refs.append(await system.registry.get_or_spawn(key, spec, under=sessions))
    assert refs[0] is refs[2] and refs[0] is not refs[1]
    assert refs[0].path == "/sessions/s-1"


async def test_crashed_permanent_child_is_restarted_and_rebinds_its_key(
    system: ActorSystem, log: Log
) -> None:
    convs = await system.spawn(dynamic_supervisor_spec("convs"))
    spec = ChildSpec(factory=lambda: Recorder(log, "c"), name="c-1", restart=Restart.PERMANENT)
    first = await system.registry.get_or_spawn("c-1", spec, under=convs)
    first.tell("boom")
    await first.join()
    second = await system.registry.wait_for("c-1")
    assert second is not first and second.is_alive
    assert second.statistics().restarts == 1
    # get_or_spawn finds the restarted incarnation instead of making a second one.
    assert await system.registry.get_or_spawn("c-1", spec, under=convs) is second


async def test_idle_children_are_passivated_and_not_restarted(
    system: ActorSystem, log: Log, autojump_clock: trio.testing.MockClock
) -> None:
    convs = await system.spawn(dynamic_supervisor_spec("convs"))
    spec = ChildSpec(
        factory=lambda: Recorder(log, "c"),
        name="c-1",
        idle_timeout=60.0,
        restart=Restart.PERMANENT,
    )
    ref = await system.registry.get_or_spawn("c-1", spec, under=convs)
    assert (await ref.join()).kind is ExitKind.PASSIVATED
    await trio.testing.wait_all_tasks_blocked()
    assert system.registry.lookup("c-1") is None
    (node,) = system.snapshot()["tree"]["children"]
    assert node["passivated"] == 1 and node["children"] == []
    assert node["kind"] == "supervisor" and node["strategy"] == "dynamic"
    # The next request brings it back (its state would come from the store).
    again = await system.registry.get_or_spawn("c-1", spec, under=convs)
    assert again.is_alive and again is not ref


async def test_max_children_refuses_with_a_clear_error(system: ActorSystem, log: Log) -> None:
    sup = await system.spawn(dynamic_supervisor_spec("s", max_children=2))
    for i in range(2):
        await sup.ask(StartChild(ActorSpec(lambda: Recorder(log), name=f"c{i}")))
    with pytest.raises(TooManyChildren):
        await sup.ask(StartChild(ActorSpec(lambda: Recorder(log), name="c2")))
    assert sup.is_alive


async def test_stopping_a_dynamic_child_from_outside_frees_its_slot(
    system: ActorSystem, log: Log
) -> None:
    sup = await system.spawn(dynamic_supervisor_spec("s", max_children=1))
    first = await sup.ask(StartChild(ActorSpec(lambda: Recorder(log), name="c1")))
    await system.stop(first)
    await trio.testing.wait_all_tasks_blocked()
    second = await sup.ask(StartChild(ActorSpec(lambda: Recorder(log), name="c2")))
    assert second.is_alive


async def test_get_or_spawn_during_a_restart_waits_for_the_new_incarnation(
    system: ActorSystem, log: Log
) -> None:
    class SlowStart(Recorder):
        async def on_start(self) -> None:
            for _ in range(10):
                await trio.lowlevel.checkpoint()
            await super().on_start()

    convs = await system.spawn(dynamic_supervisor_spec("convs"))
    spec = ChildSpec(factory=lambda: SlowStart(log, "c"), name="c-1", restart=Restart.TRANSIENT)
    first = await system.registry.get_or_spawn("c-1", spec, under=convs)
    first.tell("boom")
    await first.join()
    # The supervisor is now restarting c-1 under the same name; asking for the key must
    # hand back that incarnation, not start a second actor (nor crash the supervisor).
    again = await system.registry.get_or_spawn("c-1", spec, under=convs)
    assert again is not first and again.is_alive and convs.is_alive
    assert again.statistics().restarts == 1
    assert log.events.count(("start", "c")) == 2
