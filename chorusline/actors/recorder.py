"""The flight recorder: recent events and turn traces, kept bounded, fed to watchers.

Why in the kernel: restarts, escalations, passivations and faults happen inside the
kernel, and an operator who opens the console after an incident needs what happened just
before. So the system always keeps the last ``keep_events`` events and ``keep_traces``
finished traces in ring buffers (a deque append per event; events are rare next to
messages), and hands them to whoever subscribes.

Subscribers never slow the actors: each has its own bounded buffer, and when a reader
falls behind its oldest undelivered items are dropped and counted (``skipped``), so the
reader learns it skipped ahead instead of the recorder growing or waiting.

Everything here runs on the trio thread: thread actors report through their cells, which
already hop back to trio before they die or restart.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import trio


@dataclass(frozen=True)
class Event:
    """Something an operator should see on a timeline. ``time`` is wall-clock seconds."""

    seq: int
    time: float
    kind: str
    path: str
    detail: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "time": round(self.time, 6), "kind": self.kind,
                "path": self.path, "detail": self.detail}


@dataclass
class Span:
    """One step of a traced request, in milliseconds since the trace began."""

    name: str
    path: str
    start_ms: float
    end_ms: float
    detail: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "path": self.path, "start_ms": round(self.start_ms, 3),
                "end_ms": round(self.end_ms, 3),
                "duration_ms": round(self.end_ms - self.start_ms, 3), **self.detail}


@dataclass
class Trace:
    """One request's journey across the actors, and its live state while in flight.

    Whoever handles the request adds spans by request id (``FlightRecorder.trace``), so no
    message type has to carry the trace. ``state`` and the token counts are plain fields
    set where they change (the engine driver sets them once per step), which makes the
    in-flight table a read of these objects rather than a query to every actor.
    """

    request_id: str
    attrs: dict[str, Any]
    started_wall: float = field(default_factory=time.time)
    started: float = field(default_factory=time.monotonic)
    state: str = "accepted"
    prompt_tokens: int = 0
    generated_tokens: int = 0
    ttft_ms: float | None = None
    status: str | None = None
    finish_reason: str | None = None
    ended_ms: float | None = None
    spans: list[Span] = field(default_factory=list)

    def now_ms(self) -> float:
        return (time.monotonic() - self.started) * 1000.0

    def add(self, name: str, path: str, start_ms: float, end_ms: float | None = None,
            **detail: Any) -> Span:
        span = Span(name, path, start_ms, self.now_ms() if end_ms is None else end_ms, detail)
        self.spans.append(span)
        return span

    def mark(self, name: str, path: str, **detail: Any) -> None:
        """An instant (a span of zero length): the first token, the final chunk."""
        now = self.now_ms()
        self.add(name, path, now, now, **detail)

    @contextmanager
    def span(self, name: str, path: str, **detail: Any) -> Iterator[Span]:
        """Time the block as a span; it is recorded even when the block raises."""
        span = Span(name, path, self.now_ms(), self.now_ms(), dict(detail))
        try:
            yield span
        finally:
            span.end_ms = self.now_ms()
            self.spans.append(span)

    def first_token(self, path: str) -> None:
        if self.ttft_ms is None:
            self.ttft_ms = self.now_ms()
            self.mark("first_token", path)

    def to_json(self, spans: bool = True) -> dict[str, Any]:
        """The trace as JSON; without ``spans`` it is a row of the in-flight table."""
        age = self.ended_ms if self.ended_ms is not None else self.now_ms()
        row = {
            "request_id": self.request_id, **self.attrs, "state": self.state,
            "started": round(self.started_wall, 6), "age_ms": round(age, 3),
            "prompt_tokens": self.prompt_tokens, "generated_tokens": self.generated_tokens,
            "ttft_ms": None if self.ttft_ms is None else round(self.ttft_ms, 3),
            "status": self.status, "finish_reason": self.finish_reason,
        }
        if spans:
            row["spans"] = [span.to_json() for span in sorted(self.spans, key=_start)]
        return row

    def ended_wall(self) -> float | None:
        """When the trace finished, in wall-clock seconds (None while in flight)."""
        return None if self.ended_ms is None else self.started_wall + self.ended_ms / 1000


def _start(span: Span) -> float:
    return span.start_ms


class Subscription:
    """One watcher's bounded view of the recorder: ``(kind, payload)`` items in order."""

    def __init__(self, recorder: FlightRecorder, capacity: int) -> None:
        self._recorder = recorder
        self._items: deque[tuple[str, Any]] = deque()
        self._capacity = capacity
        self._ready = trio.Event()
        #: Items dropped because the reader fell behind (reset by ``take``).
        self.skipped = 0
        #: Set by ``close``: the recorder has forgotten this watcher.
        self.closed = trio.Event()

    def offer(self, kind: str, payload: Any) -> None:
        if len(self._items) >= self._capacity:
            self._items.popleft()
            self.skipped += 1
        self._items.append((kind, payload))
        self._ready.set()

    def pending(self) -> int:
        return len(self._items)

    def take(self) -> tuple[int, list[tuple[str, Any]]]:
        """Everything queued now, without waiting, and how many older items were dropped
        since the last take (the reader tells its client it skipped ahead)."""
        items, skipped = list(self._items), self.skipped
        self._items.clear()
        self.skipped = 0
        self._ready = trio.Event()
        return skipped, items

    async def wait(self) -> None:
        """Until something is queued."""
        if not self._items:
            await self._ready.wait()

    def close(self) -> None:
        self._recorder._subscribers.discard(self)
        self.closed.set()


