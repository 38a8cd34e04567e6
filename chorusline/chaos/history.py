"""The history of a chaos run: every operation the clients attempted, and every fault.

As in Jepsen, the history is what the *clients* observed, never what the server says it
did: the checker holds the server's durable state (read back afterwards) against it. An
operation therefore ends in one of three ways, and the distinction carries the proofs:

- ``ok``: the client saw it happen (HTTP 200 and the stream's ``[DONE]``);
- ``fail``: the client knows it did not happen (a 4xx: nothing was stored);
- ``info``: the client cannot know (a connection cut, a 503 after the turn may have been
  committed, a stream that ended in an error event). The checker accepts either outcome
  for these, but never both (a turn stored twice).

Times are kept twice: ``time.time()`` for people and the report, ``time.monotonic()`` for
every window the checker computes, since a wall clock may step under NTP mid-run.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import trio

#: How a stream ended, as the client saw it.
DONE = "done"            # the ``[DONE]`` sentinel arrived
ERROR = "error"          # an SSE ``error`` event (the documented way a started stream fails)
EOF = "eof"              # the connection ended with neither: a truncated stream
CLIENT_CUT = "client_cut"  # the client itself hung up (the disconnect-storm workload)
HUNG = "hung"            # nothing ended it within the stream bound
CLEAN_ENDS = (DONE, ERROR, CLIENT_CUT)


@dataclass
class Op:
    """One attempt at one chat turn; a retry under the same key is a new ``Op``."""

    index: int
    client: int
    conversation_id: str
    idempotency_key: str
    #: The user message: unique in the run, so the checker finds it in the store by text.
    content: str
    attempt: int
    #: The server process generation at invoke (a spawned target counts its restarts).
    epoch: int
    invoke_wall: float = field(default_factory=time.time)
    invoke_mono: float = field(default_factory=time.monotonic)
    type: str = "invoke"         # then "ok" | "fail" | "info"
    status: int | None = None    # HTTP status; None: no response at all
    ack_mono: float | None = None  # when the 200's headers arrived (acknowledged)
    end_mono: float | None = None
    request_id: str | None = None
    retry_after: str | None = None
    #: Text of the content chunks received, in order.
    text: str = ""
    chunks: int = 0
    ended: str | None = None     # one of the stream ends above, for a 200
    finish_reason: str | None = None
    error: str | None = None     # the error body's code (or the exception) when it failed
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    #: The tier's limits from the ``x-ratelimit-limit-*`` headers of an admitted turn.
    limit_requests: int | None = None
    limit_tokens: int | None = None

    @property
    def acknowledged(self) -> bool:
        return self.ack_mono is not None

    def finish(self, kind: str) -> None:
        self.type = kind
        self.end_mono = time.monotonic()


@dataclass
class Fault:
    """One fault injected (or healed): when, what, and where."""

    name: str
    target: str
    detail: dict[str, Any] = field(default_factory=dict)
    wall: float = field(default_factory=time.time)
    mono: float = field(default_factory=time.monotonic)


@dataclass
class History:
    """A scenario's operations and faults, in the order they began."""

    scenario: str
    ops: list[Op] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    started_mono: float = field(default_factory=time.monotonic)
    _waiters: list[tuple[float, trio.Event]] = field(default_factory=list, repr=False)

    def begin(self, **attributes: Any) -> Op:
        op = Op(index=len(self.ops), **attributes)
        self.ops.append(op)
        return op

    def settled(self, op: Op) -> None:
        """``op`` has its outcome: wake whoever waits for a success after a fault."""
        if op.type != "ok":
            return
        for since, event in list(self._waiters):
            if op.invoke_mono >= since:
                event.set()
                self._waiters.remove((since, event))

    async def ok_after(self, since: float) -> None:
        """Return once a turn invoked at or after ``since`` has succeeded."""
        if any(op.type == "ok" and op.invoke_mono >= since for op in self.ops):
            return
        event = trio.Event()
        self._waiters.append((since, event))
        await event.wait()

    def fault(self, name: str, target: str, **detail: Any) -> Fault:
        event = Fault(name, target, detail)
        self.faults.append(event)
        return event

    def counts(self) -> dict[str, int]:
        ops = self.ops
        return {"operations": len(ops),
                "ok": sum(op.type == "ok" for op in ops),
                "fail": sum(op.type == "fail" for op in ops),
                "info": sum(op.type == "info" for op in ops),
                "acknowledged": sum(op.acknowledged for op in ops),
                "faults": sum(not fault.name.startswith("heal") for fault in self.faults)}

    def to_json(self) -> dict[str, Any]:
        return {"scenario": self.scenario, "started_mono": self.started_mono,
                "ops": [asdict(op) for op in self.ops],
                "faults": [asdict(fault) for fault in self.faults]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> History:
        names = {f.name for f in fields(Op)}
        return cls(scenario=data["scenario"], started_mono=data["started_mono"],
                   ops=[Op(**{k: v for k, v in op.items() if k in names})
                        for op in data["ops"]],
                   faults=[Fault(**fault) for fault in data["faults"]])

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json()))
