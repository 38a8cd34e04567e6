"""The OpenAI chat-completions wire format: request parsing, response bodies, SSE framing.

Kept free of the web framework and of the runtime so that the exact shapes OpenAI clients
rely on are pure functions, testable without a server. Parsing turns every malformed
field into ``InvalidRequest`` (400), so that bad input never reaches a constructor that
would fail with a bare ``TypeError`` (a 500); the field checks the endpoints share are
``openai_fields``', the value ranges ``SamplingParams``' own, checked when it is made.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from chorusline.protocols import openai_tools as tools_wire
from chorusline.protocols.errors import ChoruslineError, InvalidRequest
from chorusline.protocols.messages import ChatMessage, FunctionTool, ToolCall, ToolChoice
from chorusline.protocols.openai_fields import (  # the limits are re-exported: wire.X
    INT32_MAX as INT32_MAX,
    INT64_MAX as INT64_MAX,
    INT64_MIN as INT64_MIN,
    MAX_TOKENS_LIMIT as MAX_TOKENS_LIMIT,
    WIRE_INT_RANGES as WIRE_INT_RANGES,
    check_type,
    end_user,
    flag,
    reject_unknown as reject_unknown,
    sampling,
    stream_usage,
)
from chorusline.protocols.openai_tools import parse_tool_results as parse_tool_results

#: OpenAI's own, then chorusline's extensions for a reply that did not end by itself, as
#: the store keeps it (a replay and a GET say the same): ``timeout`` (the turn's deadline
#: passed), ``interrupted`` (the server stopped mid-reply), ``abort`` (the reader went away),
#: ``error``. Anything else an engine reports is shown as "stop".
FINISH_REASONS = {"stop", "length", "content_filter", "tool_calls", "timeout", "interrupted",
                  "abort", "error"}
#: Every field ``POST /v1/chat/completions`` takes: OpenAI's that chorusline implements,
#: then chorusline's extensions (``docs/api.md``). Any other field is a 400.
CHAT_FIELDS = frozenset({
    "model", "messages", "frequency_penalty", "logit_bias", "logprobs", "top_logprobs",
    "max_tokens", "max_completion_tokens", "n", "presence_penalty", "response_format",
    "seed", "stop", "stream", "stream_options", "temperature", "top_p", "tools",
    "tool_choice", "parallel_tool_calls", "user", "store", "service_tier",
    # chorusline's extensions
    "top_k", "min_p", "ignore_eos", "conversation_id", "truncation",
})
#: OpenAI fields chorusline does not implement, refused with a message that says so
#: (``store`` and ``service_tier`` are taken at the values that ask for nothing).
UNSUPPORTED = {"store": (False,), "service_tier": ("auto", "default")}
SSE_DONE = b"data: [DONE]\n\n"
#: What OpenAI reports for a probability too small to represent (JSON has no -Infinity).
MIN_LOGPROB = -9999.0


@dataclass(frozen=True)
class ChatCompletionRequest:
    """A parsed ``POST /v1/chat/completions`` body; ``sampling`` holds SamplingParams'
    keyword arguments (only the ones the client sent; ``response_format`` is its
    ``grammar``). ``truncate``: the client's opt-in (``truncation: "auto"``) to drop the
    oldest turns of a history too long for the window, instead of a 400."""

    model: str
    messages: tuple[ChatMessage, ...]
    sampling: dict[str, Any] = field(default_factory=dict)
    stream: bool = False
    include_usage: bool = False
    user: str | None = None
    conversation_id: str | None = None
    tools: tuple[FunctionTool, ...] = ()
    tool_choice: ToolChoice = field(default_factory=lambda: ToolChoice("none"))
    parallel_tool_calls: bool = True
    truncate: bool = False


def parse_chat_request(body: Any) -> ChatCompletionRequest:
    """Validate the shape of a decoded JSON body; raise InvalidRequest on the first fault."""
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    reject_unknown(body, CHAT_FIELDS)
    for name, accepted in UNSUPPORTED.items():
        if body.get(name) is not None and body[name] not in accepted:
            raise InvalidRequest(f"{name}={json.dumps(body[name])[:40]} is not supported by "
                                 "this server", param=name)
    model = body.get("model")
    if model is None:
        raise InvalidRequest("model is required", param="model")
    check_type(model, str, "model", "a string")
    stream = flag(body.get("stream"), "stream")
    include_usage = stream_usage(body)
    user = end_user(body)
    conversation_id = body.get("conversation_id")
    if conversation_id is not None:
        check_type(conversation_id, str, "conversation_id", "a string")
    tools = tools_wire.parse_tools(body["tools"]) if body.get("tools") is not None else ()
    parallel = body.get("parallel_tool_calls")
    if parallel is not None and not tools:
        raise InvalidRequest("parallel_tool_calls is only allowed when tools are given",
                             param="parallel_tool_calls")
    choice = tools_wire.parse_tool_choice(body.get("tool_choice"), tools)
    wanted = sampling(body)
    grammar = tools_wire.parse_response_format(body.get("response_format"))
    if grammar is not None:
        if choice.mode != "none":
            raise InvalidRequest("response_format cannot be combined with tools unless "
                                 "tool_choice is 'none'", param="response_format")
        wanted["grammar"] = grammar
    truncation = body.get("truncation")
    if truncation is not None and truncation not in ("auto", "disabled"):
        raise InvalidRequest("truncation must be 'auto' or 'disabled'", param="truncation")
    return ChatCompletionRequest(
        model=model,
        messages=tools_wire.parse_messages(body.get("messages")),
        sampling=wanted,
        stream=stream,
        include_usage=include_usage,
        user=user,
        conversation_id=conversation_id,
        tools=tools,
        tool_choice=choice,
        parallel_tool_calls=flag(parallel, "parallel_tool_calls") if tools else True,
        truncate=truncation == "auto",
    )


# -- responses ---------------------------------------------------------------------------

def finish_reason(reason: str | None) -> str | None:
    if reason is None:
        return None
    return reason if reason in FINISH_REASONS else "stop"


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def completion(
    id: str, created: int, model: str, choices: list[tuple[str, str | None]],
    prompt_tokens: int, completion_tokens: int,
    logprobs: Sequence[list[dict[str, Any]] | None] | None = None,
    tool_calls: Sequence[Sequence[ToolCall]] | None = None,
) -> dict[str, Any]:
    """A ``chat.completion`` body; ``choices`` is ``(text, finish_reason)`` per index,
    ``logprobs`` (when the client asked for them) the token entries per index and
    ``tool_calls`` the calls each choice made (its ``content`` is then null when it said
    nothing else, and its finish reason ``tool_calls``, as OpenAI reports them)."""
    entries = logprobs if logprobs is not None else [None] * len(choices)
    calls = tool_calls if tool_calls is not None else [()] * len(choices)
    return {
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": i,
                "message": message(text, made),
                "logprobs": choice_logprobs(content),
                "finish_reason": finish_reason(reason) or "stop",
            }
            for i, ((text, reason), content, made)
            in enumerate(zip(choices, entries, calls, strict=True))
        ],
        "usage": usage(prompt_tokens, completion_tokens),
    }


def message(text: str, calls: Sequence[ToolCall] = ()) -> dict[str, Any]:
    """A choice's assistant ``message``."""
    body: dict[str, Any] = {"role": "assistant", "content": text or (None if calls else ""),
                            "refusal": None}
    if calls:
        body["tool_calls"] = [call.wire() for call in calls]
    return body


