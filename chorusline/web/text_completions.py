"""``POST /v1/completions``: OpenAI's legacy text completions over raw-prompt turns.

Each prompt of the body is a turn of its own (``ChatRequest.prompt``: no chat template),
so it is authorised, rate-limited, moderated, admitted and recorded as any stateless
turn. All of them are started before the first response byte, so a refusal of any one
is a real HTTP status, and the ones already started are closed (aborted) with it.
Choice ``j`` of prompt ``p`` is ``index = p * n + j``, as OpenAI numbers them.

Streaming, heartbeats, the drain deadline and closing are the chat route's
(``streaming``); several prompts stream at once, their chunks interleaved as they
come. ``best_of`` generates that many candidates per prompt (with logprobs, even when
the client did not ask for them) and keeps the ``n`` with the highest total log
probability, best first; so it cannot stream. ``echo`` puts the prompt's text before
each choice's text (the first chunk of each streamed choice).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from functools import partial
from typing import Any

import trio
from quart import Response
from quart_trio import QuartTrio

# Submodule imports, pending ``openai_completions`` joining ``chorusline.protocols``'
# ``__all__`` (as ``openai`` is).
import chorusline.protocols.openai_completions as cwire
from chorusline.chat import ChatRequest, ChatService, Chunk, Principal, TurnHandle
from chorusline.protocols import ChoruslineError, SamplingParams, openai as wire
from chorusline.web import streaming
from chorusline.web.http import Drain, authenticate, current_drain, json_body, turn_headers
from chorusline.web.observability import TurnObserver, observe_turn
from chorusline.web.streaming import KEEP_ALIVE, SseBody, Usage, next_batches, total_usage

#: Seconds of silence after which a stream sends ``KEEP_ALIVE``; read at each request.
HEARTBEAT_SECONDS = streaming.HEARTBEAT_SECONDS


def register(app: QuartTrio, chat: ChatService) -> None:
    @app.post("/v1/completions")
    async def text_completions() -> Response:
        principal = await authenticate(chat)
        parsed = cwire.parse_completion_request(await json_body())
        return await complete_text(chat, principal, parsed)


async def start_turns(chat: ChatService, principal: Principal,
                      parsed: cwire.CompletionRequest) -> list[TurnHandle]:
    """One turn per prompt, in order; if one is refused, the started ones are closed."""
    params = SamplingParams(**parsed.sampling)
    handles: list[TurnHandle] = []
    try:
        for prompt in parsed.prompts:
            handles.append(await chat.chat(principal, ChatRequest(
                params=params, model=parsed.model, prompt=prompt, end_user=parsed.user)))
    except BaseException:
        for handle in handles:
            handle.stream.close()
        raise
    return handles


class _Choice:
    """One candidate as it accumulates: text, finish, total log probability, and its
    legacy ``logprobs`` (entries held until text goes with them, as the chat route)."""

    def __init__(self, chat: ChatService, model: str, prompt_text: str, echo: bool) -> None:
        self.token_bytes = partial(chat.token_bytes, model=model)
        self.text = prompt_text if echo else ""
        self.finish: str | None = None
        self.total = 0.0
        self.logprobs = cwire.LegacyLogprobs(len(prompt_text))

    def add(self, chunk: Chunk) -> None:
        self.text += chunk.text
        self.finish = chunk.finish_reason or self.finish
        tb = self.token_bytes
        for lp in chunk.logprobs:
            self.total += lp.logprob
            self.logprobs.add(tb(lp.token_id), lp.logprob,
                              [(tb(t), v) for t, v in lp.top_logprobs])

    def rank(self) -> tuple[bool, float]:
        """``best_of``'s order: a moderated candidate (its withheld tokens' logprobs
        dropped, so its total flatters it) after every other."""
        return self.finish != "content_filter", self.total


def _prompt_text(chat: ChatService, model: str, prompt: cwire.Prompt) -> str:
    """The prompt as text (``echo``, ``text_offset``): token ids are decoded with the
    answering model's bytes, special tokens as nothing (``ChatService.token_bytes``)."""
    if isinstance(prompt, str):
        return prompt
    return b"".join(chat.token_bytes(t, model) for t in prompt).decode("utf-8", "replace")


async def complete_text(chat: ChatService, principal: Principal,
                        parsed: cwire.CompletionRequest) -> Response:
    observer = observe_turn()  # now: the request context is gone once streaming starts
    handles = await start_turns(chat, principal, parsed)
    response_id, created = handles[0].request_id, int(time.time())
    observer.model = handles[0].model
    texts = [_prompt_text(chat, h.model, p) for h, p in zip(handles, parsed.prompts,
                                                             strict=True)]
    if parsed.stream:
        events = _events(chat, handles, parsed, texts, response_id, created, observer,
                         current_drain())
        response = streaming.sse_response(SseBody(handles, events, observer))
    else:
        choices, counts = await _collect(chat, handles, parsed, texts, observer)
        response = Response(wire.json_bytes(cwire.text_completion(
            response_id, created, handles[0].model, choices, counts["prompt_tokens"],
            counts["completion_tokens"])), mimetype="application/json")
    turn_headers(response, handles[-1])  # the latest: the fullest rate count
    response.headers["X-Request-Id"] = response_id
    return response


