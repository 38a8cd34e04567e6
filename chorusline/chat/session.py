"""The session actor: one per authenticated API key while it is active.

It is where a turn meets its limits: the key's bucket is asked before any engine work
(refusals carry the ``Retry-After`` and ``x-ratelimit-*`` figures), the charge is settled
with the real usage when the turn's stream ends, and the stream slot is always released.
Stored conversations go to their ConversationActor; stateless requests (plain
``/v1/chat/completions``) are assembled here, go straight to the scheduler, and their
reply streams back through this actor's output moderation (``moderated_relay``).
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from chorusline.actors import Actor, ActorRef, ActorSpec
from chorusline.chat.context import assemble
from chorusline.chat.conversation import ConversationActor
from chorusline.chat.deps import SCHEDULER_KEY, ChatDeps
from chorusline.chat.moderated_relay import moderated_stream, relay_moderated
from chorusline.chat.ratelimit import (
    Acquire,
    BucketActor,
    RedisBucketActor,
    Release,
    Settle,
    Tier,
    estimate_tokens,
)
from chorusline.chat.scheduler_actor import Submit
from chorusline.chat.stream import TokenStream
from chorusline.chat.turn import TurnHandle, TurnRequest
from chorusline.protocols import ChoruslineError, InvalidRequest, RateLimited
from chorusline.runtime import SamplingParams
from chorusline.supervisors import ChildSpec, Restart


@dataclass(frozen=True)
class Principal:
    user_id: str
    api_key_id: str
    tier: Tier
    admin: bool = False


@dataclass(frozen=True)
class ChatRequest:
    """One chat turn. With ``conversation_id`` the turn is stored and ``content`` is the
    user's new message; without it ``messages`` is the whole (stateless) conversation."""

    params: SamplingParams = field(default_factory=SamplingParams)
    conversation_id: str | None = None
    content: str | None = None
    messages: tuple[tuple[str, str], ...] = ()
    idempotency_key: str | None = None
    custom_instructions: str | None = None
    edit_message_id: str | None = None
    regenerate_message_id: str | None = None


class SessionActor(Actor):
    expected_errors = (ChoruslineError,)

    def __init__(
        self, principal: Principal, deps: ChatDeps, buckets: ActorRef, conversations: ActorRef
    ) -> None:
        self.principal = principal
        self.deps = deps
        self.buckets = buckets
        self.conversations = conversations
        self.turns = 0
        self._ids = itertools.count(1)

    async def receive(self, message: Any) -> Any:
        if isinstance(message, ChatRequest):
            return await self._chat(message)
        return await super().receive(message)

    async def _bucket(self) -> ActorRef:
        tier, key_id = self.principal.tier, self.principal.api_key_id
        shared = self.deps.redis_bucket
        factory: Callable[[], Actor] = (
            (lambda: BucketActor(tier)) if shared is None
            else (lambda: RedisBucketActor(shared, key_id, tier))
        )
        spec = ActorSpec(factory, name=f"bucket-{key_id}", idle_timeout=900.0)
        key = ("bucket", self.principal.api_key_id)
        return await self.context.system.registry.get_or_spawn(key, spec, under=self.buckets)

    async def _chat(self, request: ChatRequest) -> TurnHandle:
        request_id = request.idempotency_key or f"turn-{uuid.uuid4().hex}"
        bucket = await self._bucket()
        # A cheap over-estimate (about 3 characters a token); settled with real usage.
        chars = sum(len(c) for _, c in request.messages) + len(request.content or "")
        prompt_estimate = chars // 3
        decision = await bucket.ask(
            Acquire(request_id, estimate_tokens(prompt_estimate, request.params.max_tokens))
        )
        if not decision.allowed:
            raise RateLimited(
                f"rate limit reached for {decision.reason} on tier {decision.tier}",
                retry_after=decision.retry_after,
                headers=decision.headers(),
            )
        try:
            handle = await self._route(request, request_id)
        except BaseException:
            bucket.tell(Release(request_id))
            raise
        handle.rate_headers = decision.headers()
        self.turns += 1

        def settle(stream: TokenStream) -> None:
            bucket.tell(Settle(request_id, stream.prompt_tokens + stream.completion_tokens))
            bucket.tell(Release(request_id))

        handle.stream.add_done_callback(settle)
        return handle

    async def _route(self, request: ChatRequest, request_id: str) -> TurnHandle:
        if request.conversation_id is not None:
            if not request.content and request.regenerate_message_id is None:
                raise InvalidRequest("the message is empty", param="content")
            return await self._stored(request, request_id)
        return await self._stateless(request)

    async def _stored(self, request: ChatRequest, request_id: str) -> TurnHandle:
        conversation_id = request.conversation_id
        assert conversation_id is not None
        # Ownership is checked before an actor is spawned for someone else's id.
        await self.deps.db(self.deps.store.get_conversation, self.principal.user_id,
                           conversation_id)
        deps = self.deps
        instructions = request.custom_instructions
        if instructions is None:
            user = await deps.db(deps.store.get_user, self.principal.user_id)
            instructions = user.custom_instructions
        spec = ChildSpec(
            factory=lambda: ConversationActor(conversation_id, deps),
            name=f"conv-{conversation_id}",
            restart=Restart.TRANSIENT,
            idle_timeout=deps.conversation_idle_timeout,
        )
        conversation = await self.context.system.registry.get_or_spawn(
            ("conversation", conversation_id), spec, under=self.conversations
        )
        handle: TurnHandle = await conversation.ask(
            TurnRequest(
                user_id=self.principal.user_id,
                content=request.content or "",
                idempotency_key=request_id,
                params=request.params,
                priority=self.principal.tier.priority,
                tenant=self.principal.user_id,
                api_key_id=self.principal.api_key_id,
                custom_instructions=instructions,
                edit_message_id=request.edit_message_id,
                regenerate_message_id=request.regenerate_message_id,
            ),
            timeout=60.0,
        )
        return handle

    async def _stateless(self, request: ChatRequest) -> TurnHandle:
        if not request.messages:
            raise InvalidRequest("messages must not be empty", param="messages")
        deps = self.deps
        for role, content in request.messages:
            if role == "user" and deps.moderator.check_input(content).blocked:
                raise InvalidRequest("the request was refused by content policy",
                                     param="messages")
        budget = request.params.max_tokens or deps.default_reply_budget
        turns = [{"role": r, "content": c} for r, c in request.messages if r != "system"]
        system = "\n\n".join(c for r, c in request.messages if r == "system") or None
        assembled = assemble(turns, template=deps.template, tokenizer=deps.tokenizer,
                             context_window=deps.context_window, reply_budget=budget,
                             system=system)
        params = request.params
        if params.max_tokens is None:
            params = replace(params, max_tokens=budget)
        scheduler = await self.context.system.registry.wait_for(SCHEDULER_KEY)
        engine: TokenStream = await scheduler.ask(
            Submit(assembled.prompt_token_ids, params, self.principal.tier.priority,
                   self.principal.user_id)
        )
        # The reply is moderated as it streams, as a stored conversation's is.
        stream = moderated_stream(engine)
        self.context.start_soon(partial(relay_moderated, deps, engine, stream),
                                name=f"{self.context.path}:reply")
        return TurnHandle(request_id=engine.request_id, stream=stream,
                          prompt_tokens=len(assembled.prompt_token_ids))

    def introspect(self) -> dict[str, Any]:
        return {"user_id": self.principal.user_id, "tier": self.principal.tier.name,
                "turns": self.turns}
