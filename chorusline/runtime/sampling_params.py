"""Per-request sampling parameters, validated once at admission.

Validation lives here rather than in the sampler so that a bad request is refused with a
protocol error before it takes a scheduler slot, and the sampler's hot path can trust
every field without re-checking it on each step.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from chorusline.protocols import InvalidSamplingParams, InvalidTokenId

MAX_TOP_LOGPROBS = 20
MAX_N = 16
MAX_STOP_STRINGS = 16


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


def _finite(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidSamplingParams(f"{name} must be a finite number", param=name)
