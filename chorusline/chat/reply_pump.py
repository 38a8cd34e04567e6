"""One reply's life after the engine accepted it: stream, moderate, flush, persist.

Split from the conversation actor because it runs as that actor's background task, not in
``receive``, and holds the durability rules of a streaming reply in one place: the draft
is flushed while tokens arrive, finalised (with usage) in a shielded ``finally`` whatever
ends the stream, and the client sees the final chunk only after the store has it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio

from chorusline.chat.deps import ChatDeps
from chorusline.chat.moderated_relay import ModeratedChoice, ReplyInterrupted, record_verdict
from chorusline.chat.store import MessageStatus
from chorusline.chat.stream import Chunk, TokenStream
from chorusline.chat.turn import TurnRequest
from chorusline.protocols import ChoruslineError

if TYPE_CHECKING:
    from chorusline.runtime import TokenLogprob


class ConversationInterrupted(ReplyInterrupted):
    """The conversation actor stopped mid-reply; the draft is kept as incomplete."""


@dataclass
class ReplyPump:
    """Everything one streaming reply needs; ``run`` is the conversation's turn task."""

    deps: ChatDeps
    conversation_id: str
    request: TurnRequest
    engine: TokenStream
    client: TokenStream
    draft_id: str
    started: float
    persisted: trio.Event
    entries: list[dict[str, str]]

    async def run(self) -> None:
        """Stream, moderate and persist one reply (then cache its branch, if complete).

        The final chunk (the one with ``finish_reason``) is only pushed after the reply
        is finalised in the store: a client that saw the end of a reply can count on it
        being stored.
        """
        deps, store = self.deps, self.deps.store
        engine, client = self.engine, self.client
        draft_id, persisted, entries = self.draft_id, self.persisted, self.entries
        choice = ModeratedChoice(deps.moderator.output_stream())
        tail: list[TokenLogprob] = []
        shown, ending = "", ""
        status, finish = MessageStatus.INCOMPLETE, "abort"
        prompt_tokens = completion_tokens = 0
        error: ChoruslineError | None = None
        completed = False
        flushed_at = trio.current_time()
        try:
            async for chunks in engine:
                chunk = chunks[0]
                prompt_tokens = chunk.prompt_tokens or prompt_tokens
                completion_tokens = chunk.completion_tokens
                taken = choice.take(chunk)
                if taken is None:
                    break
                safe, logprobs = taken
                shown += safe
                if chunk.finish_reason is not None:
                    status, finish, ending = MessageStatus.COMPLETE, chunk.finish_reason, safe
                    tail = logprobs
                    completed = True
                    break
                client.push(Chunk(0, safe, list(chunk.token_ids), logprobs,
                                  prompt_tokens=prompt_tokens,
                                  completion_tokens=completion_tokens))
                if trio.current_time() - flushed_at >= deps.draft_flush_interval:
                    await deps.db(store.update_draft, self.conversation_id, draft_id, shown)
                    flushed_at = trio.current_time()
            blocked = choice.blocked
            if blocked is not None:
                engine.close()
                status, finish, ending = MessageStatus.BLOCKED, "content_filter", blocked.text
                shown = blocked.text
                completed = True
                await record_verdict(deps, blocked, self.conversation_id, draft_id)
        except ChoruslineError as failure:
            error, finish = failure, "error"
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(10):
                await self._persist(status, finish, shown, prompt_tokens, completion_tokens)
                if deps.hot_cache is not None and status is MessageStatus.COMPLETE:
                    # The branch now ends with this reply: the next plain turn can skip
                    # the store. A failed or blocked reply leaves the cache as it was.
                    reply = {"id": draft_id, "role": "assistant", "content": shown}
                    await deps.db(deps.hot_cache.put, self.conversation_id,
                                  [*entries, reply])
            if completed:
                # A blocked reply's held-back tokens are dropped with their text.
                client.push(Chunk(0, ending, logprobs=tail, finish_reason=finish,
                                  prompt_tokens=prompt_tokens,
                                  completion_tokens=completion_tokens))
            else:
                client.fail(error or ConversationInterrupted("the conversation stopped mid-reply"))
            persisted.set()

    async def _persist(self, status: MessageStatus, finish: str, content: str,
                       prompt_tokens: int, completion_tokens: int) -> None:
        deps, store = self.deps, self.deps.store
        request, draft_id, started = self.request, self.draft_id, self.started
        await deps.db(
            store.finalize_message,
            self.conversation_id,
            draft_id,
            status=status,
            finish_reason=finish,
            content=content,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
        )
        first = self.engine.first_token_at
        await deps.db(
            store.record_usage,
            user_id=request.user_id,
            model=deps.model_name,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            api_key_id=request.api_key_id,
            conversation_id=self.conversation_id,
            ttft_ms=None if first is None else (first - started) * 1000,
            latency_ms=(trio.current_time() - started) * 1000,
        )
