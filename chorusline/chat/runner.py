"""The one turn runner: prepare a prompt, hand it to the engine, start its reply.

Both actors that own turns run them through here — the conversation actor (a stored
turn: history from the store, a draft to persist) and the session actor (a stateless
turn: the caller's messages, only usage to record) — so budgeting, assembling, the one
``GenerationRequest``, admission and the reply task are written once.

A turn carries its candidate models (``Turn.models``: the one asked for, then its
fallbacks, from ``chat.router``). ``admit`` tries them in order: a model whose engine is
restarting (no driver or no GPU worker registered) or refuses admission (``Overloaded``)
hands the turn to the next, with the prompt prepared again for that model's tokenizer and
template. That all happens before the first token exists, so a reply always comes from
one model; once admitted, a turn never changes model.

Preparing a prompt is CPU work (templating, tokenising, moderating long inputs), so a
large one runs on a worker thread: one large request must not hold the event loop while
other streams wait for their tokens. A small one (up to ``INLINE_CHARS`` characters)
runs inline: it costs less than the hop. The work itself is bounded by
``context.assemble``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import TypeVar

import trio

from chorusline.actors import ActorContext
from chorusline.chat.context import Assembled, assemble, fit_prompt, too_long
from chorusline.chat.deps import ChatDeps
from chorusline.chat.principal import Principal
from chorusline.chat.reply import Reply, ReplyRecord, blocked_categories
from chorusline.chat.router import ROUTER_KEY, Fellback
from chorusline.chat.served import ServedModel
from chorusline.chat.stream import TokenStream
from chorusline.chat.tools import tool_grammar
from chorusline.chat.turn import ChatRequest
from chorusline.moderation import Verdict
from chorusline.protocols import (
    GenerationRequest,
    Grammar,
    InvalidGrammar,
    Overloaded,
    SamplingParams,
    ServiceUnavailable,
    ToolChoice,
    check_prompt_tokens,
)

T = TypeVar("T")

#: Inputs up to this many characters are prepared on the event loop: they cost well
#: under a millisecond, less than the thread hop and the queue for a worker thread would.
INLINE_CHARS = 4096


async def off_loop(deps: ChatDeps, fn: Callable[[], T], chars: int) -> T:
    """Run request preparation over ``chars`` characters of input: on a worker thread
    when it is large enough to hold the event loop up (see the module docstring)."""
    if chars <= INLINE_CHARS:
        return fn()
    return await trio.to_thread.run_sync(fn, limiter=deps.cpu_limiter)


async def check_input(deps: ChatDeps, text: str) -> Verdict:
    return await off_loop(deps, partial(deps.moderator.check_input, text), len(text))


async def moderate_input(context: ActorContext, deps: ChatDeps, text: str,
                         request_id: str) -> Verdict:
    """``check_input`` as a span of the turn's trace; a block goes on the timeline."""
    recorder = context.system.recorder
    with recorder.spans_for(request_id).span("moderation", context.path):
        verdict = await check_input(deps, text)
    if verdict.blocked:
        recorder.record("moderation_blocked", context.path, request_id=request_id,
                        where="input", categories=blocked_categories(verdict))
    return verdict


