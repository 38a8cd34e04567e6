"""The OpenAI logprobs shapes as pure functions (``chorusline.protocols.openai``)."""

from __future__ import annotations

import math

from chorusline.protocols import openai as wire


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
