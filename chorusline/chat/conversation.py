"""The conversation actor: one per conversation id, owner of its message sequence.

A turn is set up inside ``receive`` (one at a time, so two tabs appending at once get
monotonic, gap-free sequence numbers and each sees the other's message in its context),
then streamed by a background task, so a long reply does not block the next append.

Durability: the user message is committed (``begin_turn``) before any engine work; the
assistant reply exists as an ``incomplete`` draft before the first token, is flushed while
it streams, and is finalised at the end. A crash of this actor cancels the stream task,
whose ``finally`` still finalises the draft; if even that is cut short, the next
incarnation's ``on_start`` closes every open draft as interrupted. Nothing acknowledged
is lost, and a retry with the same idempotency key replays the stored turn.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

import trio

from chorusline.actors import Actor
from chorusline.chat.context import assemble, system_text
from chorusline.chat.deps import SCHEDULER_KEY, ChatDeps
from chorusline.chat.moderated_relay import record_verdict
from chorusline.chat.moderation import Verdict
from chorusline.chat.reply_pump import ReplyPump
from chorusline.chat.scheduler_actor import Submit
from chorusline.chat.store import (
    ACTIVE_LEAF,
    Message,
    MessageStatus,
    ParentRef,
    Role,
    Turn,
)
from chorusline.chat.stream import Chunk, TokenStream
from chorusline.chat.turn import TurnHandle, TurnRequest
from chorusline.protocols import ChoruslineError, InvalidRequest

if TYPE_CHECKING:
    pass


def finished_stream(request_id: str, text: str, finish_reason: str) -> TokenStream:
    stream = TokenStream(request_id)
    stream.push(Chunk(0, text, finish_reason=finish_reason))
    return stream


class ConversationActor(Actor):
    expected_errors = (ChoruslineError,)

    def __init__(self, conversation_id: str, deps: ChatDeps) -> None:
        self.conversation_id = conversation_id
        self.deps = deps
        self.turns = 0
        self.cache_hits = 0

    async def on_start(self) -> None:
        await self.deps.db(self.deps.store.mark_interrupted_drafts, self.conversation_id)

    async def receive(self, message: Any) -> Any:
        if isinstance(message, TurnRequest):
            return await self._turn(message)
        return await super().receive(message)

    async def _turn(self, request: TurnRequest) -> TurnHandle:
        deps, store = self.deps, self.deps.store
        if request.params.n != 1:
            raise InvalidRequest("a stored conversation takes one choice (n=1)", param="n")
        if request.regenerate_message_id is not None:
            return await self._regenerate(request, request.regenerate_message_id)
        verdict = deps.moderator.check_input(request.content)
        parent: ParentRef = ACTIVE_LEAF
        if request.edit_message_id is not None:
            # Editing a past message: the new one becomes its sibling (same parent, None
            # for the first message) and the old branch is kept.
            edited = await deps.db(store.get_message, request.user_id, self.conversation_id,
                                   request.edit_message_id)
            if edited.role is not Role.USER:
                raise InvalidRequest("only a user message can be edited", param="message_id")
            parent = edited.parent_message_id
        turn = await deps.db(
            store.begin_turn,
            request.user_id,
            self.conversation_id,
            request.idempotency_key,
            content=verdict.redacted_text,
            request_id=request.idempotency_key,
            parent=parent,
        )
        if turn.replayed:
            return await self._replay(turn)
        await record_verdict(self.deps, verdict, self.conversation_id, turn.user_message.id)
        if verdict.blocked:
            return await self._refuse(request, turn, verdict)
        handle = await self._generate(request, turn.user_message)
        await deps.db(
            store.record_turn_result,
            request.user_id,
            request.idempotency_key,
            assistant_message_id=handle.assistant_message_id,
        )
        return handle

    async def _regenerate(self, request: TurnRequest, message_id: str) -> TurnHandle:
        """A new reply to the same user message, as a sibling of the old reply."""
        old = await self.deps.db(
            self.deps.store.get_message, request.user_id, self.conversation_id, message_id
        )
        if old.role is not Role.ASSISTANT or old.parent_message_id is None:
            raise InvalidRequest("only an assistant reply can be regenerated",
                                 param="message_id")
        asked = await self.deps.db(
            self.deps.store.get_message, request.user_id, self.conversation_id,
            old.parent_message_id,
        )
        return await self._generate(request, asked)

    async def _history(self, request: TurnRequest, user_message: Message) -> list[dict[str, str]]:
        """The branch ending at ``user_message``, from the hot cache when it holds exactly
        the branch this message extends (a plain new turn), else from the store."""
        deps = self.deps
        cache = deps.hot_cache
        plain = request.edit_message_id is None and request.regenerate_message_id is None
        if cache is not None and not plain:
            await deps.db(cache.invalidate, self.conversation_id)
        elif cache is not None:
            cached = await deps.db(cache.get, self.conversation_id)
            if cached and cached[-1].get("id") == user_message.parent_message_id:
                self.cache_hits += 1
                return [*cached, as_entry(user_message)]
        branch = await deps.db(deps.store.get_active_branch, request.user_id,
                               self.conversation_id, leaf_message_id=user_message.id)
        return [
            as_entry(m) for m in branch
            if m.role is not Role.SYSTEM and m.status is MessageStatus.COMPLETE and m.content
        ]

    async def _generate(self, request: TurnRequest, user_message: Message) -> TurnHandle:
        """Draft a reply to ``user_message`` from the branch that ends there."""
        deps, store = self.deps, self.deps.store
        user_message_id = user_message.id
        conversation = await deps.db(store.get_conversation, request.user_id, self.conversation_id)
        entries = await self._history(request, user_message)
        history = [{"role": e["role"], "content": e["content"]} for e in entries]
        budget = request.params.max_tokens or deps.default_reply_budget
        assembled = assemble(
            history,
            template=deps.template,
            tokenizer=deps.tokenizer,
            context_window=deps.context_window,
            reply_budget=budget,
            system=system_text(conversation.system_prompt, request.custom_instructions),
        )
        draft = await deps.db(
            store.create_draft,
            request.user_id,
            self.conversation_id,
            parent=user_message_id,
            model=deps.model_name,
            request_id=request.idempotency_key,
        )
        scheduler = await self.context.system.registry.wait_for(SCHEDULER_KEY)
        params = request.params
        if params.max_tokens is None:
            params = replace(params, max_tokens=budget)
        engine_stream: TokenStream = await scheduler.ask(
            Submit(assembled.prompt_token_ids, params, request.priority, request.tenant)
        )
        # The client's stream carries the same memory bound as the engine's: a reader
        # that stops reading is cut off and the generation aborted.
        client = TokenStream(
            engine_stream.request_id,
            max_pending_chars=deps.max_pending_chars,
            on_close=lambda _rid: engine_stream.close(),
        )
        self.turns += 1
        started = trio.current_time()
        persisted = trio.Event()

        pump = ReplyPump(self.deps, self.conversation_id, request, engine_stream, client,
                         draft.id, started, persisted, entries)
        self.context.start_soon(pump.run, name=f"{self.context.path}:turn")
        return TurnHandle(
            persisted=persisted,
            request_id=engine_stream.request_id,
            stream=client,
            conversation_id=self.conversation_id,
            user_message_id=user_message_id,
            assistant_message_id=draft.id,
            prompt_tokens=len(assembled.prompt_token_ids),
        )

    async def _replay(self, turn: Turn) -> TurnHandle:
        reply = turn.assistant_message
        if reply is None or reply.is_open_draft:
            # The first attempt is still being answered: replaying a partial reply as
            # if finished would hand the client a truncated answer.
            raise InvalidRequest("the original request is still being answered; retry shortly")
        finish = reply.finish_reason or "stop"
        return TurnHandle(
            request_id=turn.idempotency_key,
            stream=finished_stream(turn.idempotency_key, reply.content, finish),
            conversation_id=self.conversation_id,
            user_message_id=turn.user_message.id,
            assistant_message_id=reply.id,
            replayed=True,
        )

    async def _refuse(self, request: TurnRequest, turn: Turn, verdict: Verdict) -> TurnHandle:
        text = verdict.text
        reply = await self.deps.db(
            self.deps.store.append_message,
            request.user_id,
            self.conversation_id,
            role=Role.ASSISTANT,
            content=text,
            parent=turn.user_message.id,
            status=MessageStatus.BLOCKED,
            model=self.deps.model_name,
            request_id=request.idempotency_key,
            finish_reason="content_filter",
        )
        await self.deps.db(
            self.deps.store.record_turn_result,
            request.user_id,
            request.idempotency_key,
            assistant_message_id=reply.id,
        )
        handle = TurnHandle(
            request_id=request.idempotency_key,
            stream=finished_stream(request.idempotency_key, text, "content_filter"),
            conversation_id=self.conversation_id,
            user_message_id=turn.user_message.id,
            assistant_message_id=reply.id,
        )
        handle.persisted.set()
        return handle

    def introspect(self) -> dict[str, Any]:
        return {"conversation_id": self.conversation_id, "turns": self.turns,
                "cache_hits": self.cache_hits}


def as_entry(message: Message) -> dict[str, str]:
    return {"id": message.id, "role": message.role.value, "content": message.content}
