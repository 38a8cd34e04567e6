"""``chorusline.protocols.openai_completions`` as pure functions: the four prompt forms,
the legacy-only fields and their refusals, and the legacy ``logprobs`` shape."""

from __future__ import annotations

import math
from typing import Any

import pytest

from chorusline.protocols import (
    InvalidRequest,
    InvalidSamplingParams,
    UnknownParameter,
    openai_completions as cwire,
)


def parse(**fields: Any) -> cwire.CompletionRequest:
    return cwire.parse_completion_request({"model": "m", "prompt": "Hi", **fields})


def refusal(**fields: Any) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        cwire.parse_completion_request({"model": "m", **fields})
    return caught.value


@pytest.mark.parametrize(("prompt", "expected"), [
    ("Once", ("Once",)),
    (["a", "b"], ("a", "b")),
    ([1, 2, 3], ((1, 2, 3),)),
    ([[1, 2], [3]], ((1, 2), (3,))),
])
def test_the_four_prompt_forms(prompt: Any, expected: tuple[Any, ...]) -> None:
    assert parse(prompt=prompt).prompts == expected


@pytest.mark.parametrize("prompt", [None, 5, True, {"text": "x"}, [], ["a", 1], [[1], "a"],
                                    [[1, True]], [1.5], "", ["a", ""], [[]]])
def test_a_bad_prompt_is_a_400_naming_it(prompt: Any) -> None:
    body = {} if prompt is None else {"prompt": prompt}
    assert refusal(**body).param == "prompt"


def test_too_many_prompts_are_refused() -> None:
    assert refusal(prompt=["x"] * (cwire.MAX_PROMPTS + 1)).param == "prompt"
    assert len(parse(prompt=["x"] * cwire.MAX_PROMPTS).prompts) == cwire.MAX_PROMPTS


def test_defaults_are_openais() -> None:
    parsed = parse()
    assert parsed.sampling == {"max_tokens": 16, "n": 1}
    assert (parsed.n, parsed.best_of, parsed.echo, parsed.logprobs) == (1, 1, False, None)
    assert not parsed.stream and not parsed.include_usage


def test_sampling_fields_are_the_chat_routes() -> None:
    parsed = parse(max_tokens=5, temperature=0, top_p=0.5, top_k=3, min_p=0.1, seed=7,
                   stop=["\n"], presence_penalty=1, frequency_penalty=-1, n=2,
                   logit_bias={"42": 5}, user="u1", ignore_eos=True)
    assert parsed.sampling == {"max_tokens": 5, "temperature": 0, "top_p": 0.5, "top_k": 3,
                               "min_p": 0.1, "seed": 7, "stop": ("\n",), "n": 2,
                               "presence_penalty": 1, "frequency_penalty": -1,
                               "logit_bias": {42: 5}, "ignore_eos": True}
    assert refusal(prompt="x", ignore_eos="yes").param == "ignore_eos"
    assert parsed.n == 2 and parsed.user == "u1"
    assert refusal(prompt="x", temperature="hot").param == "temperature"
    assert isinstance(refusal(prompt="x", max_tokens=0), InvalidSamplingParams)


@pytest.mark.parametrize("name", ["temprature", "messages", "max_completion_tokens",
                                  "top_logprobs", "response_format"])
def test_an_unknown_field_is_refused_by_name(name: str) -> None:
    error = refusal(prompt="x", **{name: 1})
    assert isinstance(error, UnknownParameter) and error.param == name
    assert error.message == f"Unrecognized request argument supplied: {name}"


def test_suffix_is_refused_but_null_or_empty_is_nothing() -> None:
    assert refusal(prompt="x", suffix=" end").param == "suffix"
    assert "not supported" in refusal(prompt="x", suffix=" end").message
    assert refusal(prompt="x", suffix=3).param == "suffix"
    assert parse(suffix=None).prompts == parse(suffix="").prompts == ("Hi",)


