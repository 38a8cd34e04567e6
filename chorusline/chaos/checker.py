"""The invariants: a history held against what the system durably holds afterwards.

Each invariant is a plain function ``(history, readback, expect) -> Verdict`` so that an
embedding application can call any of them on its own histories (``chorusline.testing``
re-exports them) and so that each can be shown to fail on a doctored history: a checker
that cannot fail proves nothing.

Unknown outcomes (``info``) are judged as Jepsen judges them: the turn may or may not have
happened, so the checker accepts a stored turn or none, never two.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from chorusline.chaos.history import CLEAN_ENDS, EOF, HUNG, History, Op
from chorusline.chaos.readback import Readback

#: The one 5xx a client may see, by design: "come back later", with ``Retry-After``.
DOCUMENTED_5XX = 503
#: Faults after which a stream may end in a bare EOF: nothing is left to send an error.
KILLS = ("SIGKILL",)
#: Violations listed per invariant in a report; the count is always exact.
SHOWN = 20


@dataclass(frozen=True)
class Expect:
    """What a scenario's faults entitle the system to (everything else is a violation)."""

    #: Independent rate-limit buckets a key may have drawn on: one per worker process
    #: with in-process limits, doubled while Redis is down (each process falls back to
    #: its own), one more per restart of an in-process limiter.
    limiter_copies: int = 1
    #: The scenario drives a supervisor past its intensity on purpose.
    escalation: bool = False


@dataclass
class Verdict:
    name: str
    ok: bool
    violations: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    count: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "violations": self.violations[:SHOWN],
                "violation_count": self.count, "figures": self.figures}


def verdict(name: str, violations: list[str], **figures: Any) -> Verdict:
    return Verdict(name, not violations, violations[:SHOWN], figures, len(violations))


Invariant = Callable[[History, Readback, Expect], Verdict]


def _users(readback: Readback) -> dict[str, list[dict[str, Any]]]:
    """Stored user messages by their text (the workload makes every text unique)."""
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for messages in readback.conversations.values():
        for message in messages:
            if message["role"] == "user":
                found[message["content"] or ""].append(message)
    return found


def _replies(readback: Readback) -> dict[str, list[dict[str, Any]]]:
    """Stored assistant messages by the id of the user message they answer."""
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for messages in readback.conversations.values():
        for message in messages:
            if message["role"] == "assistant" and message["parent_message_id"]:
                found[message["parent_message_id"]].append(message)
    return found


def _kills(history: History) -> list[float]:
    return [fault.mono for fault in history.faults if fault.name in KILLS]


def _by_key(history: History) -> dict[str, list[Op]]:
    attempts: dict[str, list[Op]] = defaultdict(list)
    for op in history.ops:
        attempts[op.idempotency_key].append(op)
    return attempts


def acknowledged_stored(history: History, readback: Readback, expect: Expect) -> Verdict:
    """1. Every turn whose 200 headers arrived has its user message stored."""
    users = _users(readback)
    lost = [f"op {op.index}: acknowledged ({op.request_id}) but {op.content!r} is not "
            f"stored in {op.conversation_id}"
            for op in history.ops if op.acknowledged and not users.get(op.content)]
    return verdict("acknowledged_stored", lost, lost=len(lost),
                   acknowledged=sum(op.acknowledged for op in history.ops))


def _killed_during(op: Op, kills: list[float]) -> bool:
    return any(op.invoke_mono <= at <= (op.end_mono or at) for at in kills)