def with_budget(deps: ChatDeps, model: ServedModel, params: SamplingParams) -> SamplingParams:
    """The reply budget made explicit, so the engine and the context agree on it.

    A request that names no ``max_tokens`` gets the default, but never more than half
    the context window: on an engine whose KV cache allows a small window, a default
    larger than the window would refuse every such turn, and the caller asked for
    nothing that cannot fit."""
    if params.max_tokens is None:
        default = min(deps.default_reply_budget, max(1, model.context_window // 2))
        return replace(params, max_tokens=default)
    return params


async def prepare(deps: ChatDeps, model: ServedModel, turns: Sequence[dict[str, str]],
                  system: str | None, params: SamplingParams, *,
                  truncate: bool = True) -> Assembled:
    budget = with_budget(deps, model, params).max_tokens
    assert budget is not None
    model.require("chat")
    assert model.template is not None
    chars = sum(len(turn["content"]) for turn in turns) + len(system or "")
    return await off_loop(deps, partial(
        assemble, turns, template=model.template, tokenizer=model.tokenizer,
        context_window=model.context_window, reply_budget=budget, system=system,
        max_token_bytes=model.max_token_bytes, truncate=truncate), chars)


async def prepare_raw(deps: ChatDeps, model: ServedModel, prompt: str | tuple[int, ...],
                      params: SamplingParams) -> Assembled:
    """A legacy-completions prompt: its tokens as they are (special-token text is text),
    after the model's ``prompt_prefix`` for a text prompt (Gemma's BOS, as its reference
    tokenizer adds); a token-id prompt is taken exactly as sent."""
    budget = with_budget(deps, model, params).max_tokens
    assert budget is not None
    window = model.context_window
    if isinstance(prompt, str):
        if len(prompt) > (window - budget) * model.max_token_bytes:
            raise too_long(f"more than {window - budget}", window, budget, "prompt")
        encoded = await off_loop(deps, partial(model.tokenizer.encode, prompt), len(prompt))
        ids: Sequence[int] = [*model.prompt_prefix, *encoded]
    else:
        check_prompt_tokens(prompt, model.vocab_size)
        ids = prompt
    return fit_prompt(ids, context_window=window, reply_budget=budget)


async def constrain(deps: ChatDeps, model: ServedModel, params: SamplingParams,
                    request: ChatRequest) -> SamplingParams:
    """The turn's parameters with its tool grammar (if it offers tools), compiled
    (cached) before any engine work: a schema the grammar engine cannot take is a 400
    naming the feature, not a failed stream. ``response_format``'s grammar was checked
    at the door (``ChatService.chat``)."""
    if request.tools and request.tool_choice.mode != "none":
        grammar = tool_grammar(request.tools, request.tool_choice,
                               request.parallel_tool_calls)
        if grammar is not None:
            try:
                await check_grammar(deps, model, grammar, "tools")
            except InvalidGrammar:
                await _blame_tool(deps, model, request)
                raise
            params = replace(params, grammar=grammar)
    return params


async def _blame_tool(deps: ChatDeps, model: ServedModel, request: ChatRequest) -> None:
    """Raise the 400 for the first tool whose schema alone does not compile, naming it
    (``tools[2].function.parameters``); return if none does alone."""
    for i, tool in enumerate(request.tools):
        alone = tool_grammar([tool], ToolChoice("required"), False)
        assert alone is not None
        await check_grammar(deps, model, alone, f"tools[{i}].function.parameters")


async def check_grammar(deps: ChatDeps, model: ServedModel, grammar: Grammar,
                        param: str) -> None:
    """Compile ``grammar`` (cached) or raise ``InvalidGrammar``: off the loop when its
    source is long enough for compiling to hold other streams up."""
    await off_loop(deps, partial(model.grammars.check, grammar, param), len(grammar.source))


def generation(deps: ChatDeps, model: ServedModel, principal: Principal, request_id: str,
               prompt: Assembled, params: SamplingParams) -> GenerationRequest:
    """The one request the engine sees, minted from the turn."""
    return GenerationRequest(request_id, prompt.prompt_token_ids,
                             with_budget(deps, model, params), principal.tier.priority,
                             principal.user_id,
                             deadline=time.monotonic() + deps.max_turn_seconds)


@dataclass
class Admitted:
    """A turn admitted by one model's engine: the client's stream, the event set once the
    reply is recorded, the model answering, and the model it fell back from (if any)."""

    stream: TokenStream
    persisted: trio.Event
    model: ServedModel
    request: GenerationRequest
    fallback_from: str | None = None


#: Builds a turn's engine request for one candidate model (prompt prepared for it).
Build = Callable[[ServedModel], Awaitable[GenerationRequest]]


async def admit(context: ActorContext, deps: ChatDeps, models: Sequence[str], build: Build,
                record: Callable[[ServedModel], ReplyRecord]) -> Admitted:
    """Admit the turn on the first of ``models`` that takes it (see the module docstring).

    A model is passed over when its driver or its GPU worker is not registered (the
    worker is restarting, or the whole subtree is, after giving up) or when admission
    refuses (``Overloaded``), as long as another candidate remains; the last candidate
    waits for its driver and raises what it raises, so with no fallback a turn waits out
    a worker restart (its driver queues it) and an overload stays the documented 503.
    """
    candidates = [deps.models[name] for name in models]
    registry = context.system.registry
    for i, model in enumerate(candidates):
        last = i == len(candidates) - 1
        down = (registry.lookup(model.driver_key) is None
                or registry.lookup(model.worker_key) is None)
        if down and not last:
            continue
        request = await build(model)
        try:
            stream, persisted = await start_reply(context, deps, model, request,
                                                  record(model))
        except (Overloaded, ServiceUnavailable):
            if last:
                raise
            continue
        fallback = None if model is candidates[0] else candidates[0].name
        if fallback is not None:
            context.system.recorder.record("model_fallback", context.path,
                                           request_id=request.request_id,
                                           from_model=fallback, to_model=model.name)
            router = registry.lookup(ROUTER_KEY)
            if router is not None:
                router.tell(Fellback(fallback, model.name))
        return Admitted(stream, persisted, model, request, fallback)
    raise AssertionError("admit needs at least one candidate model")


async def start_reply(context: ActorContext, deps: ChatDeps, model: ServedModel,
                      request: GenerationRequest,
                      record: ReplyRecord) -> tuple[TokenStream, trio.Event]:
    """Admit ``request`` on ``model``'s engine and start its reply as a task of
    ``context``'s actor.

    Returns the client's stream (closing it aborts the generation) and the event set once
    the reply is recorded. Raises ``Overloaded`` when admission refuses it.
    """
    driver = await context.system.registry.wait_for(model.driver_key)
    engine: TokenStream = await driver.ask(request)
    # The client's stream carries the same memory bound as the engine's: a reader that
    # stops reading is cut off and the generation aborted.
    client = TokenStream(request.request_id, choices=engine.choices,
                         max_pending_chars=deps.max_pending_chars,
                         on_close=lambda _request_id: engine.close())
    reply = Reply(deps, engine, client, record, started=trio.current_time(),
                  recorder=context.system.recorder, path=context.path)
    context.start_soon(reply.run, name=f"{context.path}:reply")
    return client, reply.persisted
