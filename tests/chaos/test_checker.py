"""The checker against doctored histories: each invariant must catch what it is for.

A clean history and its read-back pass every invariant; then each test breaks one thing
(a lost message, a duplicate, a gap, an over-admission, a hung stream, ...) and expects
exactly the invariant responsible to fail. A checker that cannot fail proves nothing.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from chorusline.chaos import INVARIANTS, Expect, History, Readback, check
from chorusline.chaos.checker import (
    acknowledged_stored,
    documented_errors_only,
    no_duplicates,
    quiescent,
    rate_limits_held,
    recovered,
    sequences_well_formed,
    streamed_replies_stored,
    streams_ended,
)
from chorusline.chaos.history import CLIENT_CUT, DONE, EOF, HUNG, Op

CONVERSATION = "conv-1"
IDLE_ENGINE = {"num_running": 0, "num_waiting": 0, "kv_blocks_used": 0}


def turn(history: History, n: int, at: float, **changes: Any) -> Op:
    op = history.begin(client=0, conversation_id=CONVERSATION, idempotency_key=f"k{n}",
                       content=f"question {n}", attempt=1, epoch=0)
    op.invoke_mono, op.ack_mono, op.end_mono = at, at + 0.1, at + 1.0
    op.type, op.status, op.ended, op.text, op.chunks = "ok", 200, DONE, f"answer {n}", 2
    op.limit_requests, op.limit_tokens = 20, 6000
    op.prompt_tokens, op.completion_tokens = 10, 5
    for name, value in changes.items():
        setattr(op, name, value)
    return op


def stored(n: int, seq: int, parent: str | None, **changes: Any) -> list[dict[str, Any]]:
    user = {"id": f"u{n}", "seq": seq, "parent_message_id": parent, "role": "user",
            "content": f"question {n}", "status": "complete"}
    reply = {"id": f"a{n}", "seq": seq + 1, "parent_message_id": f"u{n}",
             "role": "assistant", "content": f"answer {n}", "status": "complete"}
    reply.update(changes)
    return [user, reply]


@pytest.fixture
def clean() -> tuple[History, Readback]:
    history = History("doctored", started_mono=0.0)
    messages: list[dict[str, Any]] = []
    parent = None
    for n in range(5):
        turn(history, n, at=10.0 * n)
        messages += stored(n, seq=2 * n + 1, parent=parent)
        parent = f"a{n}"
    history.fault("kill", "/chat/engines/smollm2-135m-instruct/gpu-worker").mono = 5.0
    readback = Readback(conversations={CONVERSATION: messages}, engine=dict(IDLE_ENGINE),
                        tree={"path": "/", "mailbox_depth": 0, "children": []}, ready=200)
    return history, readback


def failing(history: History, readback: Readback, expect: Expect | None = None) -> list[str]:
    return [v.name for v in check(history, readback, expect or Expect()) if not v.ok]


def test_a_clean_history_passes_every_invariant(clean: tuple[History, Readback]) -> None:
    history, readback = clean
    verdicts = check(history, readback)
    assert [v.name for v in verdicts] == [i.__name__ for i in INVARIANTS]
    assert all(v.ok for v in verdicts), [v.violations for v in verdicts]
    assert next(v for v in verdicts if v.name == "recovered").figures["recovery_s"] == [6.0]


def test_a_lost_acknowledged_message_is_caught(clean: tuple[History, Readback]) -> None:
    history, readback = clean
    messages = readback.conversations[CONVERSATION]
    readback.conversations[CONVERSATION] = [m for m in messages if m["id"] not in ("u2", "a2")]
    assert "acknowledged_stored" in failing(history, readback)
    assert acknowledged_stored(history, readback, Expect()).figures["lost"] == 1


def test_a_streamed_reply_that_is_missing_or_differs_is_caught(
        clean: tuple[History, Readback]) -> None:
    history, readback = clean
    messages = readback.conversations[CONVERSATION]
    changed = copy.deepcopy(readback)
    changed.conversations[CONVERSATION] = [m for m in messages if m["id"] != "a1"]
    assert not streamed_replies_stored(history, changed, Expect()).ok
    changed = copy.deepcopy(readback)
    changed.conversations[CONVERSATION][3]["content"] = "something else"
    assert not streamed_replies_stored(history, changed, Expect()).ok
    # A truncated reply is fine while it starts with what the client saw.
    history.ops[1].text = "answ"
    history.ops[1].ended = CLIENT_CUT
    changed = copy.deepcopy(readback)
    changed.conversations[CONVERSATION][3]["status"] = "incomplete"
    assert streamed_replies_stored(history, changed, Expect()).ok


def test_text_a_sigkill_kept_from_the_draft_is_reported_not_excused_otherwise(
        clean: tuple[History, Readback]) -> None:
    history, readback = clean
    history.ops[1].ended = EOF  # streamed "answer 1" from 10.0 to 11.0
    readback.conversations[CONVERSATION][3].update(content="ans", status="incomplete")
    assert not streamed_replies_stored(history, readback, Expect()).ok
    history.fault("SIGKILL", "server").mono = 10.5
    verdict = streamed_replies_stored(history, readback, Expect())
    assert verdict.ok and verdict.figures["unflushed_chars"] == len("answer 1") - 3
    readback.conversations[CONVERSATION][3].update(content="another")  # not a prefix
    assert not streamed_replies_stored(history, readback, Expect()).ok


def test_a_duplicate_turn_or_reply_is_caught(clean: tuple[History, Readback]) -> None:
    history, readback = clean
    messages = readback.conversations[CONVERSATION]
    twice = copy.deepcopy(readback)
    twice.conversations["conv-2"] = [dict(messages[0], id="u0-again", seq=1)]
    assert "no_duplicates" in failing(history, twice)
    second = copy.deepcopy(readback)
    second.conversations[CONVERSATION].append(dict(messages[1], id="a0-again", seq=11))
    assert not no_duplicates(history, second, Expect()).ok


def test_a_refused_turn_that_was_stored_anyway_is_caught(
        clean: tuple[History, Readback]) -> None:
    history, readback = clean
    op = history.ops[4]
    op.type, op.status, op.ack_mono, op.ended, op.text = "fail", 429, None, None, ""
    assert not no_duplicates(history, readback, Expect()).ok


def test_an_unknown_outcome_may_go_either_way(clean: tuple[History, Readback]) -> None:
    history, readback = clean
    op = history.ops[4]
    op.type, op.status, op.ack_mono, op.ended, op.text = "info", None, None, None, ""
    assert failing(history, readback) == []
    readback.conversations[CONVERSATION] = readback.conversations[CONVERSATION][:8]
    assert failing(history, readback) == []


def test_a_gap_a_repeat_or_a_bad_parent_is_caught(clean: tuple[History, Readback]) -> None:
    history, readback = clean
    for doctor in (lambda m: m[5].update(seq=7),             # a repeat
                   lambda m: m[9].update(seq=12),            # a gap
                   lambda m: m[4].update(parent_message_id="nowhere"),
                   lambda m: m[4].update(parent_message_id="u1")):  # user under user
        changed = copy.deepcopy(readback)
        doctor(changed.conversations[CONVERSATION])
        assert not sequences_well_formed(history, changed, Expect()).ok


@pytest.mark.parametrize("ended", [EOF, HUNG, None])
def test_a_hung_or_truncated_stream_is_caught(clean: tuple[History, Readback],
                                              ended: str | None) -> None:
    history, readback = clean
    history.ops[2].ended = ended
    assert failing(history, readback) == ["streams_ended"]
    if ended == HUNG:
        assert streams_ended(history, readback, Expect()).figures["hung"] == 1


def test_a_stream_cut_by_a_sigkill_of_its_server_is_excused(
        clean: tuple[History, Readback]) -> None:
    history, readback = clean
    history.ops[2].ended = EOF
    history.fault("SIGKILL", "server").mono = 20.5  # op 2 streamed from 20.1 to 21.0
    assert streams_ended(history, readback, Expect()).figures["cut_by_kill"] == 1
    assert streams_ended(history, readback, Expect()).ok
    history.ops[3].ended = EOF  # 30.1 to 31.0: no kill then
    assert not streams_ended(history, readback, Expect()).ok


def test_over_admission_is_caught_and_extra_buckets_are_allowed_for() -> None:
    history = History("limits", started_mono=0.0)
    for n in range(30):  # 30 admitted in 3 s on a 20/min tier: at most ~21 allowed
        turn(history, n, at=n * 0.1)
    readback = Readback()
    verdict = rate_limits_held(history, readback, Expect())
    assert not verdict.ok and "requests admitted" in verdict.violations[0]
    assert rate_limits_held(history, readback, Expect(limiter_copies=2)).ok
    spread = History("limits", started_mono=0.0)
    for n in range(30):  # the same 30 over 90 s: a bucket refills 30 of them
        turn(spread, n, at=n * 3.0)
    assert rate_limits_held(spread, readback, Expect()).ok


def test_token_over_admission_is_caught() -> None:
    history = History("tokens", started_mono=0.0)
    for n in range(3):
        turn(history, n, at=n, prompt_tokens=3000, completion_tokens=1000)
    verdict = rate_limits_held(history, Readback(), Expect())
    assert not verdict.ok and "tokens" in verdict.violations[0]


def test_an_engine_left_busy_or_a_full_mailbox_or_not_ready_is_caught(
        clean: tuple[History, Readback]) -> None:
    history, readback = clean
    for doctor in (lambda r: r.engine.update(kv_blocks_used=3),
                   lambda r: r.engine.update(num_running=1),
                   lambda r: setattr(r, "engine", None),
                   lambda r: r.tree.update(mailbox_depth=2),
                   lambda r: setattr(r, "ready", 503)):
        changed = copy.deepcopy(readback)
        doctor(changed)
        assert failing(history, changed) == ["quiescent"]
    assert quiescent(history, readback, Expect()).ok


def test_an_undocumented_5xx_is_caught(clean: tuple[History, Readback]) -> None:
    history, readback = clean
    op = history.ops[3]
    op.type, op.status, op.ack_mono, op.ended, op.retry_after = "info", 503, None, None, "1"
    assert documented_errors_only(history, readback, Expect()).ok
    op.retry_after = None  # a 503 that does not say when to come back
    assert not documented_errors_only(history, readback, Expect()).ok
    op.status, op.retry_after = 500, "1"
    assert not documented_errors_only(history, readback, Expect()).ok


def test_an_escalation_or_no_recovery_is_caught(clean: tuple[History, Readback]) -> None:
    history, readback = clean
    readback.tree["intensity"] = {"history": [
        {"action": "escalate", "wall": 10.0, "child": "engine", "reason": "crash"}]}
    readback.since_wall = 1.0
    assert failing(history, readback) == ["recovered"]
    assert failing(history, readback, Expect(escalation=True)) == []
    readback.since_wall = 20.0  # an escalation before the scenario is not its doing
    assert failing(history, readback) == []
    worker = "/chat/engines/smollm2-135m-instruct/gpu-worker"
    history.fault("kill", worker).mono = 100.0  # nothing after it
    assert not recovered(history, readback, Expect()).ok


def test_a_history_survives_its_json(clean: tuple[History, Readback]) -> None:
    history, readback = clean
    again = History.from_json(history.to_json())
    assert again.to_json() == history.to_json()
    assert failing(again, readback) == []