def streamed_replies_stored(history: History, readback: Readback,
                            expect: Expect) -> Verdict:
    """2. A reply a client saw any of is stored, finished or not, and starts with it.

    One exception, measured rather than hidden: a SIGKILLed server loses the text it had
    sent but not yet flushed to its draft (flushes run every 0.25 s). For a stream its
    server was killed under, the stored text and the seen text must agree as far as both
    go, and the characters the kill cost are reported as ``unflushed_chars``."""
    users, replies = _users(readback), _replies(readback)
    kills = _kills(history)
    problems, unflushed = [], 0
    for op in history.ops:
        if not op.text:
            continue
        stored = [reply for user in users.get(op.content, ()) for reply in replies[user["id"]]]
        if not stored:
            problems.append(f"op {op.index}: streamed {len(op.text)} characters but no reply "
                            f"to {op.content!r} is stored")
            continue
        reply, content = stored[0], stored[0]["content"] or ""
        if reply["status"] not in ("complete", "incomplete", "blocked"):
            problems.append(f"op {op.index}: reply {reply['id']} has status {reply['status']}")
        elif reply["status"] == "blocked" or content.startswith(op.text):
            continue
        elif _killed_during(op, kills) and op.text.startswith(content):
            unflushed += len(op.text) - len(content)
        else:
            problems.append(f"op {op.index}: stored reply {reply['id']} does not start with "
                            f"what the client saw ({op.text[:40]!r}...)")
    return verdict("streamed_replies_stored", problems, unflushed_chars=unflushed)


def no_duplicates(history: History, readback: Readback, expect: Expect) -> Verdict:
    """3. Each turn (one idempotency key, however many attempts) is stored at most once,
    with at most one reply; one every attempt definitely failed is stored not at all."""
    users, replies = _users(readback), _replies(readback)
    problems = []
    for key, attempts in _by_key(history).items():
        stored = users.get(attempts[0].content, [])
        if len(stored) > 1:
            problems.append(f"turn {key}: its user message is stored {len(stored)} times")
        if stored and all(op.type == "fail" for op in attempts):
            problems.append(f"turn {key}: every attempt was refused "
                            f"({[op.status for op in attempts]}) yet it is stored")
        for user in stored:
            if len(replies[user["id"]]) > 1:
                problems.append(f"turn {key}: {len(replies[user['id']])} replies stored")
    return verdict("no_duplicates", problems, duplicates=len(problems))


def sequences_well_formed(history: History, readback: Readback, expect: Expect) -> Verdict:
    """4. Per conversation: sequence numbers unique, gap-free and increasing, every
    parent an earlier message, roles alternating along each branch."""
    problems = []
    for conversation, messages in readback.conversations.items():
        seqs = sorted(message["seq"] for message in messages)
        if seqs and seqs != list(range(seqs[0], seqs[0] + len(seqs))):
            problems.append(f"{conversation}: sequence numbers {seqs} have a gap or a repeat")
        by_id = {message["id"]: message for message in messages}
        for message in messages:
            parent = by_id.get(message["parent_message_id"] or "")
            if message["parent_message_id"] and parent is None:
                problems.append(f"{conversation}: {message['id']}'s parent is missing")
            elif parent is not None and parent["seq"] >= message["seq"]:
                problems.append(f"{conversation}: {message['id']} comes before its parent")
            elif parent is not None and parent["role"] == message["role"]:
                problems.append(f"{conversation}: {message['id']} and its parent are both "
                                f"{message['role']}")
    return verdict("sequences_well_formed", problems)


def streams_ended(history: History, readback: Readback, expect: Expect) -> Verdict:
    """5. Every stream ended with ``[DONE]`` or an error event (or the client's own
    hang-up) within the bound: none hung, none truncated without an error, except by
    a SIGKILL of its server while it streamed."""
    kills = _kills(history)
    bad, killed = [], 0
    for op in history.ops:
        if not op.acknowledged or op.ended in CLEAN_ENDS:
            continue
        if op.ended == EOF and any((op.ack_mono or 0) <= at <= (op.end_mono or 0)
                                   for at in kills):
            killed += 1  # a killed process closes its sockets: it can send nothing else
            continue
        bad.append(f"op {op.index}: stream {op.request_id} ended {op.ended!r} after "
                   f"{op.chunks} chunks")
    hung = sum(op.ended == HUNG for op in history.ops)
    return verdict("streams_ended", bad, hung=hung, truncated=len(bad) - hung,
                   cut_by_kill=killed)


