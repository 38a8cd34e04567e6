"""The conversation actor: one per conversation id, owner of its message sequence.

A turn is set up inside ``receive`` (one at a time, so two tabs appending at once get
monotonic, gap-free sequence numbers and each sees the other's message in its context),
then streamed by a background task (``chat.reply``), so a long reply does not block the
next append.

Durability: the user message is committed (``begin_turn``) before any engine work, and
the reply's draft is made and linked to the idempotency key in one transaction
(``claim_reply``) before the first token. A retry with the same key therefore finds
exactly what exists: a finished reply is replayed; a reply that never started, or that
failed before the client was answered, is started anew, exactly once. A crash of this
actor cancels the reply task, whose ``finally`` still finalises the draft; if even that
is cut short, the next incarnation's ``on_start`` closes every open draft as interrupted.
"""

from __future__ import annotations

import contextlib
from functools import partial
from typing import Any

import trio

from chorusline.actors import Actor, Trace
from chorusline.chat.context import Assembled, system_text
from chorusline.chat.deps import ChatDeps
from chorusline.chat.records import StoredRecord
from chorusline.chat.reply import record_verdict
from chorusline.chat.runner import (
    admit,
    constrain,
    generation,
    moderate_input,
    prepare,
)
from chorusline.chat.served import ServedModel
from chorusline.chat.stored_tools import branch_turns, moderated_results, with_tools
from chorusline.chat.stream import Chunk, TokenStream
from chorusline.chat.titles import auto_title
from chorusline.chat.tool_calls import rendered
from chorusline.chat.turn import Turn, TurnHandle
from chorusline.protocols import (
    ChoruslineError,
    GenerationRequest,
    InvalidRequest,
    SamplingParams,
    ServiceUnavailable,
)
from chorusline.store import ACTIVE_LEAF, Message, MessageStatus, ParentRef, Role


def finished_stream(request_id: str, text: str, finish_reason: str,
                    prompt_tokens: int = 0, completion_tokens: int = 0) -> TokenStream:
    stream = TokenStream(request_id)
    stream.push(Chunk(0, text, finish_reason=finish_reason, prompt_tokens=prompt_tokens,
                      completion_tokens=completion_tokens))
    return stream


