"""Mailbox, ask/tell and crash semantics of trio actors."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from chorusline.actors import (
    Actor,
    ActorDead,
    ActorKind,
    ActorSpec,
    ActorStartFailed,
    ActorState,
    ActorSystem,
    AskTimeout,
    ExitKind,
    MailboxConfig,
    MailboxFull,
    Overflow,
    SyncActor,
)
from tests.actors.conftest import Counter, Log, Recorder


async def test_ask_replies_and_tell_is_processed_in_order(system: ActorSystem, log: Log) -> None:
    ref = await system.spawn(ActorSpec(lambda: Recorder(log), name="r"))
    for i in range(10):
        ref.tell(i)
    assert await ref.ask("seen") == [*range(10), "seen"]
    assert ref.statistics().processed == 11


async def test_refs_compare_by_identity(system: ActorSystem, log: Log) -> None:
    a = await system.spawn(ActorSpec(lambda: Recorder(log), name="a"))
    b = await system.spawn(ActorSpec(lambda: Recorder(log), name="b"))
    assert a == a and a != b
    assert len({a, b, a}) == 2
    assert system.lookup("/a") is a


async def test_one_message_at_a_time(system: ActorSystem) -> None:
    class Serial(Actor):
        def __init__(self) -> None:
            self.inside = 0
            self.max_inside = 0

        async def receive(self, message: Any) -> Any:
            self.inside += 1
            self.max_inside = max(self.max_inside, self.inside)
            await trio.lowlevel.checkpoint()
            self.inside -= 1
            return self.max_inside

    ref = await system.spawn(ActorSpec(Serial, name="serial"))
    async with trio.open_nursery() as nursery:
        for _ in range(20):
            nursery.start_soon(ref.ask, "x")
    assert await ref.ask("x") == 1


async def test_crash_fails_the_ask_and_pending_asks_with_actor_dead(
    system: ActorSystem, log: Log
) -> None:
    ref = await system.spawn(ActorSpec(lambda: Recorder(log), name="r"))
    gate = trio.Event()
    results: list[Any] = []

    async def ask(message: Any) -> None:
        try:
            results.append(await ref.ask(message))
        except ActorDead as error:
            results.append(("dead", error.reason.kind if error.reason else None))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(ask, ("wait", gate))
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(ask, "boom")
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(ask, "never answered")
        await trio.testing.wait_all_tasks_blocked()
        gate.set()
    assert results[0] == "waited"
    assert sorted(map(str, results[1:])) == sorted(map(str, [("dead", ExitKind.CRASH)] * 2))
    assert not ref.is_alive
    with pytest.raises(ActorDead):
        await ref.ask("later")
    stats = ref.statistics()
    assert stats.state is ActorState.DEAD
    assert stats.last_failure is not None and stats.last_failure["type"] == "RuntimeError"


async def test_tell_to_dead_actor_goes_to_dead_letters(system: ActorSystem, log: Log) -> None:
    ref = await system.spawn(ActorSpec(lambda: Recorder(log), name="r"))
    await system.stop(ref)
    before = system.dead_letters.count
    ref.tell("hello")
    assert system.dead_letters.count == before + 1
    assert system.dead_letters.recent[-1].recipient == "/r"


async def test_ask_timeout_raises_too_slow_and_discards_late_reply(
    system: ActorSystem, log: Log, autojump_clock: trio.testing.MockClock
) -> None:
    ref = await system.spawn(ActorSpec(lambda: Recorder(log), name="r"))
    with pytest.raises(trio.TooSlowError) as info:
        await ref.ask(("sleep", 10.0), timeout=1.0)
    assert isinstance(info.value, AskTimeout)
    # The actor finishes the slow message later; its reply goes nowhere and the actor
    # carries on with the next message.
    assert await ref.ask("next", timeout=30.0) == "next"


async def test_expected_errors_go_to_the_asker_and_keep_the_actor(system: ActorSystem) -> None:
    class Validating(Actor):
        expected_errors = (ValueError,)

        async def receive(self, message: Any) -> Any:
            if message < 0:
                raise ValueError("negative")
            return message * 2

    ref = await system.spawn(ActorSpec(Validating, name="v"))
    with pytest.raises(ValueError, match="negative"):
        await ref.ask(-1)
    assert await ref.ask(2) == 4
    assert ref.statistics().failed == 1


async def test_reject_policy_raises_mailbox_full(system: ActorSystem, log: Log) -> None:
    spec = ActorSpec(
        lambda: Recorder(log), name="r", mailbox=MailboxConfig(2, Overflow.REJECT)
    )
    ref = await system.spawn(spec)
    gate = trio.Event()
    ref.tell(("wait", gate))
    await trio.testing.wait_all_tasks_blocked()
    ref.tell(1)
    ref.tell(2)
    with pytest.raises(MailboxFull):
        ref.tell(3)
    with pytest.raises(MailboxFull):
        await ref.ask(4)
    gate.set()
    await trio.testing.wait_all_tasks_blocked()
    assert await ref.ask("seen") == [("wait", gate), 1, 2, "seen"]


async def test_drop_oldest_policy_drops_to_dead_letters(system: ActorSystem, log: Log) -> None:
    spec = ActorSpec(
        lambda: Recorder(log), name="r", mailbox=MailboxConfig(2, Overflow.DROP_OLDEST)
    )
    ref = await system.spawn(spec)
    gate = trio.Event()
    ref.tell(("wait", gate))
    await trio.testing.wait_all_tasks_blocked()
    for i in range(5):
        ref.tell(i)
    assert system.dead_letters.count == 3
    gate.set()
    await trio.testing.wait_all_tasks_blocked()
    assert await ref.ask("seen") == [("wait", gate), 3, 4, "seen"]


async def test_backpressure_makes_send_wait_for_room(system: ActorSystem, log: Log) -> None:
    spec = ActorSpec(lambda: Recorder(log), name="r", mailbox=MailboxConfig(1))
    ref = await system.spawn(spec)
    gate = trio.Event()
    ref.tell(("wait", gate))
    await trio.testing.wait_all_tasks_blocked()
    ref.tell(1)
    with pytest.raises(MailboxFull):
        ref.tell(2)
    sent = trio.Event()

    async def sender() -> None:
        await ref.send(2)
        sent.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(sender)
        await trio.testing.wait_all_tasks_blocked()
        assert not sent.is_set()
        gate.set()
    assert await ref.ask("seen") == [("wait", gate), 1, 2, "seen"]


async def test_start_failure_raises_and_leaves_nothing(system: ActorSystem) -> None:
    class Broken(Actor):
        async def on_start(self) -> None:
            raise OSError("no disk")

    with pytest.raises(ActorStartFailed):
        await system.spawn(ActorSpec(Broken, name="broken"))
    assert system.lookup("/broken") is None


async def test_background_task_failure_crashes_the_actor(system: ActorSystem) -> None:
    class WithTimer(Actor):
        async def receive(self, message: Any) -> Any:
            async def fail() -> None:
                raise KeyError("lost")

            self.context.start_soon(fail)

    ref = await system.spawn(ActorSpec(WithTimer, name="t"))
    ref.tell("go")
    reason = await ref.join()
    assert reason.kind is ExitKind.CRASH and isinstance(reason.error, KeyError)


async def test_system_messages_bypass_a_full_user_queue(system: ActorSystem, log: Log) -> None:
    spec = ActorSpec(lambda: Recorder(log), name="r", mailbox=MailboxConfig(3))
    ref = await system.spawn(spec)
    gate = trio.Event()
    ref.tell(("wait", gate))
    await trio.testing.wait_all_tasks_blocked()
    for i in range(3):
        ref.tell(i)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(system.stop, ref)
        await trio.testing.wait_all_tasks_blocked()
        gate.set()
    # Stop was handled right after the message in progress, ahead of the queued ones.
    assert ("stop", "r", "shutdown") in log.events
    assert system.dead_letters.count == 3


async def test_sync_actor_answers_directly_and_crashes_cleanly(system: ActorSystem) -> None:
    ref = await system.spawn(ActorSpec(Counter, name="c"))
    for _ in range(200):
        await ref.ask("inc")
    assert await ref.ask("get") == 200
    with pytest.raises(ActorDead):
        await ref.ask("boom")
    reason = await ref.join()
    assert reason.kind is ExitKind.CRASH


async def test_sync_actor_sees_tells_before_a_later_ask(system: ActorSystem) -> None:
    ref = await system.spawn(ActorSpec(Counter, name="c"))
    for _ in range(5):
        ref.tell("inc")
    assert await ref.ask("get") == 5


async def test_idle_timeout_passivates(
    system: ActorSystem, log: Log, autojump_clock: trio.testing.MockClock
) -> None:
    ref = await system.spawn(ActorSpec(lambda: Recorder(log), name="r", idle_timeout=30.0))
    await trio.sleep(20)
    assert await ref.ask("still here") == "still here"
    await trio.sleep(20)
    assert ref.is_alive
    reason = await ref.join()
    assert reason.kind is ExitKind.PASSIVATED
    assert trio.current_time() >= 50


async def test_shutdown_timeout_cancels_a_stuck_on_stop(
    system: ActorSystem, autojump_clock: trio.testing.MockClock
) -> None:
    class Stuck(Actor):
        async def on_stop(self, reason: Any) -> None:
            await trio.sleep_forever()

    ref = await system.spawn(ActorSpec(Stuck, name="stuck", shutdown_timeout=2.0))
    reason = await system.stop(ref)
    assert reason.kind is ExitKind.KILLED
    assert 2.0 <= trio.current_time() < 3.0


async def test_unknown_message_crashes_with_a_clear_error(system: ActorSystem) -> None:
    class Nothing(SyncActor):
        pass

    ref = await system.spawn(ActorSpec(Nothing, name="n"))
    with pytest.raises(ActorDead):
        await ref.ask(object())
    reason = await ref.join()
    assert isinstance(reason.error, TypeError)


async def test_ask_timeout_covers_waiting_for_mailbox_room(
    system: ActorSystem, autojump_clock: trio.testing.MockClock
) -> None:
    class Stuck(Actor):
        async def receive(self, message: Any) -> Any:
            await trio.sleep_forever()

    ref = await system.spawn(ActorSpec(Stuck, name="stuck", mailbox=MailboxConfig(1)))
    ref.tell(1)
    await trio.testing.wait_all_tasks_blocked()
    ref.tell(2)
    with pytest.raises(AskTimeout):
        await ref.ask(3, timeout=0.5)
    assert trio.current_time() == pytest.approx(0.5, abs=0.01)


async def test_an_infinite_ask_timeout_is_allowed(system: ActorSystem, log: Log) -> None:
    ref = await system.spawn(ActorSpec(lambda: Recorder(log), name="r"))
    assert await ref.ask("x", timeout=float("inf")) == "x"


async def test_drop_oldest_fails_a_dropped_ask_with_mailbox_full(
    system: ActorSystem, log: Log
) -> None:
    mailbox = MailboxConfig(1, Overflow.DROP_OLDEST)
    spec = ActorSpec(lambda: Recorder(log), name="r", mailbox=mailbox)
    ref = await system.spawn(spec)
    gate = trio.Event()
    ref.tell(("wait", gate))
    await trio.testing.wait_all_tasks_blocked()
    async with trio.open_nursery() as nursery:

        async def dropped() -> None:
            with pytest.raises(MailboxFull):
                await ref.ask("first")

        nursery.start_soon(dropped)
        await trio.testing.wait_all_tasks_blocked()
        ref.tell("second")
    gate.set()
    assert ref.is_alive


async def test_kind_comes_from_the_class_not_from_what_introspect_says(
    system: ActorSystem,
) -> None:
    class LooksLikeASupervisor(Actor):
        def introspect(self) -> dict[str, Any]:
            return {"strategy": "my own idea"}

    class Overseer(Actor):
        kind = ActorKind.SUPERVISOR

    plain = await system.spawn(ActorSpec(LooksLikeASupervisor, name="plain"))
    overseer = await system.spawn(ActorSpec(Overseer, name="overseer"))
    assert plain.statistics().kind is ActorKind.ACTOR
    assert overseer.statistics().kind is ActorKind.SUPERVISOR
    nodes = {node["name"]: node for node in system.snapshot()["tree"]["children"]}
    assert nodes["plain"]["kind"] == "actor" and nodes["plain"]["strategy"] == "my own idea"
    assert type(nodes["overseer"]["kind"]) is str and nodes["overseer"]["kind"] == "supervisor"
