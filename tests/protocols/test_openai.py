"""``chorusline.protocols.openai`` as pure functions: the logprobs shapes, and the wire
ranges request parsing enforces."""

from __future__ import annotations

import math

import pytest

from chorusline.protocols import (
    InvalidRequest,
    InvalidSamplingParams,
    InvalidTokenId,
    openai as wire,
)


def test_a_token_entry_carries_its_text_bytes_and_alternatives() -> None:
    entry = wire.token_logprob(b" Paris", -0.25, [(b" Paris", -0.25), (b" Lyon", -3.5)])
    assert entry == {
        "token": " Paris", "logprob": -0.25, "bytes": [32, 80, 97, 114, 105, 115],
        "top_logprobs": [
            {"token": " Paris", "logprob": -0.25, "bytes": [32, 80, 97, 114, 105, 115]},
            {"token": " Lyon", "logprob": -3.5, "bytes": [32, 76, 121, 111, 110]},
        ],
    }


def test_part_of_a_character_keeps_its_raw_bytes() -> None:
    # The first two bytes of the three-byte U+2026 (…): not text on their own.
    entry = wire.token_logprob(b"\xe2\x80", -1.0)
    assert entry["bytes"] == [0xE2, 0x80] and entry["top_logprobs"] == []
    assert set(entry["token"]) == {"\ufffd"}
    assert bytes(entry["bytes"] + [0xA6]).decode() == "…"


def test_an_impossible_token_gets_a_finite_logprob_so_the_body_stays_json() -> None:
    entry = wire.token_logprob(b"a", -math.inf, [(b"b", math.nan)])
    assert entry["logprob"] == wire.MIN_LOGPROB
    assert entry["top_logprobs"][0]["logprob"] == wire.MIN_LOGPROB
    assert b"Infinity" not in wire.json_bytes(entry) and b"NaN" not in wire.json_bytes(entry)


def test_logprobs_are_null_unless_asked_for() -> None:
    body = wire.completion("id", 1, "m", [("hi", "stop"), ("yo", "length")], 3, 2)
    assert [c["logprobs"] for c in body["choices"]] == [None, None]
    entry = wire.token_logprob(b"hi", -0.5)
    body = wire.completion("id", 1, "m", [("hi", "stop"), ("", "length")], 3, 1,
                           [[entry], []])
    assert [c["logprobs"] for c in body["choices"]] == [
        {"content": [entry], "refusal": None}, {"content": [], "refusal": None}]


def test_a_delta_carries_the_entries_of_its_own_tokens() -> None:
    assert wire.delta(0, content="x")["logprobs"] is None
    assert wire.delta(0, role=True, content="", logprobs=[]) == {
        "index": 0, "delta": {"role": "assistant", "content": ""},
        "logprobs": {"content": [], "refusal": None}, "finish_reason": None}
    entry = wire.token_logprob(b"x", -0.1)
    assert wire.delta(1, content="x", logprobs=[entry])["logprobs"]["content"] == [entry]


# -- integer ranges (``WIRE_INT_RANGES``) -----------------------------------------------

def _parse(**fields: object) -> wire.ChatCompletionRequest:
    return wire.parse_chat_request({"model": "m", "messages": [{"role": "user",
                                                                "content": "hi"}], **fields})


@pytest.mark.parametrize(("field", "value"), [
    ("max_tokens", 2**63), ("max_tokens", 10**30), ("max_tokens", 2**31),
    ("max_completion_tokens", 2**31), ("max_tokens", 0), ("max_tokens", -(10**30)),
    ("n", 10**30), ("n", 17), ("seed", 2**63), ("seed", -(2**63) - 1),
    ("top_logprobs", 10**30), ("top_k", 2**31), ("top_k", -1),
])
def test_integers_outside_their_wire_range_are_invalid_sampling_params(
    field: str, value: int
) -> None:
    with pytest.raises(InvalidSamplingParams) as caught:
        _parse(**{field: value})
    assert caught.value.param == field and caught.value.http_status == 400
    low, high = wire.WIRE_INT_RANGES[field]
    assert f"[{low}, {high}]" in caught.value.message


def test_the_edges_of_each_wire_range_are_accepted() -> None:
    parsed = _parse(max_tokens=wire.MAX_TOKENS_LIMIT, seed=-(2**63), top_k=2**31 - 1, n=16,
                    logprobs=True, top_logprobs=20)
    assert parsed.sampling["max_tokens"] == 2**31 - 1 == wire.MAX_TOKENS_LIMIT
    assert parsed.sampling["seed"] == -(2**63)
    assert _parse(seed=2**63 - 1).sampling["seed"] == 2**63 - 1


def test_a_number_too_large_for_a_float_is_refused_not_a_crash() -> None:
    for fields in ({"temperature": 10**400}, {"logit_bias": {"1": -(10**400)}}):
        with pytest.raises(InvalidSamplingParams) as caught:
            _parse(**fields)
        assert caught.value.param == next(iter(fields))
    assert _parse(temperature=1).sampling["temperature"] == 1  # ints are still numbers


@pytest.mark.parametrize(("key", "error"), [
    ("4_2", InvalidRequest), (" 42", InvalidRequest), ("\u0664\u0662", InvalidRequest),
    ("", InvalidRequest), ("2147483648", InvalidTokenId), ("1" * 5000, InvalidTokenId),
    ("-1", InvalidTokenId),
])
def test_logit_bias_keys_are_plain_decimal_token_ids(key: str, error: type) -> None:
    with pytest.raises(error) as caught:
        _parse(logit_bias={key: 1})
    assert type(caught.value) is error and caught.value.param == "logit_bias"
    assert _parse(logit_bias={"2147483647": 1}).sampling["logit_bias"] == {2**31 - 1: 1}
