"""Per-request token streams between the engine driver (producer) and one consumer.

The driver pushes every engine step's tokens without ever waiting, so a slow reader
cannot stall the batch. A stream coalesces what its reader has not taken yet into one
pending chunk per choice; its memory is bounded by ``max_pending_chars``, beyond which
the reader counts as gone: the stream fails and its request is aborted. Closing a stream
(the reader went away) aborts the request in the engine at the next step.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import trio

from chorusline.protocols import SlowConsumer, TokenLogprob


@dataclass
class Chunk:
    """What one choice produced since the reader last looked (possibly several tokens).

    ``logprobs`` (only when the request asked for them) are in generation order. From
    the engine, a token's entry comes in the step that produced the token, possibly
    before its text (the detokenizer holds back half a UTF-8 character or a possible
    stop string); through the output moderator, with the chunk that completes its text
    (see ``LogprobAligner``). Readers hold text-less entries until text follows.
    """

    index: int
    text: str = ""
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[TokenLogprob] = field(default_factory=list)
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def merge(self, other: Chunk) -> None:
        self.text += other.text
        self.token_ids.extend(other.token_ids)
        self.logprobs.extend(other.logprobs)
        self.finish_reason = other.finish_reason or self.finish_reason
        self.prompt_tokens = other.prompt_tokens or self.prompt_tokens
        self.completion_tokens = max(self.completion_tokens, other.completion_tokens)


class TokenStream:
    def __init__(
        self,
        request_id: str,
        *,
        choices: int = 1,
        max_pending_chars: int = 64 * 1024,
        on_close: Callable[[str], None] | None = None,
    ) -> None:
        self.request_id = request_id
        self.choices = choices
        self.max_pending_chars = max_pending_chars
        self._on_close = on_close
        self._pending: dict[int, Chunk] = {}
        self._pending_chars = 0
        self._open_choices = set(range(choices))
        self._error: BaseException | None = None
        self._closed = False
        self._changed = trio.Event()
        self._done_callbacks: list[Callable[[TokenStream], None]] = []
        self.first_token_at: float | None = None
        self.completion_tokens = 0
        self.prompt_tokens = 0

    # -- producer side (never blocks) ---------------------------------------------------
    @property
    def finished(self) -> bool:
        return not self._open_choices or self._error is not None or self._closed

    def add_done_callback(self, callback: Callable[[TokenStream], None]) -> None:
        """Call ``callback(stream)`` once when the stream ends (finished, failed or
        closed): where a session settles the turn's rate-limit charge."""
        if self.finished:
            callback(self)
        else:
            self._done_callbacks.append(callback)

    def _check_done(self) -> None:
        if self.finished and self._done_callbacks:
            callbacks, self._done_callbacks = self._done_callbacks, []
            for callback in callbacks:
                callback(self)

    def push(self, chunk: Chunk) -> None:
        if self.finished:
            return
        self.prompt_tokens = chunk.prompt_tokens or self.prompt_tokens
        self.completion_tokens = max(self.completion_tokens, chunk.completion_tokens)
        if self.first_token_at is None and chunk.token_ids:
            self.first_token_at = trio.current_time()
        pending = self._pending.get(chunk.index)
        if pending is None:
            self._pending[chunk.index] = chunk
        else:
            pending.merge(chunk)
        self._pending_chars += len(chunk.text)
        if chunk.finish_reason is not None:
            self._open_choices.discard(chunk.index)
        if self._pending_chars > self.max_pending_chars and self._open_choices:
            self.fail(SlowConsumer(f"request {self.request_id}: reader fell too far behind"))
            self._abort()
        self._changed.set()
        self._check_done()

    def fail(self, error: BaseException) -> None:
        if self._error is None:
            self._error = error
            self._changed.set()
            self._check_done()

    # -- consumer side ------------------------------------------------------------------
    async def next(self) -> list[Chunk] | None:
        """Everything produced since the last call (one chunk per choice), or None at
        the end. Raises the stream's error, if it failed, once pending output is taken."""
        while not self._pending:
            if self._error is not None:
                raise self._error
            if not self._open_choices or self._closed:
                return None
            self._changed = trio.Event()
            await self._changed.wait()
        chunks = [self._pending[i] for i in sorted(self._pending)]
        self._pending = {}
        self._pending_chars = 0
        return chunks

    async def __aiter__(self) -> AsyncIterator[list[Chunk]]:
        try:
            while (chunks := await self.next()) is not None:
                yield chunks
        finally:
            self.close()

    def close(self) -> None:
        """The reader is done (or gone): abort the request if it is still running."""
        if self._closed:
            return
        running = bool(self._open_choices) and self._error is None
        self._closed = True
        self._changed.set()
        if running:
            self._abort()
        self._check_done()

    def _abort(self) -> None:
        if self._on_close is not None:
            callback, self._on_close = self._on_close, None
            callback(self.request_id)


class LogprobAligner:
    """Holds a reply's token logprobs back until a filter downstream of the engine (the
    output moderator) has released the text those tokens produced, so a client gets
    each token's entry with, or after, the delta that shows its text, never ahead of it.

    Alignment is per engine chunk: a chunk's entries are released once all of its text
    is settled. The filter reports how much of its *input* is settled, so a redaction
    (which changes the output's length) does not shift the alignment.
    """

    def __init__(self) -> None:
        self._fed = 0
        self._queue: deque[tuple[int, list[TokenLogprob]]] = deque()

    def add(self, text: str, logprobs: list[TokenLogprob]) -> None:
        """Note one engine chunk: its text (as fed to the filter) and its entries."""
        self._fed += len(text)
        if logprobs:
            self._queue.append((self._fed, logprobs))

    def release(self, settled: int) -> list[TokenLogprob]:
        """The entries whose text lies within the first ``settled`` characters fed."""
        out: list[TokenLogprob] = []
        while self._queue and self._queue[0][0] <= settled:
            out.extend(self._queue.popleft()[1])
        return out

    def rest(self) -> list[TokenLogprob]:
        """Everything still held: the reply ended and its text is all out."""
        return self.release(self._fed)
