"""Property tests: under random crash schedules the tree stays well-behaved.

- every ask resolves: a value, ``ActorDead`` or a timeout, never a hang;
- no task outlives its supervisor (trio's structure plus a check on the tree);
- restart counts never exceed the configured intensity within its period.
"""

from __future__ import annotations

from typing import Any

import trio
import trio.testing
from hypothesis import given, settings, strategies as st

from chorusline.actors import ActorDead, AskTimeout, open_actor_system
from chorusline.supervisors import (
    Backoff,
    ChildSpec,
    GetChild,
    Intensity,
    Strategy,
    supervisor_spec,
)
from tests.supervisors.conftest import Log, Recorder

step = st.tuples(
    st.sampled_from(["a", "b", "c"]),
    st.sampled_from(["ask", "crash", "slow"]),
    st.floats(min_value=0.0, max_value=2.0),
)


@settings(max_examples=60, deadline=None)
@given(
    strategy=st.sampled_from(list(Strategy)),
    max_restarts=st.integers(min_value=0, max_value=4),
    schedule=st.lists(step, min_size=1, max_size=25),
)
def test_random_crash_schedules(
    strategy: Strategy, max_restarts: int, schedule: list[tuple[str, str, float]]
) -> None:
    period = 10.0
    outcomes: list[str] = []
    restart_times: list[float] = []

    async def main() -> None:
        log = Log()
        async with open_actor_system() as system:
            children = [
                ChildSpec(factory=lambda n=n: Recorder(log, n), name=n) for n in "abc"
            ]
            sup = await system.spawn(
                supervisor_spec(
                    "sup",
                    children,
                    strategy=strategy,
                    intensity=Intensity(max_restarts, period),
                    backoff=Backoff(initial=0.05, jitter=0.5),
                )
            )

            async def one(name: str, action: str, pause: float) -> None:
                await trio.sleep(pause)
                try:
                    ref = await sup.ask(GetChild(name), timeout=1.0)
                    if ref is None:
                        outcomes.append("restarting")
                        return
                    message: Any = {"ask": "hi", "crash": "boom", "slow": ("sleep", 3.0)}[action]
                    await ref.ask(message, timeout=1.0)
                    outcomes.append("value")
                except ActorDead:
                    outcomes.append("dead")
                except AskTimeout:
                    outcomes.append("timeout")

            async with trio.open_nursery() as nursery:
                for name, action, pause in schedule:
                    nursery.start_soon(one, name, action, pause)
            if sup.is_alive:
                node = system.snapshot()["tree"]["children"][0]
                restart_times.extend(h["at"] for h in node["intensity"]["history"]
                                     if h["action"] == "restart")
        # After the block: every actor is dead, the supervisor included.
        assert not sup.is_alive
        assert system.snapshot()["tree"]["children"] == []

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert len(outcomes) == len(schedule)
    for i, start in enumerate(restart_times):
        in_window = [t for t in restart_times[i:] if t < start + period]
        assert len(in_window) <= max_restarts