def test_logprobs_is_an_integer_up_to_five() -> None:
    parsed = parse(logprobs=3)
    assert parsed.logprobs == 3
    assert parsed.sampling["logprobs"] is True and parsed.sampling["top_logprobs"] == 3
    assert parse(logprobs=0).sampling["top_logprobs"] == 0
    for bad in (6, -1, True, 1.0, "2"):
        assert refusal(prompt="x", logprobs=bad).param == "logprobs"


def test_echo_with_logprobs_is_refused() -> None:
    assert parse(echo=True).echo
    error = refusal(prompt="x", echo=True, logprobs=1)
    assert error.param == "echo" and "log probabilities" in error.message
    assert refusal(prompt="x", echo="yes").param == "echo"


def test_best_of_generates_more_and_ranks_by_logprobs() -> None:
    parsed = parse(n=2, best_of=4)
    assert (parsed.n, parsed.best_of) == (2, 4)
    assert parsed.sampling["n"] == 4 and parsed.sampling["logprobs"] is True
    assert parse(best_of=1).sampling.get("logprobs") is None
    assert refusal(prompt="x", n=3, best_of=2).param == "best_of"
    assert refusal(prompt="x", best_of=17).param == "best_of"
    assert refusal(prompt="x", best_of=3, stream=True).param == "best_of"
    assert parse(n=2, best_of=2, stream=True).stream


def test_stream_options_are_checked() -> None:
    assert parse(stream=True, stream_options={"include_usage": True}).include_usage
    assert refusal(prompt="x", stream_options={"x": 1}).param == "stream_options.x"
    assert refusal(prompt="x", user="u" * 257).param == "user"
    assert refusal(prompt="x", model=None).param == "model"


def test_legacy_tokens_name_partial_characters_as_bytes() -> None:
    assert cwire.legacy_token(b" Paris") == " Paris"
    assert cwire.legacy_token(b"\xe2\x80") == "bytes:\\xe2\\x80"


def test_legacy_logprobs_offsets_count_from_the_start_of_the_prompt() -> None:
    built = cwire.LegacyLogprobs(start=5)
    built.add(b" Pa", -0.5, [(b" Pa", -0.5), (b" Lo", -2.0)])
    built.add(b"\xe2\x80", -1.0, [])
    built.add(b"\xa6", -math.inf, [])
    built.add(b"!", -0.1, [(b"?", -0.2)])
    body = built.take()
    assert body["tokens"] == [" Pa", "bytes:\\xe2\\x80", "bytes:\\xa6", "!"]
    assert body["token_logprobs"] == [-0.5, -1.0, -9999.0, -0.1]
    assert body["top_logprobs"] == [{" Pa": -0.5, " Lo": -2.0}, {"bytes:\\xe2\\x80": -1.0},
                                    {"bytes:\\xa6": -9999.0}, {"?": -0.2, "!": -0.1}]
    # " Pa" takes 5..8; the ellipsis starts at 8 and is one character once whole.
    assert body["text_offset"] == [5, 8, 8, 9]
    built.add(b"x", -0.3, [])
    assert built.take() == {"tokens": ["x"], "token_logprobs": [-0.3],
                            "top_logprobs": [{"x": -0.3}], "text_offset": [10]}


def test_the_body_and_chunk_shapes() -> None:
    choice = cwire.text_choice(0, "Paris", "stop")
    body = cwire.text_completion("cmpl-1", 9, "m", [choice, cwire.text_choice(1, "x", None)],
                                 3, 2)
    assert body == {
        "id": "cmpl-1", "object": "text_completion", "created": 9, "model": "m",
        "system_fingerprint": None,
        "choices": [{"text": "Paris", "index": 0, "logprobs": None, "finish_reason": "stop"},
                    {"text": "x", "index": 1, "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}
    chunk = cwire.text_chunk("cmpl-1", 9, "m", [cwire.text_choice(0, "P", None)],
                             include_usage=True)
    assert chunk["object"] == "text_completion" and chunk["usage"] is None
    assert chunk["choices"][0]["finish_reason"] is None
    assert "usage" not in cwire.text_chunk("cmpl-1", 9, "m", [])
