"""One reply's life after the engine accepted it: moderate, stream, record. Written once.

A stored turn and a stateless one differ only in what the reply leaves behind, so the
loop here is shared and the difference is a ``ReplyRecord``: a stored turn's draft
(flushed while tokens arrive, finalised at the end, its branch cached), or a stateless
turn's usage row. Each choice goes through its own output moderator (``ModeratedChoice``):
a blocked choice ends with ``content_filter`` and the policy's refusal, the others go on.

The rules that make a reply durable and every stream end:

* A stored reply's final chunks (those with ``finish_reason``) reach the client only
  after the record is written: a client that saw a reply end can count on it being kept.
  A stateless reply keeps nothing the client relies on, so its usage row is written after.
* Recording runs in a shielded ``finally`` whatever ends the stream (finished, failed,
  reader gone, actor stopping), and the client's stream is always ended: with the final
  chunks, or with an error. A store that cannot be reached costs at most its own timeout;
  the client is then told the reply was not kept (``StoreUnavailable``), and the record
  is retried in the background until the store is back, as an incomplete reply.
* Draft flushes are best effort and never wait in the reply's path: one runs at a time in
  the background, and a failed flush is simply superseded by the next one or the final
  write.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Protocol

import trio

from chorusline.actors import FlightRecorder
from chorusline.chat.deps import ChatDeps
from chorusline.chat.stream import Chunk, LogprobAligner, TokenStream
from chorusline.moderation import OutputModerator, Stage, Verdict
from chorusline.protocols import (
    ChoruslineError,
    StoreUnavailable,
    TokenLogprob,
)
from chorusline.store import MessageStatus, ModerationStage

log = logging.getLogger("chorusline.chat")

#: How long, at most, a failed final write is retried in the background.
RECORD_RETRY_SECONDS = 900.0
#: Finish reasons of a reply that did not end by itself (stored as ``incomplete``):
#: ``abort`` the reader went away, ``error`` a failure, ``interrupted`` the actor serving
#: it stopped (a crash, a restart), ``timeout`` its deadline passed.
TRUNCATED = frozenset({"abort", "error", "interrupted", "timeout"})


class ModeratedChoice:
    """One choice's deltas through an ``OutputModerator``, its logprobs held back with
    the text they belong to."""

    def __init__(self, moderator: OutputModerator) -> None:
        self.moderator = moderator
        self.aligner = LogprobAligner()

    @property
    def blocked(self) -> Verdict | None:
        return self.moderator.blocked

    def take(self, chunk: Chunk) -> tuple[str, list[TokenLogprob]] | None:
        """The text now safe to show and the logprobs it releases; at the final chunk
        everything left. None once the moderator has blocked the reply."""
        moderator, aligner = self.moderator, self.aligner
        safe = moderator.feed(chunk.text)
        aligner.add(chunk.text, chunk.logprobs)
        if chunk.finish_reason is not None and moderator.blocked is None:
            safe += moderator.finish()
        if moderator.blocked is not None:
            return None
        if chunk.finish_reason is not None:
            return safe, aligner.rest()
        return safe, aligner.release(moderator.settled)


@dataclass
class Outcome:
    """How a reply ended, as the record keeps it (choice 0's text and finish)."""

    status: MessageStatus
    finish_reason: str
    text: str
    prompt_tokens: int
    completion_tokens: int
    ttft_ms: float | None
    latency_ms: float


def blocked_categories(verdict: Verdict) -> list[str]:
    return sorted({finding.category for finding in verdict.findings})


class ReplyRecord(Protocol):
    """What a reply leaves behind. ``keeps_reply``: the client must be told when the
    final write fails (a stored turn); a stateless turn's usage is retried silently."""

    keeps_reply: bool

    async def flush(self, text: str) -> None: ...

    async def finish(self, outcome: Outcome) -> None: ...

    async def moderation(self, verdict: Verdict) -> None: ...

    def interrupted(self) -> ChoruslineError:
        """The error a reader gets when the owner actor stops mid-reply."""
        ...


async def record_verdict(deps: ChatDeps, verdict: Verdict, conversation_id: str | None,
                         message_id: str | None) -> None:
    """Store each moderation record of ``verdict`` (no ids for a stateless request)."""
    stage = ModerationStage.INPUT if verdict.stage is Stage.INPUT else ModerationStage.OUTPUT
    for record in verdict.records():
        await deps.db(deps.store.record_moderation, stage=stage, category=record.category,
                      action=record.action.value, conversation_id=conversation_id,
                      message_id=message_id, detail=record.detail)


@dataclass
class Reply:
    """Everything one streaming reply needs; ``run`` is its owner actor's task."""

    deps: ChatDeps
    engine: TokenStream
    client: TokenStream
    record: ReplyRecord
    started: float
    persisted: trio.Event = field(default_factory=trio.Event)
    #: Where the reply's spans and its output-moderation blocks are recorded.
    recorder: FlightRecorder = field(default_factory=FlightRecorder)
    #: The owner actor's path, for the timeline and the trace.
    path: str = "/"

    async def run(self) -> None:
        deps, engine = self.deps, self.engine
        choices = {i: ModeratedChoice(deps.moderator.output_stream())
                   for i in range(engine.choices)}
        texts = [""] * engine.choices
        finals: dict[int, Chunk] = {}
        completion = [0] * engine.choices
        prompt_tokens = 0
        error: ChoruslineError | None = None
        cancelled = True
        async with trio.open_nursery() as flushes:
            flushing = False
            flushed_at = trio.current_time()

            async def flush(text: str) -> None:
                nonlocal flushing
                try:
                    await self.record.flush(text)
                except ChoruslineError as failure:  # superseded by the next write
                    log.warning("draft flush failed: %s", failure)
                finally:
                    flushing = False

            try:
                async for chunks in engine:
                    for chunk in chunks:
                        prompt_tokens = chunk.prompt_tokens or prompt_tokens
                        completion[chunk.index] = chunk.completion_tokens
                        choice = choices.pop(chunk.index, None)
                        if choice is None:
                            continue  # blocked earlier: its later tokens are dropped
                        taken = choice.take(chunk)
                        if taken is None:
                            verdict = choice.blocked
                            assert verdict is not None
                            texts[chunk.index] = verdict.text
                            finals[chunk.index] = self._final(chunk, verdict.text, [],
                                                              "content_filter")
                            await self._moderation(verdict)
                            self.recorder.record(
                                "moderation_blocked", self.path, where="output",
                                request_id=self.client.request_id,
                                categories=blocked_categories(verdict))
                            continue
                        text, logprobs = taken
                        texts[chunk.index] += text
                        if chunk.finish_reason is not None:
                            finals[chunk.index] = self._final(chunk, text, logprobs,
                                                              chunk.finish_reason)
                            continue
                        choices[chunk.index] = choice
                        self.client.push(Chunk(chunk.index, text, list(chunk.token_ids),
                                               logprobs, prompt_tokens=prompt_tokens,
                                               completion_tokens=chunk.completion_tokens))
                    if not choices:
                        break
                    now = trio.current_time()
                    if not flushing and now - flushed_at >= deps.draft_flush_interval:
                        flushing, flushed_at = True, now
                        flushes.start_soon(flush, texts[0])
                cancelled = False
            except ChoruslineError as failure:
                error, cancelled = failure, False
            finally:
                engine.close()
                flushes.cancel_scope.cancel()
                with trio.CancelScope(shield=True):
                    outcome = self._outcome(finals, texts, error, cancelled,
                                            prompt_tokens, sum(completion))
                    trace = self.recorder.spans_for(self.client.request_id)
                    trace.state = "streaming"
                    if self.record.keeps_reply:  # the client sees the end once it is kept
                        with trace.span("persist", self.path):
                            kept = await self._finish(outcome)
                        self._end(finals, error, cancelled, kept)
                        trace.mark("final_chunk", self.path)
                    else:  # nothing the client relies on is kept: no need to wait
                        self._end(finals, error, cancelled, True)
                        trace.mark("final_chunk", self.path)
                        with trace.span("persist", self.path):
                            kept = await self._finish(outcome)
                    self.persisted.set()
                    self.recorder.finish_trace(
                        trace.request_id, outcome.status.value if kept else "error",
                        outcome.finish_reason, trace)
        if not kept:
            await self._retry(outcome)

    def _final(self, chunk: Chunk, text: str, logprobs: list[TokenLogprob],
               finish: str) -> Chunk:
        return Chunk(chunk.index, text, list(chunk.token_ids), logprobs, finish_reason=finish,
                     prompt_tokens=chunk.prompt_tokens,
                     completion_tokens=chunk.completion_tokens)

    def _outcome(self, finals: dict[int, Chunk], texts: list[str],
                 error: ChoruslineError | None, cancelled: bool, prompt_tokens: int,
                 completion_tokens: int) -> Outcome:
        first = finals.get(0)
        ended = None if first is None else first.finish_reason
        if ended == "content_filter":
            status, finish = MessageStatus.BLOCKED, "content_filter"
        elif ended in TRUNCATED:  # the engine cut it short (its deadline passed)
            status, finish = MessageStatus.INCOMPLETE, ended
        elif ended is not None and len(finals) == self.engine.choices:
            status, finish = MessageStatus.COMPLETE, ended
        else:
            status = MessageStatus.INCOMPLETE
            finish = "error" if error is not None else "interrupted" if cancelled else "abort"
        now = trio.current_time()
        first_token = self.engine.first_token_at
        return Outcome(status, finish, texts[0], prompt_tokens, completion_tokens,
                       None if first_token is None else (first_token - self.started) * 1000,
                       (now - self.started) * 1000)

    async def _moderation(self, verdict: Verdict) -> None:
        try:
            await self.record.moderation(verdict)
        except ChoruslineError as failure:
            log.warning("a moderation event was not recorded: %s", failure)

    async def _finish(self, outcome: Outcome) -> bool:
        try:
            await self.record.finish(outcome)
        except ChoruslineError as failure:
            log.warning("reply not recorded (%s); retrying in the background", failure)
            return False
        return True

    def _end(self, finals: dict[int, Chunk], error: ChoruslineError | None, cancelled: bool,
             kept: bool) -> None:
        """End the client's stream, whatever happened: final chunks, or an error."""
        client = self.client
        if not kept and self.record.keeps_reply:
            client.fail(StoreUnavailable("the reply could not be saved: the database is "
                                         "unreachable; retry the request later"))
            return
        for index in sorted(finals):
            client.push(finals[index])
        if len(finals) < self.engine.choices:
            client.fail(error or self.record.interrupted())

    async def _retry(self, outcome: Outcome) -> None:
        """Write the record once the store is back (the client was already told)."""
        if self.record.keeps_reply and outcome.status is not MessageStatus.INCOMPLETE:
            outcome.status, outcome.finish_reason = MessageStatus.INCOMPLETE, "error"
        delay = 1.0
        with trio.move_on_after(RECORD_RETRY_SECONDS):
            while not await self._finish(outcome):
                await trio.sleep(delay)
                delay = min(delay * 2, 30.0)
