"""Output moderation between the engine's stream and the client's, for any reply.

A stored conversation's reply is moderated by its ``ReplyPump``; a stateless request
(plain ``/v1/chat/completions`` without ``conversation_id``) has no conversation actor,
so its session actor runs ``relay_moderated`` instead. Both go through ``ModeratedChoice``,
so the two paths release text, redact, block and align logprobs the same way.

A stateless request may ask for ``n`` choices: each gets its own moderator. A blocked
choice ends at once with ``finish_reason: content_filter`` and the policy's refusal text
(what it had already released stays released: it was final when it went out, see
``moderation.stream``); the other choices go on. The engine request is aborted as soon
as no choice is left open, or when the client goes away.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chorusline.chat.deps import ChatDeps
from chorusline.chat.moderation import OutputModerator, Stage, Verdict
from chorusline.chat.store import ModerationStage
from chorusline.chat.stream import Chunk, LogprobAligner, TokenStream
from chorusline.protocols import ChoruslineError

if TYPE_CHECKING:
    from chorusline.runtime import TokenLogprob


class ReplyInterrupted(ChoruslineError):
    """The actor relaying a reply stopped before the reply ended."""

    http_status = 503
    code = "interrupted"


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


async def record_verdict(deps: ChatDeps, verdict: Verdict, conversation_id: str | None,
                         message_id: str | None) -> None:
    """Store each moderation record of ``verdict`` (no ids for a stateless request)."""
    stage = ModerationStage.INPUT if verdict.stage is Stage.INPUT else ModerationStage.OUTPUT
    for record in verdict.records():
        await deps.db(
            deps.store.record_moderation,
            stage=stage,
            category=record.category,
            action=record.action.value,
            conversation_id=conversation_id,
            message_id=message_id,
            detail=record.detail,
        )


def moderated_stream(engine: TokenStream) -> TokenStream:
    """The client's side of ``relay_moderated``: closing it aborts the engine request."""
    return TokenStream(engine.request_id, choices=engine.choices,
                       max_pending_chars=engine.max_pending_chars,
                       on_close=lambda _request_id: engine.close())


async def relay_moderated(deps: ChatDeps, engine: TokenStream, client: TokenStream) -> None:
    """Copy ``engine`` to ``client`` (made by ``moderated_stream``) through one moderator
    per choice: a stateless request's reply task."""
    choices = {i: ModeratedChoice(deps.moderator.output_stream())
               for i in range(engine.choices)}
    try:
        async for chunks in engine:
            for chunk in chunks:
                choice = choices.pop(chunk.index, None)
                if choice is None:
                    continue  # blocked earlier: its later tokens are dropped
                taken = choice.take(chunk)
                if taken is None:  # blocked: the refusal ends this choice
                    verdict = choice.blocked
                    assert verdict is not None
                    client.push(Chunk(chunk.index, verdict.text, finish_reason="content_filter",
                                      prompt_tokens=chunk.prompt_tokens,
                                      completion_tokens=chunk.completion_tokens))
                    await record_verdict(deps, verdict, None, None)
                    continue
                text, logprobs = taken
                client.push(Chunk(chunk.index, text, list(chunk.token_ids), logprobs,
                                  finish_reason=chunk.finish_reason,
                                  prompt_tokens=chunk.prompt_tokens,
                                  completion_tokens=chunk.completion_tokens))
                if chunk.finish_reason is None:
                    choices[chunk.index] = choice
            if not choices:
                break
    except ChoruslineError as failure:
        client.fail(failure)
    finally:
        engine.close()
        if not client.finished:
            client.fail(ReplyInterrupted("the reply stopped before it ended"))