async def _collect(chat: ChatService, handles: Sequence[TurnHandle],
                   parsed: cwire.CompletionRequest, texts: Sequence[str],
                   observer: TurnObserver) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Every turn read to its end, concurrently (each stream bounds what it holds
    unread), then each prompt's best ``n`` candidates as choices."""
    candidates = [[_Choice(chat, handle.model, text, parsed.echo)
                   for _ in range(parsed.best_of)]
                  for handle, text in zip(handles, texts, strict=True)]
    usages = [Usage(handle) for handle in handles]

    async def read(p: int) -> None:
        async for batch in handles[p].stream:
            for chunk in batch:
                usages[p].add(chunk)
                candidates[p][chunk.index].add(chunk)
            observer.progress(total_usage(usages)["completion_tokens"])

    try:
        async with trio.open_nursery() as nursery:
            for p in range(len(handles)):
                nursery.start_soon(read, p)
    except BaseExceptionGroup as group:  # one turn's failure is the request's error
        refusals, rest = group.split(ChoruslineError)
        if refusals is None or rest is not None:  # a cancellation or a bug: as it is
            raise
        raise _first(refusals) from None
    finally:
        for handle in handles:
            handle.stream.close()
        counts = total_usage(usages)
        observer.finish(counts["prompt_tokens"], counts["completion_tokens"])
    choices = []
    for p, options in enumerate(candidates):
        kept = (sorted(options, key=_Choice.rank, reverse=True)[:parsed.n]
                if parsed.best_of > parsed.n else options)
        for j, choice in enumerate(kept):
            logprobs = choice.logprobs.take() if parsed.logprobs is not None else None
            choices.append(cwire.text_choice(p * parsed.n + j, choice.text, choice.finish,
                                             logprobs))
    return choices, counts


def _first(group: BaseExceptionGroup[ChoruslineError]) -> ChoruslineError:
    error = group.exceptions[0]
    return _first(error) if isinstance(error, BaseExceptionGroup) else error


async def _events(chat: ChatService, handles: Sequence[TurnHandle],
                  parsed: cwire.CompletionRequest, texts: Sequence[str], response_id: str,
                  created: int, observer: TurnObserver, drain: Drain
                  ) -> AsyncIterator[bytes]:
    include, model, n = parsed.include_usage, handles[0].model, parsed.n
    usages = [Usage(handle) for handle in handles]
    open_streams = {p: handle.stream for p, handle in enumerate(handles)}
    choices: dict[int, _Choice] = {}
    wanted = parsed.logprobs is not None

    def frame(index: int, text: str, finish: str | None = None) -> bytes:
        choice = choices[index]
        logprobs = choice.logprobs.take() if wanted and (text or finish) else None
        if finish is not None and logprobs is not None and not logprobs["tokens"]:
            logprobs = None  # like the chat route: null unless entries had no text yet
        return wire.sse(cwire.text_chunk(
            response_id, created, model, [cwire.text_choice(index, text, finish, logprobs)],
            include_usage=include))

    heartbeat = HEARTBEAT_SECONDS
    try:
        while open_streams:
            batches = await next_batches(open_streams, drain, heartbeat)
            if not batches:  # silence for ``heartbeat`` seconds
                yield KEEP_ALIVE
                continue
            for p, batch in sorted(batches.items()):
                if batch is None:
                    del open_streams[p]
                    continue
                for chunk in batch:
                    usages[p].add(chunk)
                    index = p * n + chunk.index
                    if index not in choices:
                        choices[index] = _Choice(chat, handles[p].model, texts[p],
                                                 echo=False)
                        if parsed.echo:
                            yield frame(index, texts[p])
                    choices[index].add(chunk)
                    if chunk.text:
                        yield frame(index, chunk.text)
                    if chunk.finish_reason is not None:
                        yield frame(index, "", chunk.finish_reason)
            observer.progress(total_usage(usages)["completion_tokens"])
    except ChoruslineError as error:
        # The status line is gone; OpenAI reports a mid-stream failure as an error event.
        yield wire.sse(wire.error_body(error))
        return
    finally:
        for handle in handles:
            handle.stream.close()
        counts = total_usage(usages)
        observer.finish(counts["prompt_tokens"], counts["completion_tokens"])
    if include:
        yield wire.sse(cwire.text_chunk(response_id, created, model, [], include_usage=True,
                                        usage_body=total_usage(usages)))
    yield wire.SSE_DONE
