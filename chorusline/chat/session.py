"""The session actor: one per authenticated API key while it is active.

It is where a turn meets its limits: the key's bucket is asked before any engine work
(refusals carry the ``Retry-After`` and ``x-ratelimit-*`` figures), the charge is settled
with the real usage when the turn's stream ends, and the stream slot is always released.
The lease is the turn's server-minted request id, never an id the client chose, so a
client cannot make two turns share one lease. Then it routes: a stored turn to its
ConversationActor, a stateless one (no history to load, nothing to keep but usage)
straight through the turn runner, hosted here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chorusline.actors import Actor, ActorRef, ActorSpec, Trace
from chorusline.chat.bucket import Acquire, BucketActor, RedisBucketActor, Release, Settle
from chorusline.chat.context import Assembled
from chorusline.chat.conversation import ConversationActor
from chorusline.chat.deps import ChatDeps
from chorusline.chat.embeddings import EmbedCharge, EmbedGrant
from chorusline.chat.principal import Principal
from chorusline.chat.records import UsageRecord
from chorusline.chat.runner import (
    admit,
    constrain,
    generation,
    moderate_input,
    prepare,
    prepare_raw,
)
from chorusline.chat.served import ServedModel
from chorusline.chat.stream import TokenStream
from chorusline.chat.tools import template_turns, tools_prompt
from chorusline.chat.turn import ChatRequest, Turn, TurnHandle
from chorusline.protocols import (
    ChoruslineError,
    GenerationRequest,
    InvalidRequest,
    RateLimited,
    SamplingParams,
)
from chorusline.ratelimit import estimate_tokens
from chorusline.supervisors import ChildSpec, Restart


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

    async def receive(self, message: Any) -> Any:
        if isinstance(message, Turn):
            return await self._turn(message)
        if isinstance(message, EmbedCharge):
            return await self._embed_charge(message)
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

    async def _turn(self, turn: Turn) -> TurnHandle:
        trace = self.context.system.recorder.spans_for(turn.request_id)
        with trace.span("session", self.context.path):
            return await self._admitted(turn, trace)

    async def _admitted(self, turn: Turn, trace: Trace) -> TurnHandle:
        request, lease = turn.request, turn.request_id
        bucket = await self._bucket()
        # A cheap over-estimate (about 3 characters a token); settled with real usage.
        chars = (sum(len(m.content) for m in (*request.messages, *request.tool_results))
                 + len(request.content or "")
                 + (len(request.prompt) if request.prompt is not None else 0))
        with trace.span("bucket", bucket.path) as span:
            decision = await bucket.ask(
                Acquire(lease, estimate_tokens(chars // 3, request.params.max_tokens)))
            span.detail["allowed"] = decision.allowed
        if not decision.allowed:
            self.context.system.recorder.record(
                "rate_limited", bucket.path, tenant=self.principal.user_id,
                tier=decision.tier, reason=decision.reason,
                retry_after=decision.retry_after)
            raise RateLimited(
                f"rate limit reached for {decision.reason} on tier {decision.tier}",
                retry_after=decision.retry_after,
                headers=decision.headers(),
            )
        try:
            if request.conversation_id is not None:
                handle = await self._stored(turn)
            else:
                handle = await self._stateless(turn)
        except BaseException:
            bucket.tell(Release(lease))
            raise
        handle.rate_headers = decision.headers()
        self.turns += 1

        def settle(stream: TokenStream) -> None:
            bucket.tell(Settle(lease, stream.prompt_tokens + stream.completion_tokens))
            bucket.tell(Release(lease))

        handle.stream.add_done_callback(settle)
        return handle

    async def _stored(self, turn: Turn) -> TurnHandle:
        request, deps = turn.request, self.deps
        conversation_id = request.conversation_id
        assert conversation_id is not None
        if request.tool_results:
            if request.content or request.edit_message_id or request.regenerate_message_id:
                raise InvalidRequest("tool results are a turn of their own: no content, "
                                     "edit or regenerate with them", param="tool_results")
        elif not request.content and request.regenerate_message_id is None:
            raise InvalidRequest("the message is empty", param="content")
        # Ownership is checked before an actor is spawned for someone else's id.
        await deps.db(deps.store.get_conversation, self.principal.user_id, conversation_id)
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
        stored = Turn(turn.principal, request, turn.request_id, turn.models, instructions)
        handle: TurnHandle = await conversation.ask(stored, timeout=60.0)
        return handle

    async def _stateless(self, turn: Turn) -> TurnHandle:
        """A turn with nothing stored: moderated once, then prepared for (and admitted
        by) the first candidate model that takes it (``runner.admit``)."""
        request, deps = turn.request, self.deps
        first = deps.models[turn.models[0]]
        if request.prompt is not None:
            text = request.prompt if isinstance(request.prompt, str) else "".join(
                first.tokenizer.token_bytes(t).decode("utf-8", "replace")
                for t in request.prompt if 0 <= t < first.vocab_size)
            await self._moderate(text, "prompt", turn.request_id)
        else:
            if not request.messages:
                raise InvalidRequest("messages must not be empty", param="messages")
            for message in request.messages:
                if message.role in ("user", "tool"):
                    await self._moderate(message.content, "messages", turn.request_id)

        async def build(model: ServedModel) -> GenerationRequest:
            params, prompt = await self._prompt(model, request, turn.request_id)
            return generation(deps, model, turn.principal, turn.request_id, prompt, params)

        admitted = await admit(
            self.context, deps, turn.models, build,
            lambda model: UsageRecord(deps, turn.principal, turn.request_id, model.name,
                                      request.end_user))
        return TurnHandle(request_id=turn.request_id, stream=admitted.stream,
                          prompt_tokens=len(admitted.request.prompt_token_ids),
                          persisted=admitted.persisted, model=admitted.model.name,
                          fallback_from=admitted.fallback_from)

    async def _prompt(self, model: ServedModel, request: ChatRequest,
                      request_id: str) -> tuple[SamplingParams, Assembled]:
        """The stateless prompt for ``model``: a raw completion's tokens, or the caller's
        messages (tool calls and results in the model's tool format), system messages
        and the tools' description first."""
        params = await constrain(self.deps, model, request.params, request)
        trace = self.context.system.recorder.spans_for(request_id)
        if request.prompt is not None:
            with trace.span("prompt", self.context.path):
                return params, await prepare_raw(self.deps, model, request.prompt, params)
        systems = [m.content for m in request.messages if m.role == "system"]
        if request.tools and request.tool_choice.mode != "none":
            systems.append(tools_prompt(request.tools))
        with trace.span("prompt", self.context.path):
            prompt = await prepare(self.deps, model, template_turns(request.messages),
                                   "\n\n".join(systems) or None, params,
                                   truncate=request.truncate)
        return params, prompt

    async def _moderate(self, text: str, param: str, request_id: str) -> None:
        if (await moderate_input(self.context, self.deps, text, request_id)).blocked:
            raise InvalidRequest("the request was refused by content policy", param=param)

    def introspect(self) -> dict[str, Any]:
        return {"user_id": self.principal.user_id, "tier": self.principal.tier.name,
                "turns": self.turns}

    async def _embed_charge(self, charge: EmbedCharge) -> EmbedGrant:
        """Admit an embedding call through the key's bucket, as a turn is admitted: one
        request and its exact input tokens (nothing to settle later, so no estimate).
        The grant's ``release`` gives the slot back once the vectors are computed; the
        forward itself runs in the embedder, so this session is never held up by it."""
        bucket = await self._bucket()
        lease, tokens = charge.request_id, charge.tokens
        decision = await bucket.ask(Acquire(lease, tokens))
        if not decision.allowed:
            raise RateLimited(
                f"rate limit reached for {decision.reason} on tier {decision.tier}",
                retry_after=decision.retry_after,
                headers=decision.headers(),
            )

        def release() -> None:
            bucket.tell(Settle(lease, tokens))
            bucket.tell(Release(lease))

        return EmbedGrant(decision.headers(), release)
