"""The embedder: a supervised actor that batches embedding requests into forwards.

Why batching pays: one encoder forward over 32 short inputs costs little more than over
one, so requests that arrive while a forward runs are not served one by one. ``receive``
only queues a request and answers at once with a ``Pending`` (so the mailbox never
waits behind a forward); a background task takes everything queued, up to
``max_batch_inputs`` inputs and ``max_batch_tokens`` tokens (a single larger request
goes alone), and runs it as one ``embed`` call on a worker thread, so the event loop
never waits on torch. The first request after an idle spell starts at once: there is no
waiting window to fill a batch, only the natural one of the forward in progress.

Let it crash: a forward that raises fails its requests (and every queued one) with a
503 and crashes the actor; its supervisor starts a fresh one, which serves the next
request. The model is loaded by ``model_factory`` on the worker thread on first use,
and the default factory caches it per process, so a restart costs no reload.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import trio

from chorusline.actors import Actor, ExitReason
from chorusline.protocols import ServiceUnavailable

if TYPE_CHECKING:
    import numpy as np

EMBEDDER_KEY = "chorusline.embedder"
#: A batch of inputs the embedder takes at once (each request is kept whole).
MAX_BATCH_INPUTS = 512
#: ...and of tokens, which bounds a batch's forward time and the memory it needs.
MAX_BATCH_TOKENS = 64 * 1024


class EncoderLike(Protocol):
    """What the chat layer needs of ``chorusline.runtime.EmbeddingModel``."""

    @property
    def name(self) -> str: ...

    @property
    def dimensions(self) -> int: ...

    @property
    def max_seq_length(self) -> int: ...

    @property
    def vocab_size(self) -> int: ...

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]: ...

    def wrap(self, content_ids: Sequence[int]) -> list[int]: ...

    def embed(self, batch: Sequence[Sequence[int]]) -> np.ndarray: ...


@dataclass(frozen=True)
class EmbedRows:
    """Embed these sequences (already checked and wrapped in the model's specials);
    the reply is a ``Pending`` for a float32 ``[len(rows), dimensions]`` array."""

    rows: tuple[tuple[int, ...], ...]

    @property
    def tokens(self) -> int:
        return sum(len(row) for row in self.rows)


@dataclass(frozen=True)
class GetEmbedderStats:
    pass


@dataclass(frozen=True)
class EmbedderStats:
    requests: int
    forwards: int
    inputs: int
    queued: int


class Pending:
    """One request's vectors, resolved by the embedder's batch task (trio side only)."""

    def __init__(self, message: EmbedRows) -> None:
        self.message = message
        self._done = trio.Event()
        self._value: np.ndarray | None = None
        self._error: BaseException | None = None

    def resolve(self, value: np.ndarray) -> None:
        if not self._done.is_set():
            self._value = value
            self._done.set()

    def fail(self, error: BaseException) -> None:
        if not self._done.is_set():
            self._error = error
            self._done.set()

    async def result(self) -> np.ndarray:
        await self._done.wait()
        if self._error is not None:
            raise self._error
        assert self._value is not None
        return self._value


def _crashed() -> ServiceUnavailable:
    return ServiceUnavailable("the embedding worker crashed and is being restarted; "
                              "retry the request")


class Embedder(Actor):
    def __init__(self, model_factory: Callable[[], EncoderLike], *,
                 max_batch_inputs: int = MAX_BATCH_INPUTS,
                 max_batch_tokens: int = MAX_BATCH_TOKENS) -> None:
        self._factory = model_factory
        self._model: EncoderLike | None = None
        self._limits = (max_batch_inputs, max_batch_tokens)
        self._queue: deque[Pending] = deque()
        self._in_flight: list[Pending] = []
        self._wake = trio.Event()
        self._stats = {"requests": 0, "forwards": 0, "inputs": 0}

    async def on_start(self) -> None:
        self.context.start_soon(self._serve, name="embedder-batches")

    async def receive(self, message: Any) -> Any:
        if isinstance(message, EmbedRows):
            pending = Pending(message)
            self._queue.append(pending)
            self._stats["requests"] += 1
            self._wake.set()
            return pending
        if isinstance(message, GetEmbedderStats):
            return EmbedderStats(queued=len(self._queue), **self._stats)
        return await super().receive(message)

    async def on_stop(self, reason: ExitReason) -> None:
        for pending in [*self._in_flight, *self._queue]:
            pending.fail(_crashed())
        self._queue.clear()

    def _take(self) -> list[Pending]:
        """The oldest request, then as many queued ones as fit the batch limits."""
        max_inputs, max_tokens = self._limits
        batch = [self._queue.popleft()]
        inputs, tokens = len(batch[0].message.rows), batch[0].message.tokens
        while self._queue:
            message = self._queue[0].message
            if (inputs + len(message.rows) > max_inputs
                    or tokens + message.tokens > max_tokens):
                break
            inputs, tokens = inputs + len(message.rows), tokens + message.tokens
            batch.append(self._queue.popleft())
        return batch

    async def _serve(self) -> None:
        while True:
            while not self._queue:
                await self._wake.wait()
                self._wake = trio.Event()
            self._in_flight = batch = self._take()
            rows = [row for pending in batch for row in pending.message.rows]
            try:
                vectors = await trio.to_thread.run_sync(self._forward, rows)
            except BaseException:
                for pending in batch:
                    pending.fail(_crashed())
                raise  # let it crash: the supervisor restarts a clean embedder
            self._stats["forwards"] += 1
            self._stats["inputs"] += len(rows)
            start = 0
            for pending in batch:
                end = start + len(pending.message.rows)
                pending.resolve(vectors[start:end])
                start = end
            self._in_flight = []

    def _forward(self, rows: list[tuple[int, ...]]) -> np.ndarray:
        """On a worker thread: the model (loaded on first use) over the whole batch."""
        if self._model is None:
            self._model = self._factory()
        return self._model.embed(rows)

    def introspect(self) -> dict[str, Any]:
        return {**self._stats, "queued": len(self._queue)}
