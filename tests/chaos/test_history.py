"""The history: what it counts, its JSON, and waiting for a success after a fault."""

from __future__ import annotations

import trio
import trio.testing

from chorusline.chaos import History


def turn(history: History, kind: str, at: float) -> None:
    op = history.begin(client=0, conversation_id="c", idempotency_key=f"k{len(history.ops)}",
                       content="q", attempt=1, epoch=0)
    op.invoke_mono = at
    op.type = kind
    history.settled(op)


def test_counts_leave_heals_out_of_the_faults() -> None:
    history = History("s")
    turn(history, "ok", 1.0)
    turn(history, "info", 2.0)
    history.fault("kill", "/chat/engines/smollm2-135m-instruct/gpu-worker")
    history.fault("heal", "actors")
    assert history.counts() == {"operations": 2, "ok": 1, "fail": 0, "info": 1,
                                "acknowledged": 0, "faults": 1}
    assert History.from_json(history.to_json()).to_json() == history.to_json()


async def test_ok_after_returns_once_a_later_turn_succeeds() -> None:
    history = History("s")
    turn(history, "ok", 1.0)
    await history.ok_after(0.5)  # already there: no wait
    woke = trio.Event()

    async def wait() -> None:
        await history.ok_after(5.0)
        woke.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(wait)
        await trio.testing.wait_all_tasks_blocked()
        turn(history, "ok", 4.0)   # invoked before the fault: does not count
        turn(history, "info", 6.0)  # not a success
        await trio.testing.wait_all_tasks_blocked()
        assert not woke.is_set()
        turn(history, "ok", 6.0)
    assert woke.is_set()
