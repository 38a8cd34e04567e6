"""The official ``openai`` SDK, unmodified, against a real server (in a worker thread,
since the SDK's sync client blocks)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

import openai
import pytest
import trio
from openai import OpenAI
from openai.types.chat import ChatCompletionChunk, ChatCompletionMessageParam

from tests.web.conftest import MODEL, Web

T = TypeVar("T")
QUESTION: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "What is the capital of France?"}]


async def in_thread(fn: Callable[[], T]) -> T:
    return await trio.to_thread.run_sync(fn)


def client(web: Web, key: str | None = None) -> OpenAI:
    return OpenAI(api_key=key or web.key, base_url=web.base_url, max_retries=0, timeout=120)


async def test_models_lists_the_one_model(web: Web) -> None:
    models = await in_thread(lambda: client(web).models.list())
    assert [m.id for m in models.data] == [MODEL]
    assert models.data[0].object == "model"


async def test_a_non_streaming_completion(web: Web) -> None:
    reply = await in_thread(lambda: client(web).chat.completions.create(
        model=MODEL, messages=QUESTION, temperature=0, max_tokens=12))
    assert reply.object == "chat.completion" and reply.id.startswith("chatcmpl-")
    assert reply.model == MODEL and len(reply.choices) == 1
    choice = reply.choices[0]
    assert choice.message.role == "assistant" and "Paris" in (choice.message.content or "")
    assert choice.finish_reason in ("stop", "length")
    usage = reply.usage
    assert usage is not None and usage.prompt_tokens > 5
    assert 0 < usage.completion_tokens <= 12
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


async def test_streaming_with_usage_matches_the_non_streamed_reply(web: Web) -> None:
    sdk = client(web)

    def run() -> tuple[list[Any], str]:
        whole = sdk.chat.completions.create(
            model=MODEL, messages=QUESTION, temperature=0, max_tokens=12)
        stream = sdk.chat.completions.create(
            model=MODEL, messages=QUESTION, temperature=0, max_tokens=12,
            stream=True, stream_options={"include_usage": True})
        return list(stream), whole.choices[0].message.content or ""

    chunks, expected = await in_thread(run)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    first = chunks[0].choices[0]
    assert first.delta.role == "assistant" and not first.delta.content
    body, last = chunks[1:-1], chunks[-1]
    text = "".join(c.choices[0].delta.content or "" for c in body)
    assert text == expected and "Paris" in text
    assert all(c.choices[0].delta.role is None for c in body)
    finishes = [c.choices[0].finish_reason for c in body if c.choices[0].finish_reason]
    assert finishes == [body[-1].choices[0].finish_reason] and finishes[0] in ("stop", "length")
    assert all(c.usage is None for c in chunks[:-1])
    assert last.choices == [] and last.usage is not None
    assert 0 < last.usage.completion_tokens <= 12
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens


async def test_streaming_without_include_usage_sends_no_usage_chunk(web: Web) -> None:
    chunks = await in_thread(lambda: list(client(web).chat.completions.create(
        model=MODEL, messages=QUESTION, temperature=0, max_tokens=4,
        stream=True)))
    last = chunks[-1]
    assert isinstance(last, ChatCompletionChunk)
    assert last.choices and last.choices[0].finish_reason == "length"
    assert all(getattr(c, "usage", None) is None for c in chunks)


async def test_unknown_model_is_not_found(web: Web) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        await in_thread(lambda: client(web).chat.completions.create(
            model="gpt-9", messages=QUESTION))
    assert caught.value.code == "model_not_found" and caught.value.param == "model"


async def test_a_bad_key_is_an_authentication_error(web: Web) -> None:
    with pytest.raises(openai.AuthenticationError) as caught:
        await in_thread(lambda: client(web, "sk-wrong").chat.completions.create(
            model=MODEL, messages=QUESTION))
    assert caught.value.code == "invalid_api_key"


async def test_out_of_range_sampling_is_a_bad_request(web: Web) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"temperature": -1}, "temperature"), ({"top_p": 0}, "top_p"), ({"n": 0}, "n"),
        ({"max_tokens": 0}, "max_tokens")]
    for kwargs, param in cases:
        with pytest.raises(openai.BadRequestError) as caught:
            await in_thread(partial(client(web).chat.completions.create,
                                    model=MODEL, messages=QUESTION, **kwargs))
        assert caught.value.param == param
        assert caught.value.code == "invalid_sampling_params"


async def test_a_second_request_over_the_tier_is_rate_limited(web: Web) -> None:
    sdk = client(web, web.new_key("tiny"))
    ask = lambda: sdk.chat.completions.with_raw_response.create(  # noqa: E731
        model=MODEL, messages=QUESTION, temperature=0, max_tokens=2)
    await in_thread(ask)
    with pytest.raises(openai.RateLimitError) as caught:
        await in_thread(ask)
    headers = caught.value.response.headers
    assert int(headers["retry-after"]) >= 1
    assert any(name.startswith("x-ratelimit-") for name in headers)
    assert caught.value.code == "rate_limit_exceeded"


async def test_a_stored_conversation_turn_and_its_idempotent_retry(web: Web) -> None:
    store = web.chat.store
    conversation = store.create_conversation(web.user_id, title="t")
    sdk = client(web)

    def ask() -> str:
        reply = sdk.chat.completions.create(
            model=MODEL, messages=QUESTION, temperature=0, max_tokens=8,
            extra_body={"conversation_id": conversation.id},
            extra_headers={"Idempotency-Key": "turn-1"})
        return reply.choices[0].message.content or ""

    first = await in_thread(ask)
    await web.handles[0].persisted.wait()
    again = await in_thread(ask)
    assert again == first and web.handles[1].replayed
    messages = store.get_active_branch(web.user_id, conversation.id)
    assert [(m.role.value, m.content) for m in messages] == [
        ("user", QUESTION[0]["content"]), ("assistant", first)]
