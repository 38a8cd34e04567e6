"""``POST /v1/chat/completions``: from an OpenAI body to a turn, and back to the wire.

The turn is started (and so authorised, rate-limited and admitted) before any response
byte is sent, so every refusal is a proper HTTP status. Streaming then writes each batch
of chunks as soon as the TokenStream yields it. The stream is closed in every way the
response can end (finished, failed, cancelled by a client disconnect, or never iterated at
all) because closing it is what aborts the generation in the engine.

A stream still open at a graceful shutdown's drain deadline ends with an SSE error
event (``server_shutting_down``) and no ``[DONE]``, so the client knows to retry rather
than take a cut-off reply for a whole one; a non-streaming request is answered 503 by the
app (see ``app``), and both before Hypercorn cuts the connection.

While a stream waits for output (queued, prefilling a long prompt, or a GPU worker
restarting) it sends an SSE comment every ``HEARTBEAT_SECONDS`` so that proxies and
clients with idle timeouts keep the connection; SSE clients, the OpenAI SDK included,
ignore comment lines.

With ``logprobs`` each token's entry travels with the delta that shows its text: a token
whose text the engine or the moderator still holds back (half a UTF-8 character, a
possible stop string, the moderation window) has its entry kept until that text goes
out, and entries with no text of their own (the end-of-turn token) ride on the chunk
that carries the ``finish_reason``.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import AsyncIterator, Iterator
from functools import partial
from typing import Any

from quart import Response

from chorusline.chat import (
    ChatRequest,
    ChatService,
    Chunk,
    Principal,
    ToolCallParser,
    TurnHandle,
)
from chorusline.protocols import (
    ChoruslineError,
    InvalidRequest,
    SamplingParams,
    openai as wire,
)
from chorusline.web import streaming
from chorusline.web.http import Drain, current_drain, turn_headers
from chorusline.web.observability import TurnObserver, observe_turn
from chorusline.web.streaming import KEEP_ALIVE, SseBody, Usage, next_batch, sse_response

#: Seconds of silence after which a streaming response sends ``KEEP_ALIVE``; read at
#: each request, so tests (or an embedding application) may change it.
HEARTBEAT_SECONDS = streaming.HEARTBEAT_SECONDS


def build_request(
    parsed: wire.ChatCompletionRequest, idempotency_key: str | None
) -> ChatRequest:
    """The turn a chat completion asks for; its ``model`` is read by the router (an
    unknown one is a 404 there, before anything is stored)."""
    try:
        params = SamplingParams(**parsed.sampling)
    except (TypeError, ValueError) as exc:  # belt and braces: parsing checked the types
        raise InvalidRequest(f"invalid sampling parameters: {exc}") from None
    if parsed.conversation_id is None:
        return ChatRequest(params=params, messages=parsed.messages,
                           idempotency_key=idempotency_key, end_user=parsed.user,
                           tools=parsed.tools, tool_choice=parsed.tool_choice,
                           parallel_tool_calls=parsed.parallel_tool_calls,
                           truncate=parsed.truncate, model=parsed.model)
    # The store holds the history: the turn is the new user message, or the results
    # of the stored reply's calls (the trailing tool messages), as a client that keeps
    # its own copy of the history sends them.
    messages = parsed.messages
    results = len(messages)
    while results > 0 and messages[results - 1].role == "tool":
        results -= 1
    tool_results = messages[results:]
    last = messages[-1]
    if not tool_results and last.role != "user":
        raise InvalidRequest("with conversation_id the last message must be the user's "
                             "or tool results", param="messages")
    return ChatRequest(params=params, model=parsed.model,
                       conversation_id=parsed.conversation_id,
                       content=None if tool_results else last.content,
                       tool_results=tool_results, idempotency_key=idempotency_key,
                       end_user=parsed.user, tools=parsed.tools,
                       tool_choice=parsed.tool_choice,
                       parallel_tool_calls=parsed.parallel_tool_calls)


_RESULTS_PARAM = re.compile(r"tool_results(?:\[(\d+)\])?")


@contextlib.contextmanager
def results_as_messages(parsed: wire.ChatCompletionRequest, turn: ChatRequest
                        ) -> Iterator[None]:
    """On this route a stored turn's results are the trailing ``tool`` messages, so a
    refusal the chat layer names after ``tool_results[i]`` is renamed after the field
    the client sent, ``messages[j]`` (the conversation route keeps ``tool_results``)."""
    try:
        yield
    except InvalidRequest as exc:
        found = _RESULTS_PARAM.match(exc.param or "") if turn.tool_results else None
        if found is not None:
            first = len(parsed.messages) - len(turn.tool_results)
            at = "messages" if found[1] is None else f"messages[{first + int(found[1])}]"
            exc.param = at + str(exc.param)[found.end():]
        raise


class _Logprobs:
    """Turns the engine's token logprobs into OpenAI entries, per choice, for a request
    that asked for them (``wanted``); for one that did not, every method gives None."""

    def __init__(self, chat: ChatService, wanted: bool, model: str) -> None:
        self.token_bytes = partial(chat.token_bytes, model=model)
        self.wanted = wanted
        self.held: dict[int, list[dict[str, Any]]] = {}

    def add(self, chunk: Chunk) -> None:
        if self.wanted:
            tb = self.token_bytes
            self.held.setdefault(chunk.index, []).extend(
                wire.token_logprob(tb(lp.token_id), lp.logprob,
                                   [(tb(t), v) for t, v in lp.top_logprobs])
                for lp in chunk.logprobs)

    def take(self, index: int) -> list[dict[str, Any]] | None:
        """The entries held for a choice (emptied); None if logprobs were not asked for."""
        return self.held.pop(index, []) if self.wanted else None


class _Calls:
    """Each choice's tool calls read out of its text, when the request offered tools
    (otherwise the text passes through untouched)."""

    def __init__(self, request_id: str, parsed: wire.ChatCompletionRequest) -> None:
        self.request_id = request_id
        self.wanted = bool(parsed.tools) and parsed.tool_choice.mode != "none"
        self.parsers: dict[int, ToolCallParser] = {}

    def parser(self, index: int) -> ToolCallParser:
        if index not in self.parsers:  # ids unique per choice: ``n`` may be above 1
            self.parsers[index] = ToolCallParser(f"{self.request_id}:{index}")
        return self.parsers[index]

    def feed(self, index: int, text: str, final: bool) -> tuple[str, list[dict[str, Any]]]:
        """The content to send for ``text`` and its ``delta.tool_calls`` entries."""
        if not self.wanted:
            return text, []
        parser = self.parser(index)
        content, deltas = parser.feed(text)
        if final:
            rest, more = parser.finish()
            content, deltas = content + rest, deltas + more
        return content, [wire.tool_call_delta(d.index, id=d.id, name=d.name,
                                              arguments=d.arguments) for d in deltas]

    def finish_reason(self, index: int, reason: str | None) -> str | None:
        parser = self.parsers.get(index)
        return "tool_calls" if reason == "stop" and parser and parser.calls else reason


async def complete(chat: ChatService, principal: Principal, request: ChatRequest,
                   parsed: wire.ChatCompletionRequest) -> Response:
    observer = observe_turn()  # now: the request context is gone once streaming starts
    handle = await chat.chat(principal, request)
    # One id for the turn: the body's ``id`` is the ``X-Request-Id`` and the usage row's.
    response_id, created = handle.request_id, int(time.time())
    model = observer.model = handle.model  # the model that answers (after any fallback)
    logprobs = _Logprobs(chat, request.params.logprobs, model)
    if parsed.stream:
        body = SseBody([handle], _events(handle, parsed, response_id, created, model,
                                         observer, logprobs, current_drain(),
                                         _Calls(response_id, parsed)), observer)
        response = sse_response(body)
    else:
        response = await _collect(handle, response_id, created, model, observer, logprobs,
                                  _Calls(response_id, parsed))
    turn_headers(response, handle)
    return response


async def _collect(handle: TurnHandle, response_id: str, created: int, model: str,
                   observer: TurnObserver, logprobs: _Logprobs, calls: _Calls) -> Response:
    choices = max(handle.stream.choices, 1)
    texts = [""] * choices
    finishes: list[str | None] = [None] * choices
    usage = Usage(handle)
    try:
        async for chunks in handle.stream:
            for chunk in chunks:
                texts[chunk.index] += chunk.text
                logprobs.add(chunk)
                finishes[chunk.index] = chunk.finish_reason or finishes[chunk.index]
                usage.add(chunk)
            observer.progress(usage.body()["completion_tokens"])
    finally:
        handle.stream.close()
        counts = usage.body()
        observer.finish(counts["prompt_tokens"], counts["completion_tokens"])
    made = []
    for i in range(choices):
        texts[i], _ = calls.feed(i, texts[i], final=True)
        finishes[i] = calls.finish_reason(i, finishes[i])
        made.append(calls.parsers[i].calls if i in calls.parsers else [])
    body = wire.completion(response_id, created, model, list(zip(texts, finishes, strict=True)),
                           counts["prompt_tokens"], counts["completion_tokens"],
                           [logprobs.take(i) for i in range(choices)], made)
    return Response(wire.json_bytes(body), mimetype="application/json")


async def _events(handle: TurnHandle, parsed: wire.ChatCompletionRequest,
                  response_id: str, created: int, model: str,
                  observer: TurnObserver, logprobs: _Logprobs,
                  drain: Drain, calls: _Calls) -> AsyncIterator[bytes]:
    include = parsed.include_usage
    usage = Usage(handle)
    started: set[int] = set()

    def frame(choices: list[dict[str, Any]]) -> bytes:
        return wire.sse(wire.chunk(response_id, created, model, choices, include_usage=include))

    heartbeat = HEARTBEAT_SECONDS
    try:
        while True:
            # At the drain deadline this raises ShuttingDown, sent as an error event.
            batch = await next_batch(handle.stream, drain, heartbeat)
            if batch == []:  # silence for ``heartbeat`` seconds
                yield KEEP_ALIVE
                continue
            if batch is None:
                break
            for chunk in batch:
                usage.add(chunk)
                index = chunk.index
                if index not in started:  # OpenAI sends the role on its own first
                    started.add(index)
                    yield frame([wire.delta(index, role=True, content="",
                                            logprobs=logprobs.take(index))])
                logprobs.add(chunk)
                final = chunk.finish_reason is not None
                text, tool_calls = calls.feed(index, chunk.text, final)
                if text or tool_calls:
                    yield frame([wire.delta(index, content=text or None,
                                            logprobs=logprobs.take(index),
                                            tool_calls=tool_calls)])
                if final:
                    # Like OpenAI, null here unless some entries had no text to go with.
                    yield frame([wire.delta(index,
                                            finish=calls.finish_reason(index,
                                                                       chunk.finish_reason),
                                            logprobs=logprobs.take(index) or None)])
            observer.progress(usage.body()["completion_tokens"])
    except ChoruslineError as error:
        # The status line is gone; OpenAI reports a mid-stream failure as an error event.
        yield wire.sse(wire.error_body(error))
        return
    finally:
        handle.stream.close()  # as ``async for`` over the stream did; a no-op once ended
        # Counted however the stream ends (finished, failed, client gone): the tokens
        # were generated either way. The first call wins, so the body's aclose is a no-op.
        counts = usage.body()
        observer.finish(counts["prompt_tokens"], counts["completion_tokens"])
    if include:
        yield wire.sse(wire.chunk(response_id, created, model, [], include_usage=True,
                                  usage_body=usage.body()))
    yield wire.SSE_DONE
