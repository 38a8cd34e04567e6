"""What every streaming route shares: waiting for a turn's next batch (with heartbeats
and the drain deadline), token counts, the SSE response and a body that always closes
its turns' streams.

Both completion routes (chat and legacy text) stream the same way and differ only in
the shape of their chunks, so the waiting, the closing and the counting live here once.
Closing a turn's stream is what aborts its generation in the engine, so ``SseBody``
closes every stream however the response ends, even if it never started.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence

import trio
from quart import Response

from chorusline.chat import Chunk, TokenStream, TurnHandle
from chorusline.protocols import openai as wire
from chorusline.web.http import Drain, shutting_down
from chorusline.web.observability import TurnObserver

#: Seconds of silence after which a streaming response sends ``KEEP_ALIVE`` (each route
#: module has its own copy, read at each request, so tests may change it).
HEARTBEAT_SECONDS = 5.0
#: An SSE comment: clients (the OpenAI SDK included) ignore it, proxies see traffic.
KEEP_ALIVE = b": keep-alive\n\n"


class Usage:
    """Token counts of one turn; per-choice maxima because chunks repeat running
    totals rather than increments."""

    def __init__(self, handle: TurnHandle) -> None:
        self.prompt = handle.prompt_tokens
        self.completion: dict[int, int] = {}

    def add(self, chunk: Chunk) -> None:
        self.prompt = chunk.prompt_tokens or self.prompt
        self.completion[chunk.index] = max(self.completion.get(chunk.index, 0),
                                           chunk.completion_tokens)

    def body(self) -> dict[str, int]:
        return wire.usage(self.prompt, sum(self.completion.values()))


def total_usage(usages: Sequence[Usage]) -> dict[str, int]:
    """The usage of several turns (one request with several prompts) as one body."""
    bodies = [u.body() for u in usages]
    return wire.usage(sum(b["prompt_tokens"] for b in bodies),
                      sum(b["completion_tokens"] for b in bodies))


async def next_batch(stream: TokenStream, drain: Drain, heartbeat: float
                     ) -> list[Chunk] | None:
    """The stream's next batch; None at its end; ``[]`` when ``heartbeat`` seconds pass
    without one (send ``KEEP_ALIVE``). At the drain deadline, ``ShuttingDown``: raised
    while an error event can still be sent."""
    batch: list[Chunk] | None = []
    with drain.guard() as cut, trio.move_on_after(heartbeat):
        batch = await stream.next()  # cancel-safe: it waits on an Event
    if cut.cancel_called:
        raise shutting_down()
    return batch


async def next_batches(streams: Mapping[int, TokenStream], drain: Drain, heartbeat: float
                       ) -> dict[int, list[Chunk] | None]:
    """The next batch of whichever of ``streams`` has one first (several, if they come
    together), keyed like ``streams``; a stream's None means it ended; ``{}`` after
    ``heartbeat`` seconds of silence. ``TokenStream.next`` takes its output only once
    its wait is over, so the waits cancelled here lose nothing. A failed stream's error
    is raised (as such, not in an exception group)."""
    if len(streams) == 1:
        (key, stream), = streams.items()
        batch = await next_batch(stream, drain, heartbeat)
        return {} if batch == [] else {key: batch}
    got: dict[int, list[Chunk] | None] = {}
    errors: list[Exception] = []

    async def take(key: int, stream: TokenStream, done: trio.CancelScope) -> None:
        try:
            got[key] = await stream.next()
        except Exception as error:  # re-raised below, outside the nursery
            errors.append(error)
        done.cancel()

    with drain.guard() as cut, trio.move_on_after(heartbeat):
        async with trio.open_nursery() as nursery:
            for key, stream in streams.items():
                nursery.start_soon(take, key, stream, nursery.cancel_scope)
    if errors:
        raise errors[0]
    if cut.cancel_called:
        raise shutting_down()
    return got


def sse_response(body: AsyncIterator[bytes]) -> Response:
    response = Response(body, mimetype="text/event-stream")
    response.timeout = None  # a long generation must not hit Quart's RESPONSE_TIMEOUT
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"
    return response


class SseBody:
    """The response body: iterates the event generator and, however it ends, closes
    the turns' streams. Quart calls ``aclose`` after sending or on cancellation; a plain
    generator that never started would not run its ``finally``, this does."""

    def __init__(self, handles: Sequence[TurnHandle], events: AsyncIterator[bytes],
                 observer: TurnObserver) -> None:
        self.handles = handles
        self.events = events
        self.observer = observer

    def __aiter__(self) -> SseBody:
        return self

    async def __anext__(self) -> bytes:
        return await self.events.__anext__()

    async def aclose(self) -> None:
        try:
            close = getattr(self.events, "aclose", None)
            if close is not None:
                await close()
        finally:
            for handle in self.handles:
                handle.stream.close()
            # A body never iterated (the client left before the first byte) still ends
            # its turn for the metrics; after a normal end this does nothing.
            self.observer.finish(sum(h.prompt_tokens for h in self.handles),
                                 sum(h.stream.completion_tokens for h in self.handles))