class FlightRecorder:
    def __init__(self, keep_events: int = 1000, keep_traces: int = 200) -> None:
        self.events: deque[Event] = deque(maxlen=keep_events)
        self.traces: deque[Trace] = deque(maxlen=keep_traces)
        self.live: dict[str, Trace] = {}
        self._seq = 0
        self._subscribers: set[Subscription] = set()

    @property
    def watched(self) -> bool:
        """Whether anyone subscribes: what costs more than a deque append waits on this."""
        return bool(self._subscribers)

    def record(self, kind: str, path: str, **detail: Any) -> Event:
        self._seq += 1
        event = Event(self._seq, time.time(), kind, path or "/", detail)
        self.events.append(event)
        for subscriber in self._subscribers:
            subscriber.offer("event", event)
        return event

    # -- traces ---------------------------------------------------------------------------
    def open_trace(self, request_id: str, **attrs: Any) -> Trace:
        """Start tracing ``request_id`` (a replay under the same id starts a new trace)."""
        trace = Trace(request_id, attrs)
        self.live[request_id] = trace
        return trace

    def trace(self, request_id: str) -> Trace | None:
        """The in-flight trace of ``request_id``, if it is being traced."""
        return self.live.get(request_id)

    def spans_for(self, request_id: str) -> Trace:
        """The in-flight trace, or a detached one that nobody keeps: code that adds spans
        then needs no test for whether its request is traced."""
        return self.live.get(request_id) or Trace(request_id, {})

    def rename(self, request_id: str, new_id: str) -> None:
        """The request goes on under another id (a retry that resumes the original
        turn keeps the original's id): its trace follows it."""
        trace = self.live.pop(request_id, None)
        if trace is not None and request_id != new_id:
            trace.attrs["retry_of"] = request_id
            trace.request_id = new_id
            self.live[new_id] = trace
        elif trace is not None:
            self.live[request_id] = trace

    def finish_trace(self, request_id: str, status: str, finish_reason: str | None = None,
                     trace: Trace | None = None) -> None:
        trace = trace or self.live.get(request_id)
        if trace is None or trace.ended_ms is not None:
            return
        if self.live.get(request_id) is trace:
            del self.live[request_id]
        trace.status, trace.finish_reason, trace.state = status, finish_reason, "finished"
        trace.ended_ms = trace.now_ms()
        self.traces.append(trace)
        for subscriber in self._subscribers:
            subscriber.offer("trace", trace)

    def find(self, request_id: str) -> Trace | None:
        """A live or recently finished trace."""
        live = self.live.get(request_id)
        if live is not None:
            return live
        return next((t for t in reversed(self.traces) if t.request_id == request_id), None)

    # -- watchers -------------------------------------------------------------------------
    def subscriptions(self) -> list[Subscription]:
        """The watchers now subscribed (how a test or a metric sees what they hold)."""
        return list(self._subscribers)

    def subscribe(self, capacity: int = 1000) -> Subscription:
        """A bounded feed of what is recorded from now on; ``close`` it when done."""
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        subscription = Subscription(self, capacity)
        self._subscribers.add(subscription)
        return subscription