def rate_limits_held(history: History, readback: Readback, expect: Expect) -> Verdict:
    """6. Turns (and their tokens) admitted in any window of ``w`` seconds stay within
    what the token buckets allow: ``copies * (limit + limit * w / 60)``."""
    admitted = [op for op in history.ops if op.acknowledged and op.limit_requests]
    problems = []
    if admitted:
        requests = min(op.limit_requests or 0 for op in admitted)
        tokens = min(op.limit_tokens or 0 for op in admitted)
        problems += over_admitted(admitted, lambda op: 1, requests, expect.limiter_copies,
                                  "requests")
        if tokens:
            problems += over_admitted(
                admitted, lambda op: (op.prompt_tokens or 0) + (op.completion_tokens or 0),
                tokens, expect.limiter_copies, "tokens")
    return verdict("rate_limits_held", problems, admitted=len(admitted))


def over_admitted(ops: list[Op], weight: Callable[[Op], int], limit: int, copies: int,
                  what: str) -> list[str]:
    """The worst window: for each start (an invoke), the ops wholly inside each window
    that start opens (invoke to ack), against the bound for its length."""
    spans = sorted((op.invoke_mono, op.ack_mono or op.invoke_mono, weight(op))
                    for op in ops)
    for i, (start, _, _) in enumerate(spans):
        inside = sorted((ack, w) for invoke, ack, w in spans[i:])
        total = 0
        for ack, w in inside:
            total += w
            allowed = copies * (limit + limit * (ack - start) / 60.0)
            if total > allowed:
                return [f"{total} {what} admitted within {ack - start:.1f}s, more than "
                        f"{allowed:.0f} ({copies} buckets of {limit}/min) allows"]
    return []


def quiescent(history: History, readback: Readback, expect: Expect) -> Verdict:
    """7. Afterwards the engine runs nothing, every KV block is free, every mailbox is
    empty and ``/ready`` answers 200."""
    problems = []
    if readback.ready != 200:
        problems.append(f"/ready answered {readback.ready}")
    engine = readback.engine
    if engine is None:
        problems.append("the engine's figures could not be read")
    elif engine["num_running"] or engine["num_waiting"] or engine["kv_blocks_used"]:
        problems.append(f"engine not idle: {engine['num_running']} running, "
                        f"{engine['num_waiting']} waiting, {engine['kv_blocks_used']} KV "
                        "blocks held")
    for node in readback.nodes():
        if node.get("mailbox_depth"):
            problems.append(f"{node['path']}: {node['mailbox_depth']} messages queued")
    return verdict("quiescent", problems)


def documented_errors_only(history: History, readback: Readback,
                           expect: Expect) -> Verdict:
    """8. No 5xx but the documented 503, and every 503 says when to come back."""
    bad = [f"op {op.index}: {op.status} {op.error}" for op in history.ops
           if op.status is not None and op.status >= 500
           and (op.status != DOCUMENTED_5XX or not op.retry_after)]
    return verdict("documented_errors_only", bad,
                   server_errors=sum((op.status or 0) >= 500 for op in history.ops))


def recovered(history: History, readback: Readback, expect: Expect) -> Verdict:
    """9. No supervisor went past its intensity (unless the scenario meant it to), and
    after every fault a turn succeeded; the time to it is the fault's recovery time."""
    problems = []
    for node in readback.nodes():
        for entry in (node.get("intensity") or {}).get("history", ()):
            if entry["action"] == "escalate" and entry["wall"] >= readback.since_wall \
                    and not expect.escalation:
                problems.append(f"{node['path']} escalated after restarting "
                                f"{entry['child']} ({entry['reason']})")
    times = []
    for fault in history.faults:
        if fault.name == "heal":
            continue
        first = min((op.end_mono for op in history.ops if op.type == "ok"
                     and op.invoke_mono >= fault.mono and op.end_mono), default=None)
        if first is None:
            problems.append(f"no turn succeeded after {fault.name} at {fault.target}")
        else:
            times.append(round(first - fault.mono, 3))
    return verdict("recovered", problems, recovery_s=times,
                   max_recovery_s=max(times, default=None))


INVARIANTS: tuple[Invariant, ...] = (
    acknowledged_stored, streamed_replies_stored, no_duplicates, sequences_well_formed,
    streams_ended, rate_limits_held, quiescent, documented_errors_only, recovered,
)


def check(history: History, readback: Readback, expect: Expect = Expect(),
          invariants: Iterable[Invariant] = INVARIANTS) -> list[Verdict]:
    return [invariant(history, readback, expect) for invariant in invariants]
