from __future__ import annotations

from typing import Any

import pytest

from chorusline.protocols import (
    InvalidSamplingParams,
    InvalidTokenId,
    SamplingParams,
    check_prompt_tokens,
)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"temperature": -0.1}, {"temperature": 2.5}, {"temperature": float("nan")},
        {"top_k": -1}, {"top_k": 1.5}, {"top_p": 0.0}, {"top_p": 1.1}, {"min_p": -0.1},
        {"min_p": 1.5}, {"seed": "7"}, {"seed": True}, {"stop": [""]}, {"stop": ["x"] * 17},
        {"max_tokens": 0}, {"max_tokens": 2.0}, {"presence_penalty": 2.1},
        {"frequency_penalty": -3}, {"frequency_penalty": float("inf")},
        {"logit_bias": {1: 101.0}}, {"logit_bias": {"1": 1.0}}, {"top_logprobs": 21},
        {"top_logprobs": 2}, {"n": 0}, {"n": 17}, {"logprobs": 1},
    ],
)  # fmt: skip
def test_invalid_values_raise(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidSamplingParams):
        SamplingParams(**kwargs)


def test_valid_values_normalise() -> None:
    p = SamplingParams(temperature=0, stop="END", stop_token_ids=[5], top_k=3, n=2,
                       logprobs=True, top_logprobs=5, logit_bias={7: -100})
    assert p.greedy and p.stop == ("END",) and p.stop_token_ids == (5,)
    assert not p.has_penalties and SamplingParams(presence_penalty=0.1).has_penalties


def test_token_ids_checked_against_vocabulary() -> None:
    SamplingParams(stop_token_ids=(9,), logit_bias={0: 1.0}).check_vocab(10)
    with pytest.raises(InvalidTokenId):
        SamplingParams(stop_token_ids=(10,)).check_vocab(10)
    with pytest.raises(InvalidTokenId):
        SamplingParams(logit_bias={-1: 1.0}).check_vocab(10)
    check_prompt_tokens([0, 9], 10)
    for bad in ([10], [-1], [True]):
        with pytest.raises(InvalidTokenId):
            check_prompt_tokens(bad, 10)
