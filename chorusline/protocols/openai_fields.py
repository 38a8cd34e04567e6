"""Field checks every OpenAI-shaped endpoint shares: types, integer ranges, sampling.

One place, so ``/v1/chat/completions``, ``/v1/completions``, ``/v1/embeddings`` and
``/v1/moderations`` refuse the same malformed value with the same 400 and ``param``.
Parsing checks *types* and bounds what JSON allows but nothing downstream can carry:
an integer outside its field's range (``WIRE_INT_RANGES``; a ``max_tokens`` of 2**63
overflowed the context arithmetic) and a number too large to be a float.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from chorusline.protocols.errors import (
    InvalidRequest,
    InvalidSamplingParams,
    InvalidTokenId,
    UnknownParameter,
)
from chorusline.protocols.generation import MAX_N, MAX_TOP_LOGPROBS

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


def check_type(value: Any, types: type | tuple[type, ...], param: str, what: str) -> Any:
    # bool is an int in Python but never a valid number or count on the wire.
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise InvalidRequest(f"{param} must be {what}", param=param)
    if not isinstance(value, types):
        raise InvalidRequest(f"{param} must be {what}", param=param)
    return value


def reject_unknown(body: Mapping[str, Any], allowed: frozenset[str] | set[str],
                   prefix: str = "") -> None:
    """Refuse a field the endpoint does not take, as OpenAI does (a 400 naming it):
    a misspelt ``temprature`` silently ignored would be a request not honoured.
    ``prefix`` places a nested object's fields (``messages[0].``)."""
    for name in body:
        if name not in allowed:
            raise UnknownParameter(f"Unrecognized request argument supplied: {prefix}{name}",
                                   param=f"{prefix}{name}")


def flag(value: Any, param: str) -> bool:
    return False if value is None else bool(check_type(value, bool, param, "a boolean"))


_NUMBERS = ("temperature", "top_p", "min_p", "presence_penalty", "frequency_penalty")
_INTEGERS = ("top_k", "seed", "n", "top_logprobs")


def _number(value: Any, param: str, what: str = "a number") -> Any:
    check_type(value, (int, float), param, what)
    try:
        float(value)  # an integer past 1e308 has no float (SamplingParams would crash)
    except OverflowError:
        raise InvalidSamplingParams(f"{param} must be a finite number", param=param) from None
    return value


def _integer(value: Any, param: str) -> int:
    check_type(value, int, param, "an integer")
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


def sampling(body: Mapping[str, Any]) -> dict[str, Any]:
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
            kwargs[name] = check_type(body[name], bool, name, "a boolean")
    stop = body.get("stop")
    if stop is not None:
        if isinstance(stop, str):
            stop = [stop]
        check_type(stop, list, "stop", "a string or a list of strings")
        kwargs["stop"] = tuple(check_type(s, str, "stop", "a string or a list of strings")
                               for s in stop)
    bias = body.get("logit_bias")
    if bias is not None:
        check_type(bias, dict, "logit_bias", "an object")
        kwargs["logit_bias"] = {
            _token_id(k): _number(v, "logit_bias", "a map of token id to number")
            for k, v in bias.items()
        }
    return kwargs


def stream_usage(body: Mapping[str, Any]) -> bool:
    """``stream_options.include_usage``: whether a stream ends with a usage chunk."""
    options = body.get("stream_options")
    if options is None:
        return False
    check_type(options, dict, "stream_options", "an object")
    reject_unknown(options, {"include_usage"}, "stream_options.")
    return flag(options.get("include_usage"), "stream_options.include_usage")


def end_user(body: Mapping[str, Any]) -> str | None:
    """OpenAI's ``user``: the caller's end-user id, bounded since it is stored."""
    user = body.get("user")
    if user is not None:
        check_type(user, str, "user", "a string")
        if len(user) > MAX_USER_CHARS:
            raise InvalidRequest(f"user must be at most {MAX_USER_CHARS} characters",
                                 param="user")
    return user