def chunk(
    id: str, created: int, model: str, choices: list[dict[str, Any]],
    *, include_usage: bool = False, usage_body: dict[str, int] | None = None,
) -> dict[str, Any]:
    """A ``chat.completion.chunk``; with ``include_usage`` every chunk carries a ``usage``
    key (null except on the final, choice-less one), as OpenAI sends it."""
    body: dict[str, Any] = {
        "id": id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "system_fingerprint": None,
        "choices": choices,
    }
    if include_usage:
        body["usage"] = usage_body
    return body


def delta(index: int, *, role: bool = False, content: str | None = None,
          finish: str | None = None,
          logprobs: list[dict[str, Any]] | None = None,
          tool_calls: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """One choice of a chunk; ``logprobs`` are the entries of the tokens whose text this
    delta carries (None: not requested, or nothing to report on this delta), and
    ``tool_calls`` the call fragments (``tool_call_delta``) it carries."""
    body: dict[str, Any] = {}
    if role:
        body["role"] = "assistant"
    if content is not None:
        body["content"] = content
    if tool_calls:
        body["tool_calls"] = tool_calls
    return {"index": index, "delta": body, "logprobs": choice_logprobs(logprobs),
            "finish_reason": finish_reason(finish)}


def tool_call_delta(index: int, *, id: str | None = None, name: str | None = None,
                    arguments: str = "") -> dict[str, Any]:
    """One streamed fragment of call ``index``: the first carries its id and name (and
    empty arguments), later ones pieces of the arguments, as OpenAI streams them."""
    if id is not None:
        return {"index": index, "id": id, "type": "function",
                "function": {"name": name, "arguments": arguments}}
    return {"index": index, "function": {"arguments": arguments}}


# -- logprobs ----------------------------------------------------------------------------

def choice_logprobs(content: list[dict[str, Any]] | None) -> dict[str, Any] | None:
    """A choice's ``logprobs`` object; None (JSON null) when logprobs were not asked for."""
    return None if content is None else {"content": content, "refusal": None}


def top_logprob(token: bytes, logprob: float) -> dict[str, Any]:
    """One ``{"token", "logprob", "bytes"}`` entry. ``token`` is the token's raw bytes: a
    token that is only part of a UTF-8 character decodes with U+FFFD in ``token`` while
    ``bytes`` keeps the exact bytes, so a client can rebuild the text from ``bytes``."""
    value = float(logprob)
    return {"token": token.decode("utf-8", errors="replace"),
            "logprob": value if math.isfinite(value) else MIN_LOGPROB,
            "bytes": list(token)}


def token_logprob(token: bytes, logprob: float,
                  top: Sequence[tuple[bytes, float]] = ()) -> dict[str, Any]:
    """The entry for one generated token: itself plus its most likely alternatives (in the
    engine's order, most likely first)."""
    entry = top_logprob(token, logprob)
    entry["top_logprobs"] = [top_logprob(t, lp) for t, lp in top]
    return entry


def model_list(name: str, created: int, owned_by: str = "chorusline") -> dict[str, Any]:
    return {
        "object": "list",
        "data": [{"id": name, "object": "model", "created": created, "owned_by": owned_by}],
    }


def error_body(error: ChoruslineError) -> dict[str, Any]:
    return {"error": {"message": error.message, "type": error.error_type,
                      "param": error.param, "code": error.code}}


def sse(data: Mapping[str, Any]) -> bytes:
    """One server-sent event: a single ``data:`` line (JSON has no raw newlines) and the
    blank line that ends the event."""
    return b"data: " + json_bytes(data) + b"\n\n"


def json_bytes(data: Mapping[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()
