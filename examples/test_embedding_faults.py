"""An embedding application's own actors, tested under injected faults.

    pytest examples/test_embedding_faults.py

The ``actor_system`` fixture comes from chorusline's pytest plugin, installed with the
package: there is no conftest to write. ``crash`` and ``delay`` hold a fault for the
length of a ``with`` block and clear it afterwards, even when an assertion inside fails.

The app: a supervisor ``/app`` with a ``Tally`` (the state: counts per word) and a
``Front`` that takes requests and forwards them. ``tests/examples`` runs this file.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from chorusline.actors import Actor, ActorDead, ActorSystem, AskTimeout, SyncActor
from chorusline.supervisors import Backoff, ChildSpec, Strategy, supervisor_spec
from chorusline.testing import crash, delay

# Not needed with ``trio_mode = true`` in your pytest configuration.
pytestmark = pytest.mark.trio


class Tally(SyncActor):
    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def handle(self, message: Any) -> Any:
        match message:
            case ("add", str(word)):
                self.counts[word] = self.counts.get(word, 0) + 1
                return self.counts[word]
            case ("get", str(word)):
                return self.counts.get(word, 0)
        return super().handle(message)


class Front(Actor):
    """Finds the tally by registry key on every message: a restarted tally is a new
    actor with a new ref, and the key always names the live one."""

    async def receive(self, message: Any) -> Any:
        tally = await self.context.system.registry.wait_for("tally")
        return await tally.ask(message, timeout=1.0)


def app_spec() -> ChildSpec:
    return supervisor_spec(
        "app",
        [
            ChildSpec(Tally, name="tally", register_as="tally"),
            ChildSpec(Front, name="front", register_as="front"),
        ],
        strategy=Strategy.ONE_FOR_ONE,
        backoff=Backoff(initial=0.01),
    )


async def test_the_front_is_restarted_after_a_crash_and_the_tally_keeps_its_counts(
    actor_system: ActorSystem,
) -> None:
    await actor_system.spawn(app_spec())
    front = await actor_system.registry.wait_for("front")
    assert await front.ask(("add", "apple")) == 1

    with crash(actor_system, "/app/front"), pytest.raises(ActorDead):  # its next message
        await front.ask(("add", "apple"))
    await front.join()
    front = await actor_system.registry.wait_for("front")  # the restarted incarnation

    assert await front.ask(("add", "apple")) == 2  # the crashed add never reached the tally
    assert front.statistics().restarts == 1


async def test_a_slow_app_answers_late_but_right_and_a_timed_out_ask_is_never_applied(
    actor_system: ActorSystem, autojump_clock: trio.testing.MockClock
) -> None:
    await actor_system.spawn(app_spec())
    front = await actor_system.registry.wait_for("front")

    with delay(actor_system, "/app/*", 0.25):  # a pattern: every actor of the app
        start = trio.current_time()
        assert await front.ask(("add", "pear")) == 1
        assert trio.current_time() - start == pytest.approx(0.5, abs=0.01)  # front, tally

    with delay(actor_system, "/app/front", 3.0), pytest.raises(AskTimeout):
        await front.ask(("add", "pear"), timeout=1.0)

    assert front.is_alive
    assert await front.ask(("get", "pear")) == 1  # the add that timed out never ran
