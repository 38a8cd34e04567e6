"""OpenAI's legacy ``POST /v1/completions`` wire format: the body parsed, the
``text_completion`` bodies and chunks built, and the legacy ``logprobs`` object.

Framework-free, like ``openai`` (the chat format), whose type and range checks it reuses
so that a sampling field means and refuses exactly the same on both endpoints. What is
new here is the legacy shape: ``prompt`` in four forms, ``echo``, ``best_of`` and an
integer ``logprobs`` whose answer is four parallel lists rather than one entry per token.
Every refusal names its field in ``param``, as OpenAI's 400s do.
"""

from __future__ import annotations

import codecs
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from chorusline.protocols.errors import InvalidRequest, InvalidSamplingParams
from chorusline.protocols.generation import MAX_N
from chorusline.protocols.openai import MIN_LOGPROB, finish_reason, usage
from chorusline.protocols.openai_fields import (
    check_type,
    end_user,
    flag,
    reject_unknown,
    sampling,
    stream_usage,
)

#: Every field the endpoint takes: OpenAI's, then chorusline's extensions (``top_k``,
#: ``min_p``, ``ignore_eos``, as the chat route takes them). ``suffix`` is known but
#: refused.
COMPLETION_FIELDS = frozenset({
    "model", "prompt", "suffix", "max_tokens", "temperature", "top_p", "n", "stop",
    "presence_penalty", "frequency_penalty", "logit_bias", "seed", "user", "stream",
    "stream_options", "echo", "logprobs", "best_of",
    # chorusline's extensions
    "top_k", "min_p", "ignore_eos",
})
#: The fields whose meaning and checks are the chat route's (``openai_fields.sampling``).
SHARED_SAMPLING = ("max_tokens", "temperature", "top_p", "top_k", "min_p", "seed", "n",
                   "stop", "presence_penalty", "frequency_penalty", "logit_bias", "ignore_eos")
#: OpenAI's default reply budget for this endpoint (the chat route's is the server's).
DEFAULT_MAX_TOKENS = 16
#: OpenAI's largest ``logprobs``: alternatives per token.
MAX_LOGPROBS = 5
#: The most prompts one request may carry: each is a turn of its own (a request, and a
#: concurrent stream, of the key's tier), so the bound keeps one body's fan-out small.
MAX_PROMPTS = 16
PROMPT_FORMS = ("prompt must be a string, an array of strings, an array of token ids or "
                "an array of token-id arrays")

Prompt = str | tuple[int, ...]


@dataclass(frozen=True)
class CompletionRequest:
    """A parsed body. ``sampling`` holds ``SamplingParams``' keyword arguments for each
    prompt's turn: its ``n`` is ``best_of`` (the candidates generated), and it asks the
    engine for logprobs when the client wants them or ``best_of`` must rank by them."""

    model: str
    prompts: tuple[Prompt, ...]
    sampling: dict[str, Any] = field(default_factory=dict)
    n: int = 1
    best_of: int = 1
    echo: bool = False
    #: Alternatives per token the client asked for; None: no ``logprobs`` object.
    logprobs: int | None = None
    stream: bool = False
    include_usage: bool = False
    user: str | None = None


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_prompt(value: Any) -> tuple[Prompt, ...]:
    """The four forms of ``prompt`` as a tuple of prompts, each a text or token ids.
    Empty ones are refused here, with their index; ids outside the vocabulary are the
    chat layer's to refuse (only it knows the model)."""
    if value is None:
        raise InvalidRequest("you must provide a prompt", param="prompt")
    one_ids = isinstance(value, list) and bool(value) and all(_is_id(v) for v in value)
    if isinstance(value, str) or one_ids:
        value = [value]
    if not isinstance(value, list):
        raise InvalidRequest(PROMPT_FORMS, param="prompt")
    if not value:
        raise InvalidRequest("prompt must not be an empty array", param="prompt")
    if len(value) > MAX_PROMPTS:
        raise InvalidRequest(f"prompt may hold at most {MAX_PROMPTS} prompts, got "
                             f"{len(value)}", param="prompt")
    prompts: list[Prompt] = []
    texts = all(isinstance(v, str) for v in value)
    for i, item in enumerate(value):
        if texts:
            prompts.append(item)
        elif isinstance(item, list) and all(_is_id(t) for t in item):
            prompts.append(tuple(item))
        else:
            raise InvalidRequest(f"prompt[{i}]: {PROMPT_FORMS} (not a mix)", param="prompt")
        if not item:
            raise InvalidRequest(f"prompt[{i}] is empty", param="prompt")
    return tuple(prompts)


