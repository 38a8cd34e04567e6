"""What a generation is asked to do and what it reports back: the values that travel
from the chat layer, through the engine actors, into the inference engine and back.

They live here, below every layer that uses them, so that none of those layers needs the
torch-importing runtime to name them: the web layer builds a ``SamplingParams`` from a
request body, the session mints one ``GenerationRequest`` that reaches
``Engine.add_request`` unchanged, and each step's ``RequestOutput`` and ``EngineStats``
come back up to the actors and the console.

Sampling parameters are validated once, when they are made, so a bad request is refused
with a protocol error before it takes a scheduler slot and the sampler's hot path can
trust every field without re-checking it on each step.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from chorusline.protocols.errors import InvalidSamplingParams, InvalidTokenId

MAX_TOP_LOGPROBS = 20
MAX_N = 16
MAX_STOP_STRINGS = 16
GRAMMAR_KINDS = ("json_object", "json_schema", "lark")


@dataclass(frozen=True)
class Grammar:
    """What a reply must match: constrained decoding masks, at every step, the tokens
    the grammar does not allow, so the reply matches whatever the model would have said.

    ``kind`` is ``json_object`` (any JSON object; ``source`` empty), ``json_schema``
    (``source`` is the schema as JSON text) or ``lark`` (``source`` is a grammar in the
    grammar engine's Lark dialect, which may embed JSON schemas). With ``trigger`` the
    reply is free until its text contains the trigger; from there on, what follows the
    trigger must match the grammar (a tool call the model chose to start).

    Plain text, so that it crosses the actors and the wire without the grammar engine;
    ``chorusline.grammar`` compiles it (cached by ``key``).
    """

    kind: str
    source: str = ""
    trigger: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in GRAMMAR_KINDS:
            raise InvalidSamplingParams(f"grammar kind must be one of {GRAMMAR_KINDS}",
                                        param="response_format")
        if not isinstance(self.source, str) or (self.trigger is not None
                                                and not isinstance(self.trigger, str)):
            raise InvalidSamplingParams("a grammar's source and trigger are text",
                                        param="response_format")

    @property
    def key(self) -> str:
        """A stable hash of the grammar (the compiled-grammar cache's key)."""
        digest = hashlib.sha256()
        for part in (self.kind, self.source, self.trigger or ""):
            digest.update(part.encode("utf-8", "surrogatepass") + b"\0")
        return digest.hexdigest()


@dataclass(frozen=True)
class SamplingParams:
    """OpenAI-style knobs; ``temperature == 0`` means greedy.

    ``max_tokens=None`` means "until the context window is full". ``logit_bias`` maps a
    token id to an additive bias in [-100, 100] (as OpenAI defines it). ``top_logprobs``
    alternatives are only returned when ``logprobs`` is true.
    """

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    min_p: float = 0.0
    seed: int | None = None
    stop: Sequence[str] = ()
    stop_token_ids: Sequence[int] = ()
    max_tokens: int | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logit_bias: Mapping[int, float] = field(default_factory=dict)
    logprobs: bool = False
    top_logprobs: int = 0
    n: int = 1
    ignore_eos: bool = False
    #: Constrained decoding (structured outputs, tool calls); None: free text.
    grammar: Grammar | None = None

    def __post_init__(self) -> None:
        # Accept lists from callers but store tuples so the object stays hashable-ish
        # and nobody mutates a shared default.
        if isinstance(self.stop, str):
            object.__setattr__(self, "stop", (self.stop,))
        else:
            object.__setattr__(self, "stop", tuple(self.stop))
        object.__setattr__(self, "stop_token_ids", tuple(self.stop_token_ids))
        object.__setattr__(self, "logit_bias", dict(self.logit_bias))
        self._validate()

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    @property
    def has_penalties(self) -> bool:
        return self.presence_penalty != 0.0 or self.frequency_penalty != 0.0

    def _validate(self) -> None:
        _finite("temperature", self.temperature)
        if not 0.0 <= self.temperature <= 2.0:
            raise InvalidSamplingParams("temperature must be in [0, 2]", param="temperature")
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 0:
            raise InvalidSamplingParams("top_k must be an integer >= 0", param="top_k")
        _finite("top_p", self.top_p)
        if not 0.0 < self.top_p <= 1.0:
            raise InvalidSamplingParams("top_p must be in (0, 1]", param="top_p")
        _finite("min_p", self.min_p)
        if not 0.0 <= self.min_p <= 1.0:
            raise InvalidSamplingParams("min_p must be in [0, 1]", param="min_p")
        if self.seed is not None and (
            isinstance(self.seed, bool) or not isinstance(self.seed, int)
        ):
            raise InvalidSamplingParams("seed must be an integer", param="seed")
        if len(self.stop) > MAX_STOP_STRINGS:
            raise InvalidSamplingParams(
                f"at most {MAX_STOP_STRINGS} stop strings", param="stop"
            )
        if any(not isinstance(s, str) or s == "" for s in self.stop):
            raise InvalidSamplingParams("stop strings must be non-empty strings", param="stop")
        if self.max_tokens is not None and (
            isinstance(self.max_tokens, bool)
            or not isinstance(self.max_tokens, int)
            or self.max_tokens < 1
        ):
            raise InvalidSamplingParams("max_tokens must be an integer >= 1", param="max_tokens")
        for name in ("presence_penalty", "frequency_penalty"):
            value = getattr(self, name)
            _finite(name, value)
            if not -2.0 <= value <= 2.0:
                raise InvalidSamplingParams(f"{name} must be in [-2, 2]", param=name)
        for token, bias in self.logit_bias.items():
            if isinstance(token, bool) or not isinstance(token, int):
                raise InvalidSamplingParams("logit_bias keys must be token ids", param="logit_bias")
            _finite("logit_bias", bias)
            if not -100.0 <= bias <= 100.0:
                raise InvalidSamplingParams("logit_bias values must be in [-100, 100]",
                                            param="logit_bias")
        if not isinstance(self.logprobs, bool):
            raise InvalidSamplingParams("logprobs must be a boolean", param="logprobs")
        if (
            isinstance(self.top_logprobs, bool)
            or not isinstance(self.top_logprobs, int)
            or not 0 <= self.top_logprobs <= MAX_TOP_LOGPROBS
        ):
            raise InvalidSamplingParams(
                f"top_logprobs must be in [0, {MAX_TOP_LOGPROBS}]", param="top_logprobs"
            )
        if self.top_logprobs and not self.logprobs:
            raise InvalidSamplingParams("top_logprobs needs logprobs=true", param="top_logprobs")
        if isinstance(self.n, bool) or not isinstance(self.n, int) or not 1 <= self.n <= MAX_N:
            raise InvalidSamplingParams(f"n must be in [1, {MAX_N}]", param="n")
        if self.grammar is not None and not isinstance(self.grammar, Grammar):
            raise InvalidSamplingParams("grammar must be a Grammar", param="response_format")

    def check_vocab(self, vocab_size: int) -> None:
        """Refuse token ids the model does not have; called by the engine, which knows V."""
        for token in (*self.stop_token_ids, *self.logit_bias):
            if not isinstance(token, int) or isinstance(token, bool) or not (
                0 <= token < vocab_size
            ):
                raise InvalidTokenId(f"token id {token!r} is outside the vocabulary")


def check_prompt_tokens(tokens: Sequence[int], vocab_size: int) -> None:
    """Raise InvalidTokenId for any id the embedding table cannot look up."""
    for token in tokens:
        if isinstance(token, bool) or not isinstance(token, int) or not 0 <= token < vocab_size:
            raise InvalidTokenId(f"prompt token id {token!r} is outside the vocabulary",
                                 param="prompt")


@dataclass(frozen=True)
class GenerationRequest:
    """One generation, minted once by the chat layer and handed down unchanged.

    ``request_id`` is the one id of the request everywhere: the ``X-Request-Id`` header,
    the ``chatcmpl-`` id, the engine's request id, logs, metrics and the usage row.
    ``deadline`` is a ``time.monotonic()`` instant by which the request must have ended:
    the engine finishes it there with ``finish_reason="timeout"`` (None: no bound).
    """

    request_id: str
    prompt_token_ids: tuple[int, ...]
    params: SamplingParams = field(default_factory=lambda: SamplingParams())
    priority: int = 0
    tenant: str = "default"
    deadline: float | None = None
    #: How many of the prompt's last tokens are this request's own earlier output (a
    #: continuation): a grammar replays them, so the reply goes on inside it.
    resumed_tokens: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "prompt_token_ids", tuple(self.prompt_token_ids))
        if not 0 <= self.resumed_tokens <= len(self.prompt_token_ids):
            raise ValueError("resumed_tokens must count tokens of the prompt")

    def continued(self, generated: Sequence[int]) -> GenerationRequest:
        """The same request resumed after ``generated`` tokens (an engine restart): the
        tokens join the prompt and the remaining budget shrinks by as many."""
        params = self.params
        if params.max_tokens is not None:
            params = replace(params, max_tokens=max(1, params.max_tokens - len(generated)))
        return GenerationRequest(self.request_id, (*self.prompt_token_ids, *generated), params,
                                 self.priority, self.tenant, self.deadline,
                                 self.resumed_tokens + len(generated))


@dataclass
class TokenLogprob:
    token_id: int
    logprob: float
    top_logprobs: list[tuple[int, float]] = field(default_factory=list)


@dataclass
class RequestOutput:
    """What one choice (``index``) of a request produced in one step.

    ``finish_reason`` is None while the choice goes on; its last output says why it ended:
    ``"stop"`` (a stop token or string), ``"length"`` (``max_tokens`` or the context
    window), ``"abort"`` (``Engine.abort``) or ``"timeout"`` (the request's ``deadline``
    passed; the output carries no token, only text that was held back).
    """

    request_id: str
    index: int
    new_token_ids: list[int]
    new_text: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    logprobs: list[TokenLogprob] | None = None

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None


@dataclass
class EngineStats:
    num_running: int
    num_waiting: int
    kv_blocks_total: int
    kv_blocks_used: int
    kv_usage: float
    steps: int
    generated_tokens: int
    #: The longest sequence (prompt + reply) the engine can run: its context length or
    #: what its KV cache holds, whichever is less (0: not known).
    max_sequence_tokens: int = 0
    #: Prompt tokens computed (prefill, recomputation after preemption included).
    prompt_tokens: int = 0
    #: Running sequences that lost their KV blocks to make room (recomputed later).
    preemptions: int = 0
    #: Wall time of the last step, in milliseconds.
    last_step_ms: float = 0.0


class TokenizerLike(Protocol):
    """What the engine and the chat layer need of a model's tokenizer."""

    def encode(self, text: str, *, allow_special: bool = False) -> list[int]: ...

    #: A token's bytes, for incremental detokenising and for logprobs.
    def token_bytes(self, token_id: int) -> bytes: ...

    @property
    def special_tokens(self) -> Mapping[str, int]: ...


def _finite(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidSamplingParams(f"{name} must be a finite number", param=name)
