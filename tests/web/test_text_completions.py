"""``POST /v1/completions`` over a real socket: the official SDK's
``client.completions.create``, streamed and not, and every refusal with its ``param``."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from chorusline.web import text_completions
from tests.web.conftest import MODEL, Web, api
from tests.web.test_openai_sdk import client, in_thread

PROMPT = "The capital of France is"
#: PROMPT as SmolLM2 tokenises it.
PROMPT_IDS = [504, 3575, 282, 4649, 314]


async def test_a_completion_continues_the_raw_prompt(web: Web) -> None:
    reply = await in_thread(lambda: client(web).completions.create(
        model=MODEL, prompt=PROMPT, temperature=0, max_tokens=8))
    assert reply.object == "text_completion" and reply.id.startswith("cmpl-")
    assert reply.model == MODEL and len(reply.choices) == 1
    choice = reply.choices[0]
    assert choice.index == 0 and choice.logprobs is None and choice.text
    assert choice.finish_reason in ("stop", "length")
    usage = reply.usage
    assert usage is not None and 0 < usage.completion_tokens <= 8
    # No chat template: the prompt is its own tokens (a handful), not a templated turn.
    assert 3 <= usage.prompt_tokens <= 8
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


async def test_the_default_budget_is_sixteen_tokens(web: Web) -> None:
    reply = await in_thread(lambda: client(web).completions.create(
        model=MODEL, prompt="Count: one, two, three,", temperature=0))
    assert reply.usage is not None and reply.usage.completion_tokens <= 16


async def test_headers_name_the_turn_and_its_rate_limits(web: Web) -> None:
    response = await api(web, "POST", "/completions",
                         json={"model": MODEL, "prompt": PROMPT, "max_tokens": 2})
    assert response.status_code == 200
    assert response.headers["X-Request-Id"] == response.json()["id"]
    assert response.headers["X-Request-Id"].startswith("cmpl-")
    assert "x-ratelimit-remaining-requests" in response.headers


async def test_streaming_gives_the_same_text_and_a_usage_chunk(web: Web) -> None:
    sdk = client(web)

    def run() -> tuple[list[Any], Any]:
        whole = sdk.completions.create(model=MODEL, prompt=PROMPT, temperature=0,
                                       max_tokens=8)
        stream = sdk.completions.create(model=MODEL, prompt=PROMPT, temperature=0,
                                        max_tokens=8, stream=True,
                                        stream_options={"include_usage": True})
        return list(stream), whole

    chunks, whole = await in_thread(run)
    assert all(c.object == "text_completion" for c in chunks)
    assert len({c.id for c in chunks}) == 1 and chunks[0].id.startswith("cmpl-")
    body, last = chunks[:-1], chunks[-1]
    assert "".join(c.choices[0].text for c in body) == whole.choices[0].text
    finishes = [c.choices[0].finish_reason for c in body if c.choices[0].finish_reason]
    assert finishes == [whole.choices[0].finish_reason]
    assert all(c.usage is None for c in body)
    assert last.choices == [] and last.usage is not None
    assert last.usage.completion_tokens == whole.usage.completion_tokens


async def test_echo_puts_the_prompt_first(web: Web) -> None:
    sdk = client(web)

    def run() -> tuple[Any, Any, list[Any]]:
        plain = sdk.completions.create(model=MODEL, prompt=PROMPT, temperature=0,
                                       max_tokens=4)
        echoed = sdk.completions.create(model=MODEL, prompt=PROMPT, temperature=0,
                                        max_tokens=4, echo=True)
        stream = sdk.completions.create(model=MODEL, prompt=PROMPT, temperature=0,
                                        max_tokens=4, echo=True, stream=True)
        return plain, echoed, list(stream)

    plain, echoed, chunks = await in_thread(run)
    assert echoed.choices[0].text == PROMPT + plain.choices[0].text
    assert chunks[0].choices[0].text == PROMPT
    assert "".join(c.choices[0].text for c in chunks) == echoed.choices[0].text


async def test_token_id_prompts_are_the_same_prompt_and_echo_as_text(web: Web) -> None:
    sdk = client(web)

    def run() -> tuple[Any, Any]:
        text = sdk.completions.create(model=MODEL, prompt=PROMPT, temperature=0,
                                      max_tokens=4)
        ids = sdk.completions.create(model=MODEL, prompt=PROMPT_IDS, temperature=0,
                                     max_tokens=4, echo=True)
        return text, ids

    text, ids = await in_thread(run)
    assert ids.usage is not None and ids.usage.prompt_tokens == len(PROMPT_IDS)
    assert ids.choices[0].text == PROMPT + text.choices[0].text


async def test_legacy_logprobs_shape(web: Web) -> None:
    reply = await in_thread(lambda: client(web).completions.create(
        model=MODEL, prompt=PROMPT, temperature=0, max_tokens=6, logprobs=3))
    choice = reply.choices[0]
    logprobs = choice.logprobs
    assert logprobs is not None and reply.usage is not None
    tokens = logprobs.tokens or []
    assert len(tokens) == reply.usage.completion_tokens
    assert len(logprobs.token_logprobs or []) == len(tokens)
    assert len(logprobs.text_offset or []) == len(tokens)
    tops = logprobs.top_logprobs or []
    assert len(tops) == len(tokens)
    for token, value, top in zip(tokens, logprobs.token_logprobs or [], tops, strict=True):
        assert value <= 0 and token in top and 1 <= len(top) <= 4
        # Greedy, no penalties: the chosen token is the most likely alternative.
        assert top[token] == max(top.values())
    # Offsets count from the start of the prompt, through the completion's text.
    offsets = logprobs.text_offset or []
    assert offsets[0] == len(PROMPT) and offsets == sorted(offsets)
    if not any(t.startswith("bytes:") for t in tokens):  # special tokens are ""
        assert "".join(tokens) == choice.text


async def test_streamed_logprobs_ride_with_their_text(web: Web) -> None:
    chunks = await in_thread(lambda: list(client(web).completions.create(
        model=MODEL, prompt=PROMPT, temperature=0, max_tokens=6, logprobs=1, stream=True)))
    tokens: list[str] = []
    text = ""
    for chunk in chunks:
        choice = chunk.choices[0]
        text += choice.text
        if choice.logprobs is not None:
            tokens += choice.logprobs.tokens or []
    assert tokens and text
    # Each token's entry came with (or after) its text, so together they spell it (a
    # special token is ""; partial characters would be ``bytes:`` names).
    if not any(t.startswith("bytes:") for t in tokens):
        assert "".join(tokens) == text


async def test_n_and_list_prompts_index_choices_as_openai(web: Web) -> None:
    reply = await in_thread(lambda: client(web).completions.create(
        model=MODEL, prompt=["The sky is", "Two plus two is"], n=2, max_tokens=3,
        temperature=0.8, seed=1))
    assert [c.index for c in reply.choices] == [0, 1, 2, 3]
    assert reply.usage is not None and reply.usage.completion_tokens <= 12
    streamed = await in_thread(lambda: list(client(web).completions.create(
        model=MODEL, prompt=[[504, 3575], [504]], n=2, max_tokens=3, stream=True)))
    finished = sorted(c.choices[0].index for c in streamed if c.choices[0].finish_reason)
    assert finished == [0, 1, 2, 3]


async def test_best_of_returns_the_n_most_likely_candidates(web: Web) -> None:
    reply = await in_thread(lambda: client(web).completions.create(
        model=MODEL, prompt=PROMPT, n=2, best_of=4, max_tokens=4, temperature=1.5,
        seed=3, logprobs=0))
    assert [c.index for c in reply.choices] == [0, 1]
    totals = [sum(c.logprobs.token_logprobs or []) for c in reply.choices
              if c.logprobs is not None]
    assert len(totals) == 2 and totals[0] >= totals[1]
    # Every candidate's tokens are generated and counted, as OpenAI bills best_of.
    assert reply.usage is not None and reply.usage.completion_tokens > sum(
        len(c.logprobs.tokens or []) for c in reply.choices if c.logprobs is not None) - 1
    plain = await api(web, "POST", "/completions", json={
        "model": MODEL, "prompt": PROMPT, "best_of": 3, "max_tokens": 2})
    assert plain.status_code == 200 and plain.json()["choices"][0]["logprobs"] is None
    assert len(plain.json()["choices"]) == 1


async def test_stop_ends_before_the_stop_string(web: Web) -> None:
    prompt = "1, 2, 3, 4, 5,"
    free = await in_thread(lambda: client(web).completions.create(
        model=MODEL, prompt=prompt, temperature=0, max_tokens=8))
    text = free.choices[0].text
    assert "," in text, text
    cut = await in_thread(lambda: client(web).completions.create(
        model=MODEL, prompt=prompt, temperature=0, max_tokens=8, stop=[","]))
    assert cut.choices[0].text == text[:text.index(",")]
    assert cut.choices[0].finish_reason == "stop"


async def test_special_token_text_in_a_prompt_is_plain_text(web: Web) -> None:
    reply = await api(web, "POST", "/completions", json={
        "model": MODEL, "prompt": "<|im_start|>", "max_tokens": 1})
    assert reply.status_code == 200
    assert reply.json()["usage"]["prompt_tokens"] > 1  # not the one special token


async def refused(web: Web, status: int = 400, **fields: Any) -> dict[str, Any]:
    response = await api(web, "POST", "/completions", json={"model": MODEL, **fields})
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    return error


@pytest.mark.parametrize(("fields", "param", "code"), [
    ({"prompt": "x", "temprature": 1}, "temprature", "unknown_parameter"),
    ({"prompt": "x", "suffix": "end"}, "suffix", None),
    ({"prompt": 5}, "prompt", None),
    ({"prompt": ["a", [1]]}, "prompt", None),
    ({}, "prompt", None),
    ({"prompt": "x", "logprobs": 6}, "logprobs", "invalid_sampling_params"),
    ({"prompt": "x", "echo": True, "logprobs": 1}, "echo", None),
    ({"prompt": "x", "best_of": 2, "stream": True}, "best_of", None),
    ({"prompt": "x", "n": 3, "best_of": 2}, "best_of", None),
    ({"prompt": "x", "temperature": 3}, "temperature", "invalid_sampling_params"),
    ({"prompt": [1, 2, 10**9]}, "prompt", "invalid_token_id"),
    ({"prompt": [[5], [-1]]}, "prompt", "invalid_token_id"),
    ({"prompt": "x", "logit_bias": {"999999": 1}}, None, "invalid_token_id"),
])
async def test_every_refusal_names_its_param(web: Web, fields: dict[str, Any],
                                             param: str | None, code: str | None) -> None:
    error = await refused(web, **fields)
    assert error["code"] == code
    if param is not None:
        assert error["param"] == param


async def test_context_overflow_is_context_length_exceeded(web: Web) -> None:
    error = await refused(web, prompt="word " * 100, max_tokens=10**6)
    assert error["code"] == "context_length_exceeded" and error["param"] == "prompt"
    ids = await refused(web, prompt=[504] * 2047, max_tokens=16)
    assert ids["code"] == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError) as caught:
        await in_thread(lambda: client(web).completions.create(
            model=MODEL, prompt="hello " * 3000, max_tokens=16))
    assert caught.value.code == "context_length_exceeded"


async def test_an_unknown_model_is_a_404(web: Web) -> None:
    error = await refused(web, 404, prompt="x", model="gpt-3.5-turbo-instruct")
    assert error["code"] == "model_not_found" and error["param"] == "model"


async def test_a_refused_second_prompt_aborts_the_first(web: Web) -> None:
    error = await refused(web, prompt=[[504, 3575], [10**9]], max_tokens=200)
    assert error["code"] == "invalid_token_id"
    for handle in web.handles:  # the first prompt's turn was started, then closed
        await handle.persisted.wait()
        assert handle.stream.finished


async def test_no_key_is_a_401(web: Web) -> None:
    response = await api(web, "POST", "/completions", auth=False,
                         json={"model": MODEL, "prompt": "x"})
    assert response.status_code == 401
    assert json.loads(response.text)["error"]["code"] == "invalid_api_key"


async def test_keep_alive_comments_while_a_long_prompt_prefills(
        web: Web, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(text_completions, "HEARTBEAT_SECONDS", 0.001)
    body = {"model": MODEL, "prompt": "Some words to read first. " * 160, "stream": True,
            "max_tokens": 2, "temperature": 0}
    response = await api(web, "POST", "/completions", json=body)
    assert response.status_code == 200
    events = response.text.split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""]
    first_data = next(i for i, e in enumerate(events) if e.startswith("data: "))
    assert first_data >= 1 and all(e == ": keep-alive" for e in events[:first_data])
