"""The OpenAI chat-completions wire format: request parsing, response bodies, SSE framing.

Kept free of the web framework and of the runtime so that the exact shapes OpenAI clients
rely on are pure functions, testable without a server. Parsing checks *types* and turns
every malformed field into ``InvalidRequest`` (400), so that bad input never reaches a
constructor that would fail with a bare ``TypeError`` (a 500). It also bounds what JSON
allows but nothing downstream can carry, each a 400 ``invalid_sampling_params`` naming
the field: an integer outside its field's range (``WIRE_INT_RANGES``; a ``max_tokens`` of
2**63 overflowed the context arithmetic and came back as a 429) and a number too large
to be a float (``SamplingParams`` would crash converting it). The other value ranges
are ``SamplingParams``', checked when it is made.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from chorusline.protocols.errors import (
    ChoruslineError,
    InvalidRequest,
    InvalidSamplingParams,
    InvalidTokenId,
)
from chorusline.protocols.generation import MAX_N, MAX_TOP_LOGPROBS

ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
#: OpenAI's own, then chorusline's extensions for a reply that did not end by itself, as
#: the store keeps it (a replay and a GET say the same): ``timeout`` (the turn's deadline
#: passed), ``interrupted`` (the server stopped mid-reply), ``abort`` (the reader went away),
#: ``error``. Anything else an engine reports is shown as "stop".
FINISH_REASONS = {"stop", "length", "content_filter", "timeout", "interrupted", "abort",
                  "error"}
SSE_DONE = b"data: [DONE]\n\n"
#: What OpenAI reports for a probability too small to represent (JSON has no -Infinity).
MIN_LOGPROB = -9999.0
INT32_MAX = 2**31 - 1
#: The longest ``user`` (the caller's end-user id, kept on the usage row).
MAX_USER_CHARS = 256
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
#: The largest ``max_tokens``/``max_completion_tokens`` accepted. Far above any context
#: window (a budget the window cannot hold is the chat layer's 400), it keeps the value a
#: machine-sized integer everywhere it is added to or compared with.
MAX_TOKENS_LIMIT = INT32_MAX
#: Each integer field's accepted range, inclusive: counts are 32-bit, seeds 64-bit
#: (OpenAI's); the lower bounds and the tight ones are ``SamplingParams``' own, so a
#: value refused here gets the message it would get there.
WIRE_INT_RANGES: dict[str, tuple[int, int]] = {
    "max_tokens": (1, MAX_TOKENS_LIMIT),
    "max_completion_tokens": (1, MAX_TOKENS_LIMIT),
    "top_k": (0, INT32_MAX),
    "n": (1, MAX_N),
    "top_logprobs": (0, MAX_TOP_LOGPROBS),
    "seed": (INT64_MIN, INT64_MAX),
}
#: A ``logit_bias`` key: ASCII decimal digits (``int()`` would also take " 42", "4_2"
#: and non-ASCII digits).
_TOKEN_ID = re.compile(r"-?[0-9]+")


@dataclass(frozen=True)
class ChatCompletionRequest:
    """A parsed ``POST /v1/chat/completions`` body; ``sampling`` holds SamplingParams'
    keyword arguments (only the ones the client sent)."""

    model: str
    messages: tuple[tuple[str, str], ...]
    sampling: dict[str, Any] = field(default_factory=dict)
    stream: bool = False
    include_usage: bool = False
    user: str | None = None
    conversation_id: str | None = None


def _check(value: Any, types: type | tuple[type, ...], param: str, what: str) -> Any:
    # bool is an int in Python but never a valid number or count on the wire.
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise InvalidRequest(f"{param} must be {what}", param=param)
    if not isinstance(value, types):
        raise InvalidRequest(f"{param} must be {what}", param=param)
    return value


def _flag(value: Any, param: str) -> bool:
    return False if value is None else bool(_check(value, bool, param, "a boolean"))


def _content(value: Any, param: str) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, list):
        parts = []
        for part in value:
            if not isinstance(part, dict) or part.get("type") != "text":
                raise InvalidRequest("only text content parts are supported", param=param)
            parts.append(_check(part.get("text"), str, param, "a string"))
        return "".join(parts)
    raise InvalidRequest(f"{param} must be a string or a list of text parts", param=param)


def _messages(value: Any) -> tuple[tuple[str, str], ...]:
    _check(value, list, "messages", "a list")
    out = []
    for i, message in enumerate(value):
        if not isinstance(message, dict):
            raise InvalidRequest(f"messages[{i}] must be an object", param=f"messages[{i}]")
        role = message.get("role")
        role = ROLES.get(role) if isinstance(role, str) else None
        if role is None:
            raise InvalidRequest(
                f"messages[{i}].role must be system, user or assistant",
                param=f"messages[{i}].role",
            )
        out.append((role, _content(message.get("content"), f"messages[{i}].content")))
    if not out:
        raise InvalidRequest("messages must not be empty", param="messages")
    return tuple(out)


_NUMBERS = ("temperature", "top_p", "min_p", "presence_penalty", "frequency_penalty")
_INTEGERS = ("top_k", "seed", "n", "top_logprobs")


def _number(value: Any, param: str, what: str = "a number") -> Any:
    _check(value, (int, float), param, what)
    try:
        float(value)  # an integer past 1e308 has no float (SamplingParams would crash)
    except OverflowError:
        raise InvalidSamplingParams(f"{param} must be a finite number", param=param) from None
    return value


def _integer(value: Any, param: str) -> int:
    _check(value, int, param, "an integer")
    low, high = WIRE_INT_RANGES[param]
    if not low <= value <= high:
        raise InvalidSamplingParams(f"{param} must be an integer in [{low}, {high}]",
                                    param=param)
    return int(value)


def _token_id(key: str) -> int:
    if _TOKEN_ID.fullmatch(key) is None:
        raise InvalidRequest("logit_bias keys must be token ids (decimal integers)",
                             param="logit_bias")
    # Length first: int() refuses over 4300 digits, and no vocabulary has 2**31 tokens.
    if len(key) > 10 or not 0 <= int(key) <= INT32_MAX:
        raise InvalidTokenId(f"token id {key[:20]} is outside the vocabulary",
                             param="logit_bias")
    return int(key)


def _sampling(body: Mapping[str, Any]) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    for name in _NUMBERS:
        if body.get(name) is not None:
            kwargs[name] = _number(body[name], name)
    for name in _INTEGERS:
        if body.get(name) is not None:
            kwargs[name] = _integer(body[name], name)
    for name in ("max_completion_tokens", "max_tokens"):  # the newer name wins
        if body.get(name) is not None:
            kwargs["max_tokens"] = _integer(body[name], name)
            break
    for name in ("logprobs", "ignore_eos"):
        if body.get(name) is not None:
            kwargs[name] = _check(body[name], bool, name, "a boolean")
    stop = body.get("stop")
    if stop is not None:
        if isinstance(stop, str):
            stop = [stop]
        _check(stop, list, "stop", "a string or a list of strings")
        kwargs["stop"] = tuple(_check(s, str, "stop", "a string or a list of strings")
                               for s in stop)
    bias = body.get("logit_bias")
    if bias is not None:
        _check(bias, dict, "logit_bias", "an object")
        kwargs["logit_bias"] = {
            _token_id(k): _number(v, "logit_bias", "a map of token id to number")
            for k, v in bias.items()
        }
    return kwargs


def parse_chat_request(body: Any) -> ChatCompletionRequest:
    """Validate the shape of a decoded JSON body; raise InvalidRequest on the first fault."""
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    model = body.get("model")
    if model is None:
        raise InvalidRequest("model is required", param="model")
    _check(model, str, "model", "a string")
    stream = _flag(body.get("stream"), "stream")
    options = body.get("stream_options")
    include_usage = False
    if options is not None:
        _check(options, dict, "stream_options", "an object")
        include_usage = _flag(options.get("include_usage"), "stream_options.include_usage")
    user = body.get("user")
    if user is not None:
        _check(user, str, "user", "a string")
        if len(user) > MAX_USER_CHARS:
            raise InvalidRequest(f"user must be at most {MAX_USER_CHARS} characters",
                                 param="user")
    conversation_id = body.get("conversation_id")
    if conversation_id is not None:
        _check(conversation_id, str, "conversation_id", "a string")
    return ChatCompletionRequest(
        model=model,
        messages=_messages(body.get("messages")),
        sampling=_sampling(body),
        stream=stream,
        include_usage=include_usage,
        user=user,
        conversation_id=conversation_id,
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
) -> dict[str, Any]:
    """A ``chat.completion`` body; ``choices`` is ``(text, finish_reason)`` per index and
    ``logprobs`` (when the client asked for them) the token entries per index."""
    entries = logprobs if logprobs is not None else [None] * len(choices)
    return {
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": i,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "logprobs": choice_logprobs(content),
                "finish_reason": finish_reason(reason) or "stop",
            }
            for i, ((text, reason), content) in enumerate(zip(choices, entries, strict=True))
        ],
        "usage": usage(prompt_tokens, completion_tokens),
    }


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
          logprobs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """One choice of a chunk; ``logprobs`` are the entries of the tokens whose text this
    delta carries (None: not requested, or nothing to report on this delta)."""
    body: dict[str, Any] = {}
    if role:
        body["role"] = "assistant"
    if content is not None:
        body["content"] = content
    return {"index": index, "delta": body, "logprobs": choice_logprobs(logprobs),
            "finish_reason": finish_reason(finish)}


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