class ConversationActor(Actor):
    expected_errors = (ChoruslineError,)

    def __init__(self, conversation_id: str, deps: ChatDeps) -> None:
        self.conversation_id = conversation_id
        self.deps = deps
        self.turns = 0
        self.cache_hits = 0
        #: Drafts this incarnation is streaming into (a replay of one must wait).
        self.live: set[str] = set()

    async def on_start(self) -> None:
        await self.deps.db(self.deps.store.mark_interrupted_drafts, self.conversation_id)

    async def receive(self, message: Any) -> Any:
        if isinstance(message, Turn):
            return await self._turn(message)
        return await super().receive(message)

    async def _turn(self, turn: Turn) -> TurnHandle:
        trace = self.context.system.recorder.spans_for(turn.request_id)
        with trace.span("conversation", self.context.path):
            return await self._traced_turn(turn, trace)

    async def _traced_turn(self, turn: Turn, trace: Trace) -> TurnHandle:
        request, user_id = turn.request, turn.principal.user_id
        deps, store = self.deps, self.deps.store
        if request.params.n != 1:
            raise InvalidRequest("a stored conversation takes one choice (n=1)", param="n")
        if request.regenerate_message_id is not None:
            return await self._regenerate(turn, request.regenerate_message_id)
        key = request.idempotency_key or turn.request_id
        if request.tool_results:
            return await self._tool_turn(turn, key)
        verdict = await moderate_input(self.context, deps, request.content or "",
                                       turn.request_id)
        parent: ParentRef = ACTIVE_LEAF
        if request.edit_message_id is not None:
            # Editing a past message: the new one becomes its sibling (same parent, None
            # for the first message) and the old branch is kept.
            edited = await deps.db(store.get_message, user_id, self.conversation_id,
                                   request.edit_message_id)
            if edited.role is not Role.USER:
                raise InvalidRequest("only a user message can be edited", param="message_id")
            parent = edited.parent_message_id
        with trace.span("begin_turn", self.context.path):
            begun = await deps.db(store.begin_turn, user_id, self.conversation_id, key,
                                  content=verdict.redacted_text, request_id=turn.request_id,
                                  parent=parent)
        user_message = begun.user_message
        request_id = user_message.request_id or turn.request_id  # a replay keeps its id
        if begun.replayed:
            reply = begun.assistant_message
            if reply is not None and reply.is_open_draft:
                # Still streaming here, or in another process: a replay now would hand
                # the client a truncated answer as if finished.
                raise ServiceUnavailable("the original request is still being answered; "
                                         "retry shortly")
            if reply is not None and not reply.failed_unseen:
                return self._replay(request_id, user_message, reply)
        else:
            await record_verdict(deps, verdict, self.conversation_id, user_message.id)
        if verdict.blocked:
            return await self._refuse(turn, key, user_message, verdict.text, request_id)
        return await self._answer(turn, key, user_message, request_id)

    async def _tool_turn(self, turn: Turn, key: str) -> TurnHandle:
        """The client's results for the last reply's calls, then the reply to them."""
        deps, user_id = self.deps, turn.principal.user_id
        results = await moderated_results(deps, turn.request.tool_results)
        begun = await deps.db(deps.store.begin_tool_turn, user_id, self.conversation_id, key,
                              results=results, request_id=turn.request_id)
        last = begun.user_message
        request_id = last.request_id or turn.request_id
        reply = begun.assistant_message
        if begun.replayed and reply is not None and reply.is_open_draft:
            raise ServiceUnavailable("the original request is still being answered; "
                                     "retry shortly")
        if begun.replayed and reply is not None and not reply.failed_unseen:
            return self._replay(request_id, last, reply)
        return await self._answer(turn, key, last, request_id)

    async def _answer(self, turn: Turn, key: str, user_message: Message,
                      request_id: str) -> TurnHandle:
        """Claim the reply to ``user_message`` (once per key) and stream it. The prompt
        is prepared for the first candidate model before the claim, so a prompt the
        model cannot take is refused with nothing claimed."""
        deps, request, path = self.deps, turn.request, self.context.path
        recorder = self.context.system.recorder
        recorder.rename(turn.request_id, request_id)
        trace = recorder.spans_for(request_id)
        first = deps.models[turn.models[0]]
        with trace.span("history", path):
            history = await self._history(turn, user_message)
            system = with_tools(await self._system(turn), request)
        with trace.span("prompt", path):
            prepared = await self._prompt(first, turn, history, system)
        with trace.span("draft", path):
            draft, made = await deps.db(deps.store.claim_reply, turn.principal.user_id, key,
                                        model=first.name, request_id=request_id)
        if not made:
            if draft.is_open_draft:  # another process claimed it a moment ago
                raise ServiceUnavailable("the original request is still being answered; "
                                         "retry shortly")
            return self._replay(request_id, user_message, draft)
        return await self._start(turn, request_id, user_message, draft, history, system,
                                 prepared)

    async def _regenerate(self, turn: Turn, message_id: str) -> TurnHandle:
        """A new reply to the same user message, as a sibling of the old reply."""
        deps, user_id = self.deps, turn.principal.user_id
        old = await deps.db(deps.store.get_message, user_id, self.conversation_id, message_id)
        if old.role is not Role.ASSISTANT or old.parent_message_id is None:
            raise InvalidRequest("only an assistant reply can be regenerated",
                                 param="message_id")
        asked = await deps.db(deps.store.get_message, user_id, self.conversation_id,
                              old.parent_message_id)
        history = await self._history(turn, asked)
        system = with_tools(await self._system(turn), turn.request)
        first = deps.models[turn.models[0]]
        prepared = await self._prompt(first, turn, history, system)
        draft = await deps.db(deps.store.create_draft, user_id, self.conversation_id,
                              parent=asked.id, model=first.name,
                              request_id=turn.request_id)
        return await self._start(turn, turn.request_id, asked, draft, history, system,
                                 prepared)

    async def _prompt(self, model: ServedModel, turn: Turn, history: list[dict[str, str]],
                      system: str | None) -> tuple[SamplingParams, Assembled]:
        params = await constrain(self.deps, model, turn.request.params, turn.request)
        return params, await prepare(self.deps, model, history, system, params)

    async def _system(self, turn: Turn) -> str | None:
        conversation = await self.deps.db(self.deps.store.get_conversation,
                                          turn.principal.user_id, self.conversation_id)
        return system_text(conversation.system_prompt, turn.custom_instructions)

    async def _history(self, turn: Turn, user_message: Message) -> list[dict[str, str]]:
        """The branch ending at ``user_message``, from the hot cache when it holds exactly
        the branch this message extends (a plain new turn), else from the store."""
        deps, request = self.deps, turn.request
        cache = deps.hot_cache
        plain = request.edit_message_id is None and request.regenerate_message_id is None
        if request.tool_results:
            pass  # results extend the branch by several messages: read it from the store
        elif cache is not None and not plain:
            await deps.db(cache.invalidate, self.conversation_id)
        elif cache is not None:
            cached = await deps.db(cache.get, self.conversation_id)
            if cached and cached[-1].get("id") == user_message.parent_message_id:
                self.cache_hits += 1
                return [*cached, as_entry(user_message)]
        branch = await deps.db(deps.store.get_active_branch, turn.principal.user_id,
                               self.conversation_id, leaf_message_id=user_message.id)
        return branch_turns(branch)

    async def _start(self, turn: Turn, request_id: str, user_message: Message,
                     draft: Message, entries: list[dict[str, str]], system: str | None,
                     prepared: tuple[SamplingParams, Assembled]) -> TurnHandle:
        """Stream a reply into ``draft`` from the first candidate model that admits it
        (``prepared`` is the first's prompt; a fallback's is prepared here); if none can
        start, close the draft empty (so a retry starts it anew) and let the error reach
        the caller."""
        deps = self.deps
        calls = bool(turn.request.tools) and turn.request.tool_choice.mode != "none"
        first = turn.models[0]

        async def build(model: ServedModel) -> GenerationRequest:
            params, prompt = (prepared if model.name == first
                              else await self._prompt(model, turn, entries, system))
            return generation(deps, model, turn.principal, request_id, prompt, params)

        def record(model: ServedModel) -> StoredRecord:
            return StoredRecord(deps, turn.principal, request_id, model.name,
                                self.conversation_id, draft.id, entries,
                                turn.request.end_user, tool_calls=calls)

        try:
            admitted = await admit(self.context, deps, turn.models, build, record)
        except BaseException:
            # If this fails too the draft stays open; the next incarnation's on_start
            # closes it.
            with trio.CancelScope(shield=True), contextlib.suppress(ChoruslineError):
                await deps.db(deps.store.finalize_message, self.conversation_id, draft.id,
                              status=MessageStatus.INCOMPLETE, finish_reason="error",
                              content="")
            raise
        client, persisted = admitted.stream, admitted.persisted
        self.turns += 1
        if deps.auto_titles and user_message.parent_message_id is None:
            self.context.start_soon(partial(
                auto_title, self.context, deps, turn.principal, self.conversation_id,
                user_message.content, persisted), name=f"{self.context.path}:title")
        self.live.add(draft.id)
        client.add_done_callback(lambda _stream: self.live.discard(draft.id))
        return TurnHandle(request_id=request_id, stream=client,
                          conversation_id=self.conversation_id,
                          user_message_id=user_message.id, assistant_message_id=draft.id,
                          prompt_tokens=len(admitted.request.prompt_token_ids),
                          persisted=persisted, model=admitted.model.name,
                          fallback_from=admitted.fallback_from)

    def _replay(self, request_id: str, user_message: Message, reply: Message) -> TurnHandle:
        """The stored reply, as it ended (a truncated one says so in ``finish_reason``)."""
        finish = reply.finish_reason or "stop"
        return TurnHandle(
            request_id=request_id,
            stream=finished_stream(request_id, rendered(reply.content, reply.tool_calls),
                                   finish,
                                   reply.prompt_tokens or 0, reply.completion_tokens or 0),
            conversation_id=self.conversation_id, user_message_id=user_message.id,
            assistant_message_id=reply.id, replayed=True,
            prompt_tokens=reply.prompt_tokens or 0, model=reply.model or "")

    async def _refuse(self, turn: Turn, key: str, user_message: Message, text: str,
                      request_id: str) -> TurnHandle:
        deps, user_id = self.deps, turn.principal.user_id
        reply = await deps.db(deps.store.append_message, user_id, self.conversation_id,
                              role=Role.ASSISTANT, content=text, parent=user_message.id,
                              status=MessageStatus.BLOCKED, model=turn.models[0],
                              request_id=request_id, finish_reason="content_filter")
        await deps.db(deps.store.record_turn_result, user_id, key,
                      assistant_message_id=reply.id)
        handle = TurnHandle(request_id=request_id,
                            stream=finished_stream(request_id, text, "content_filter"),
                            conversation_id=self.conversation_id,
                            user_message_id=user_message.id, assistant_message_id=reply.id,
                            model=turn.models[0])
        handle.persisted.set()
        return handle

    def introspect(self) -> dict[str, Any]:
        return {"conversation_id": self.conversation_id, "turns": self.turns,
                "cache_hits": self.cache_hits, "streaming": len(self.live)}


def as_entry(message: Message) -> dict[str, str]:
    return {"id": message.id, "role": message.role.value, "content": message.content}
