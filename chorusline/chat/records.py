"""What a reply leaves behind: the two ``ReplyRecord``s of ``chat.reply``.

A stored turn keeps its reply as a draft message that is flushed while it streams and
finalised (with its usage) at the end, and caches the branch it completes; a stateless
turn keeps only its usage row and moderation events. Everything else about a reply is
the same for both, and lives in ``chat.reply``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from chorusline.chat.deps import ChatDeps
from chorusline.chat.principal import Principal
from chorusline.chat.reply import Outcome, record_verdict
from chorusline.chat.tool_calls import rendered, reply_calls
from chorusline.moderation import Verdict
from chorusline.protocols import (
    ChoruslineError,
    ConversationInterrupted,
    ReplyInterrupted,
    ToolCall,
)
from chorusline.store import MessageStatus


async def record_usage(deps: ChatDeps, principal: Principal, request_id: str, model: str,
                       outcome: Outcome, conversation_id: str | None,
                       end_user: str | None) -> None:
    await deps.db(deps.store.record_usage, user_id=principal.user_id, model=model,
                  prompt_tokens=outcome.prompt_tokens,
                  completion_tokens=outcome.completion_tokens,
                  api_key_id=principal.api_key_id, conversation_id=conversation_id,
                  ttft_ms=outcome.ttft_ms, latency_ms=outcome.latency_ms,
                  request_id=request_id, end_user=end_user)


@dataclass
class StoredRecord:
    """A stored turn's reply: the draft ``draft_id`` in ``conversation_id``. ``entries``
    is the branch the reply answers, cached with it in Redis once it is complete."""

    deps: ChatDeps
    principal: Principal
    request_id: str
    #: The model answering (after any fallback): the draft and the usage row name it.
    model: str
    conversation_id: str
    draft_id: str
    entries: list[dict[str, str]] = field(default_factory=list)
    end_user: str | None = None
    #: The turn offered tools: the reply's calls are read out of its text and kept as
    #: its ``tool_calls`` (otherwise a ``<tool_call>`` the model wrote is plain text).
    tool_calls: bool = False
    keeps_reply: bool = True
    _finalised: bool = False
    _counted: bool = False

    async def flush(self, text: str) -> None:
        content, calls, _ = self._split(text, "stop")
        await self.deps.db(self.deps.store.update_draft, self.conversation_id, self.draft_id,
                           content, calls)

    def _split(self, text: str, finish_reason: str
               ) -> tuple[str, tuple[ToolCall, ...], str]:
        if not self.tool_calls:
            return text, (), finish_reason
        return reply_calls(self.request_id, text, finish_reason)

    async def finish(self, outcome: Outcome) -> None:
        deps = self.deps
        content, calls, finish_reason = self._split(outcome.text, outcome.finish_reason)
        if not self._finalised:  # a retry after a failure writes only what is missing
            await deps.db(deps.store.finalize_message, self.conversation_id, self.draft_id,
                          status=outcome.status, finish_reason=finish_reason,
                          content=content, prompt_tokens=outcome.prompt_tokens,
                          completion_tokens=outcome.completion_tokens, tool_calls=calls,
                          model=self.model)
            self._finalised = True
        if not self._counted:
            await record_usage(deps, self.principal, self.request_id, self.model, outcome,
                               self.conversation_id, self.end_user)
            self._counted = True
        if deps.hot_cache is not None and outcome.status is MessageStatus.COMPLETE:
            # The branch now ends with this reply: the next plain turn can skip the
            # store. A failed or blocked reply leaves the cache as it was.
            reply = {"id": self.draft_id, "role": "assistant",
                     "content": rendered(content, calls)}
            await deps.db(deps.hot_cache.put, self.conversation_id, [*self.entries, reply])

    async def moderation(self, verdict: Verdict) -> None:
        await record_verdict(self.deps, verdict, self.conversation_id, self.draft_id)

    def interrupted(self) -> ChoruslineError:
        return ConversationInterrupted("the conversation stopped mid-reply")


@dataclass
class UsageRecord:
    """A stateless turn's reply: nothing is kept but its usage and moderation events."""

    deps: ChatDeps
    principal: Principal
    request_id: str
    model: str
    end_user: str | None = None
    keeps_reply: bool = False

    async def flush(self, text: str) -> None:
        return None

    async def finish(self, outcome: Outcome) -> None:
        await record_usage(self.deps, self.principal, self.request_id, self.model, outcome,
                           None, self.end_user)

    async def moderation(self, verdict: Verdict) -> None:
        await record_verdict(self.deps, verdict, None, None)

    def interrupted(self) -> ChoruslineError:
        return ReplyInterrupted("the reply stopped before it ended")
