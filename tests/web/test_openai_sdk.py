"""The official ``openai`` SDK, unmodified, against a real server (in a worker thread,
since the SDK's sync client blocks)."""

from __future__ import annotations

import codecs
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
#: The embedding model every default server also serves (``/v1/embeddings``).
EMBEDDING_MODEL = "all-minilm-l6-v2"
QUESTION: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "What is the capital of France?"}]


async def in_thread(fn: Callable[[], T]) -> T:
    return await trio.to_thread.run_sync(fn)


def client(web: Web, key: str | None = None) -> OpenAI:
    return OpenAI(api_key=key or web.key, base_url=web.base_url, max_retries=0, timeout=120)


async def test_models_lists_the_chat_and_the_embedding_model(web: Web) -> None:
    sdk = client(web)
    models = await in_thread(lambda: sdk.models.list())
    assert [m.id for m in models.data] == [MODEL, EMBEDDING_MODEL]
    assert all(m.object == "model" for m in models.data)
    for listed in models.data:
        retrieved = await in_thread(partial(sdk.models.retrieve, listed.id))
        assert retrieved == listed
    with pytest.raises(openai.NotFoundError) as caught:
        await in_thread(lambda: sdk.models.retrieve("gpt-9"))
    assert caught.value.code == "model_not_found" and caught.value.param == "model"


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


# -- logprobs ------------------------------------------------------------------------------

def entry_bytes(entries: Any) -> bytes:
    return b"".join(bytes(e.bytes or []) for e in entries)


def spelled(entries: Any) -> set[str]:
    """The text the entries' bytes spell so far: a trailing part of a character is not
    text yet while the reply goes on, and U+FFFD if the reply ended there (as the engine
    streams it)."""
    data = entry_bytes(entries)
    decode = codecs.getincrementaldecoder("utf-8")(errors="replace").decode
    return {decode(data), data.decode(errors="replace")}


def check_greedy_entries(entries: Any, content: str, k: int) -> None:
    """What greedy logprobs must satisfy whatever the model says: the chosen token is the
    most likely one, alternatives come most likely first, and the tokens spell the reply."""
    assert entries
    for e in entries:
        assert len(e.top_logprobs) == k
        values = [t.logprob for t in e.top_logprobs]
        assert values == sorted(values, reverse=True) and all(v <= 0 for v in values)
        assert (e.token, e.logprob) == (e.top_logprobs[0].token, e.top_logprobs[0].logprob)
        assert e.bytes == list(e.token.encode()) or "\ufffd" in e.token
    assert entry_bytes(entries).decode(errors="replace") == content
    if "\ufffd" not in "".join(e.token for e in entries):
        assert "".join(e.token for e in entries) == content


async def test_logprobs_in_a_non_streaming_reply(web: Web) -> None:
    reply = await in_thread(lambda: client(web).chat.completions.create(
        model=MODEL, messages=QUESTION, temperature=0, max_tokens=12, logprobs=True,
        top_logprobs=3))
    choice, usage = reply.choices[0], reply.usage
    assert choice.logprobs is not None and choice.logprobs.content is not None
    assert usage is not None and len(choice.logprobs.content) == usage.completion_tokens
    check_greedy_entries(choice.logprobs.content, choice.message.content or "", 3)
    assert "Paris" in (choice.message.content or "")


async def test_logprobs_stream_with_the_tokens_they_belong_to(web: Web) -> None:
    sdk = client(web)
    ask = partial(sdk.chat.completions.create, model=MODEL, messages=QUESTION,
                  temperature=0, max_tokens=12, logprobs=True, top_logprobs=2)

    def run() -> tuple[Any, list[ChatCompletionChunk]]:
        return ask(), list(ask(stream=True, stream_options={"include_usage": True}))

    whole, chunks = await in_thread(run)
    first = chunks[0].choices[0]
    assert first.logprobs is not None and first.logprobs.content == []
    entries: list[Any] = []
    text = ""
    for c in chunks[1:-1]:
        choice = c.choices[0]
        if choice.delta.content:
            assert choice.logprobs is not None and choice.logprobs.content
        if choice.logprobs is not None and choice.logprobs.content:
            entries += choice.logprobs.content
        text += choice.delta.content or ""
        # Entries never run ahead of the text they spell, nor lag behind it.
        assert text in spelled(entries)
    usage = chunks[-1].usage
    assert usage is not None and len(entries) == usage.completion_tokens
    check_greedy_entries(entries, text, 2)
    expected = whole.choices[0].logprobs.content
    assert [e.token for e in entries] == [e.token for e in expected]
    assert [e.logprob for e in entries] == pytest.approx([e.logprob for e in expected],
                                                         abs=1e-4)