def _optional_int(body: Mapping[str, Any], name: str, low: int, high: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    check_type(value, int, name, "an integer")
    if not low <= value <= high:
        raise InvalidSamplingParams(f"{name} must be an integer in [{low}, {high}]",
                                    param=name)
    return int(value)


def parse_completion_request(body: Any) -> CompletionRequest:
    """Validate a decoded JSON body; raise ``InvalidRequest`` on the first fault."""
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    reject_unknown(body, COMPLETION_FIELDS)
    model = body.get("model")
    if model is None:
        raise InvalidRequest("you must provide a model parameter", param="model")
    check_type(model, str, "model", "a string")
    prompts = parse_prompt(body.get("prompt"))
    suffix = body.get("suffix")
    if suffix is not None:
        check_type(suffix, str, "suffix", "a string")
        if suffix:
            raise InvalidRequest("suffix is not supported by this server: the model has no "
                                 "fill-in-the-middle format", param="suffix")
    wanted = sampling({k: body[k] for k in SHARED_SAMPLING if k in body})
    wanted.setdefault("max_tokens", DEFAULT_MAX_TOKENS)
    n = wanted.pop("n", 1)
    best_of = _optional_int(body, "best_of", 1, MAX_N)
    if best_of is not None and best_of < n:
        raise InvalidRequest(f"best_of ({best_of}) must be at least n ({n})", param="best_of")
    best_of = best_of or n
    logprobs = _optional_int(body, "logprobs", 0, MAX_LOGPROBS)
    echo = flag(body.get("echo"), "echo")
    if echo and logprobs is not None:
        raise InvalidRequest("echo cannot be combined with logprobs here: the engine does "
                             "not compute the prompt tokens' log probabilities", param="echo")
    stream = flag(body.get("stream"), "stream")
    if stream and best_of > n:
        raise InvalidRequest("best_of cannot be used with stream: the best candidates are "
                             "known only once all have finished", param="best_of")
    include_usage = stream_usage(body)
    user = end_user(body)
    wanted["n"] = best_of
    if logprobs is not None or best_of > n:
        wanted["logprobs"] = True
        wanted["top_logprobs"] = logprobs or 0
    return CompletionRequest(model=model, prompts=prompts, sampling=wanted, n=n,
                             best_of=best_of, echo=echo, logprobs=logprobs, stream=stream,
                             include_usage=include_usage, user=user)


# -- legacy logprobs ---------------------------------------------------------------------

def legacy_token(token: bytes) -> str:
    """A token as the legacy format names it: its text, or, for bytes that are not text
    on their own (part of a character), ``bytes:\\xe2\\x80`` as OpenAI writes them."""
    try:
        return token.decode("utf-8")
    except UnicodeDecodeError:
        return "bytes:" + "".join(f"\\x{b:02x}" for b in token)


def _finite(value: float) -> float:
    value = float(value)
    return value if math.isfinite(value) else MIN_LOGPROB


class LegacyLogprobs:
    """One choice's legacy ``logprobs``, built token by token: ``text_offset`` counts
    characters from the start of the prompt's text (as OpenAI's do), so ``start`` is the
    prompt's length; a token that ends part-way through a character starts where the
    last whole character ended. ``take`` empties the lists (a streamed chunk carries
    its own tokens) while the offsets run on."""

    def __init__(self, start: int) -> None:
        self._chars = start
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.tokens: list[str] = []
        self.token_logprobs: list[float] = []
        self.top_logprobs: list[dict[str, float]] = []
        self.text_offset: list[int] = []

    def add(self, token: bytes, logprob: float, top: Sequence[tuple[bytes, float]]) -> None:
        name = legacy_token(token)
        self.tokens.append(name)
        self.token_logprobs.append(_finite(logprob))
        alternatives: dict[str, float] = {}
        for alternative, value in top:  # most likely first; a name seen twice keeps the first
            alternatives.setdefault(legacy_token(alternative), _finite(value))
        alternatives.setdefault(name, _finite(logprob))  # always the sampled token's own
        self.top_logprobs.append(alternatives)
        self.text_offset.append(self._chars)
        self._chars += len(self._decoder.decode(token))

    def __len__(self) -> int:
        return len(self.tokens)

    def take(self) -> dict[str, Any]:
        body = {"tokens": self.tokens, "token_logprobs": self.token_logprobs,
                "top_logprobs": self.top_logprobs, "text_offset": self.text_offset}
        self.tokens, self.token_logprobs, self.top_logprobs, self.text_offset = [], [], [], []
        return body


# -- bodies ------------------------------------------------------------------------------

def text_choice(index: int, text: str, reason: str | None,
                logprobs: dict[str, Any] | None = None) -> dict[str, Any]:
    """One choice of a body or of a chunk (``reason`` None: the choice goes on)."""
    return {"text": text, "index": index, "logprobs": logprobs,
            "finish_reason": finish_reason(reason)}


def text_completion(id: str, created: int, model: str, choices: list[dict[str, Any]],
                    prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    """A ``text_completion`` body; ``choices`` from ``text_choice`` (a finished choice
    without a reason reads ``stop``)."""
    for choice in choices:
        choice["finish_reason"] = choice["finish_reason"] or "stop"
    return {"id": id, "object": "text_completion", "created": created, "model": model,
            "system_fingerprint": None, "choices": choices,
            "usage": usage(prompt_tokens, completion_tokens)}


def text_chunk(id: str, created: int, model: str, choices: list[dict[str, Any]], *,
               include_usage: bool = False, usage_body: dict[str, int] | None = None
               ) -> dict[str, Any]:
    """A streamed ``text_completion``; with ``include_usage`` every chunk carries a
    ``usage`` key, null except on the final, choice-less one (as the chat route)."""
    body: dict[str, Any] = {"id": id, "object": "text_completion", "created": created,
                            "model": model, "system_fingerprint": None, "choices": choices}
    if include_usage:
        body["usage"] = usage_body
    return body