async def test_logprobs_not_asked_for_are_null(web: Web) -> None:
    sdk = client(web)

    def run() -> tuple[Any, list[ChatCompletionChunk]]:
        ask = partial(sdk.chat.completions.create, model=MODEL, messages=QUESTION,
                      temperature=0, max_tokens=3)
        return ask(), list(ask(stream=True))

    whole, chunks = await in_thread(run)
    assert whole.choices[0].logprobs is None
    assert chunks and all(c.choices[0].logprobs is None for c in chunks)


async def test_logprobs_without_alternatives_and_with_several_choices(web: Web) -> None:
    reply = await in_thread(lambda: client(web).chat.completions.create(
        model=MODEL, messages=QUESTION, temperature=1, seed=7, max_tokens=6, n=2,
        logprobs=True))
    usage = reply.usage
    assert usage is not None
    counts = []
    for choice in reply.choices:
        assert choice.logprobs is not None and choice.logprobs.content is not None
        content = choice.logprobs.content
        assert all(e.top_logprobs == [] and e.logprob <= 0 for e in content)
        assert entry_bytes(content).decode(errors="replace") == choice.message.content
        counts.append(len(content))
    assert sum(counts) == usage.completion_tokens


async def test_bad_logprobs_requests_are_refused(web: Web) -> None:
    cases: list[dict[str, Any]] = [
        {"logprobs": True, "top_logprobs": 21}, {"logprobs": True, "top_logprobs": -1},
        {"top_logprobs": 2}, {"logprobs": False, "top_logprobs": 1}]
    for kwargs in cases:
        with pytest.raises(openai.BadRequestError) as caught:
            await in_thread(partial(client(web).chat.completions.create,
                                    model=MODEL, messages=QUESTION, **kwargs))
        assert caught.value.param == "top_logprobs", kwargs
        assert caught.value.code == "invalid_sampling_params"
        body = caught.value.body
        assert isinstance(body, dict) and body["type"] == "invalid_request_error"


async def test_logprobs_of_a_stored_conversation_turn_follow_moderation(web: Web) -> None:
    """A stored turn's text passes the output moderator, which holds the last ~200
    characters of a line back and releases the rest as the line grows; the entries come
    with the text they spell, not ahead of it, and all of them arrive."""
    conversation = web.chat.store.create_conversation(web.user_id, title="t")
    ask: list[ChatCompletionMessageParam] = [
        {"role": "user", "content": "Describe Paris in one long paragraph."}]
    chunks = await in_thread(lambda: list(client(web).chat.completions.create(
        model=MODEL, messages=ask, temperature=0, max_tokens=90, logprobs=True,
        top_logprobs=1, stream=True, stream_options={"include_usage": True},
        extra_body={"conversation_id": conversation.id})))
    entries: list[Any] = []
    seen: list[tuple[int, str]] = []  # (entries so far, text so far) after each chunk
    text = ""
    for c in chunks[1:-1]:
        choice = c.choices[0]
        entries += choice.logprobs.content if choice.logprobs is not None else []
        text += choice.delta.content or ""
        seen.append((len(entries), text))
    # The moderator cuts lines anywhere, even inside a token; that token's entry comes
    # with the end of its text. So after each chunk the text shown lies between what
    # the entries so far spell and what they spell with the next token: never behind
    # the entries, and never more than one token ahead of them.
    for n, shown in seen:
        assert shown.startswith(entry_bytes(entries[:n]).decode())
        assert entry_bytes(entries[: n + 1]).decode().startswith(shown)
    deltas = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(deltas) >= 2 and len(text) > 250, text  # text went out before the end
    usage = chunks[-1].usage
    assert usage is not None and len(entries) == usage.completion_tokens
    check_greedy_entries(entries, text, 1)


async def test_logprobs_of_characters_split_across_tokens(web: Web) -> None:
    """An emoji is several tokens, some of them part of a UTF-8 sequence: such a token
    reports its raw bytes (and U+FFFD in ``token``), and its entry waits for the delta
    that completes the character."""
    chunks = await in_thread(lambda: list(client(web).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Reply with the emoji 🎉."}],
        temperature=0, max_tokens=16, logprobs=True, top_logprobs=1, stream=True,
        stream_options={"include_usage": True})))
    entries: list[Any] = []
    text = ""
    for c in chunks[1:-1]:
        choice = c.choices[0]
        entries += choice.logprobs.content if choice.logprobs is not None else []
        text += choice.delta.content or ""
        assert text in spelled(entries)
    assert "🎉" in text and any("\ufffd" in e.token for e in entries), text
    usage = chunks[-1].usage
    assert usage is not None and len(entries) == usage.completion_tokens
    check_greedy_entries(entries, text, 1)
