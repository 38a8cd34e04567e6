"""End-to-end chat turns through ChatService on the real SmolLM2 engine and real SQLite."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import torch
import trio

from chorusline.chat import (
    ChatRequest,
    ChatService,
    ChatSettings,
    Principal,
    TurnHandle,
    open_chat_service,
)
from chorusline.protocols import ContextTooLong, RateLimited, SamplingParams
from chorusline.runtime import EngineConfig, LoadedModel
from chorusline.store import MessageStatus, SqliteStore
from tests.chat.streams import read

GREEDY = SamplingParams(temperature=0.0, max_tokens=12)


@asynccontextmanager
async def service(model: LoadedModel, tmp_path: Path, tier: str = "enterprise",
                  redis_url: str | None = None
                  ) -> AsyncIterator[tuple[ChatService, Principal, str]]:
    store = SqliteStore(tmp_path / "chat.db")
    settings = ChatSettings(engine=EngineConfig(kv_cache_bytes=64 * 1024 * 1024),
                            redis_url=redis_url)
    async with open_chat_service(settings, model=model, store=store) as chat:
        user = store.create_user("ada")
        issued = store.create_api_key(user.id, tier=tier)
        principal = await chat.authenticate(issued.plaintext)
        conversation = store.create_conversation(user.id, title="t")
        yield chat, principal, conversation.id


async def test_a_stored_turn_streams_and_is_persisted(
    chat_model: LoadedModel, tmp_path: Path
) -> None:
    async with service(chat_model, tmp_path) as (chat, principal, conv):
        question = "What is the capital of France?"
        handle = await chat.chat(principal, ChatRequest(GREEDY, conv, question))
        text, finish = await read(handle)
        assert "Paris" in text and finish in ("stop", "length")
        await handle.persisted.wait()
        messages = await chat.db(chat.store.get_active_branch, principal.user_id, conv)
        assert [m.role.value for m in messages] == ["user", "assistant"]
        reply = messages[1]
        assert reply.status is MessageStatus.COMPLETE and reply.content == text
        assert reply.completion_tokens and reply.prompt_tokens
        usage = await chat.db(chat.store.list_usage, user_id=principal.user_id)
        assert len(usage) == 1 and usage[0].completion_tokens == reply.completion_tokens


async def test_two_concurrent_appends_get_consecutive_seqs(
    chat_model: LoadedModel, tmp_path: Path
) -> None:
    async with service(chat_model, tmp_path) as (chat, principal, conv):
        handles: list[TurnHandle] = []

        async def turn(text: str) -> None:
            handle = await chat.chat(principal, ChatRequest(GREEDY, conv, text))
            handles.append(handle)
            await read(handle)
            await handle.persisted.wait()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(turn, "Say hi.")
            nursery.start_soon(turn, "Say bye.")
        tree = await chat.db(chat.store.get_message_tree, principal.user_id, conv)
        assert sorted(m.seq for m in tree) == [1, 2, 3, 4]
        assert all(m.status is MessageStatus.COMPLETE for m in tree)


async def test_a_retry_with_the_same_key_replays_the_turn(
    chat_model: LoadedModel, tmp_path: Path
) -> None:
    async with service(chat_model, tmp_path) as (chat, principal, conv):
        request = ChatRequest(GREEDY, conv, "Name a colour.", idempotency_key="req-1")
        first = await chat.chat(principal, request)
        text, _ = await read(first)
        await first.persisted.wait()
        again = await chat.chat(principal, request)
        assert again.replayed and again.assistant_message_id == first.assistant_message_id
        assert (await read(again))[0] == text
        tree = await chat.db(chat.store.get_message_tree, principal.user_id, conv)
        assert len(tree) == 2


async def test_gpu_worker_crash_mid_stream_loses_nothing(
    chat_model: LoadedModel, tmp_path: Path
) -> None:
    async with service(chat_model, tmp_path) as (chat, principal, conv):
        params = SamplingParams(temperature=0.0, max_tokens=24, ignore_eos=True)
        handle = await chat.chat(principal, ChatRequest(params, conv, "Count to twenty."))
        first = await handle.stream.next()
        assert first
        worker = chat.system.registry.lookup(chat.deps.models.default.worker_key)
        assert worker is not None
        chat.system.faults.kill(worker.path)
        _text, finish = await read(handle)
        assert finish == "length"
        await handle.persisted.wait()
        messages = await chat.db(chat.store.get_active_branch, principal.user_id, conv)
        assert messages[-1].status is MessageStatus.COMPLETE
        assert messages[-1].completion_tokens == 24


async def test_conversation_actor_crash_mid_turn_keeps_an_incomplete_draft(
    chat_model: LoadedModel, tmp_path: Path
) -> None:
    async with service(chat_model, tmp_path) as (chat, principal, conv):
        params = SamplingParams(temperature=0.0, max_tokens=200, ignore_eos=True)
        handle = await chat.chat(principal, ChatRequest(params, conv, "Tell me a story."))
        assert await handle.stream.next()
        path = f"/chat/conversations/conv-{conv}"
        assert chat.system.faults.kill(path)
        with pytest.raises(Exception, match="mid-reply"):
            await read(handle)
        await handle.persisted.wait()
        messages = await chat.db(chat.store.get_active_branch, principal.user_id, conv)
        assert messages[-1].role.value == "assistant"
        assert messages[-1].status is MessageStatus.INCOMPLETE
        # The conversation carries on with a fresh actor.
        again = await chat.chat(principal, ChatRequest(GREEDY, conv, "Hello?"))
        assert (await read(again))[1] in ("stop", "length")


async def test_a_reader_that_leaves_aborts_and_marks_the_reply_incomplete(
    chat_model: LoadedModel, tmp_path: Path
) -> None:
    async with service(chat_model, tmp_path) as (chat, principal, conv):
        params = SamplingParams(temperature=0.0, max_tokens=500, ignore_eos=True)
        handle = await chat.chat(principal, ChatRequest(params, conv, "Write a long poem."))
        assert await handle.stream.next()
        handle.stream.close()
        await handle.persisted.wait()
        messages = await chat.db(chat.store.get_active_branch, principal.user_id, conv)
        assert messages[-1].status is MessageStatus.INCOMPLETE
        assert messages[-1].finish_reason == "abort"
        assert (messages[-1].completion_tokens or 0) < 500


async def test_stateless_request(chat_model: LoadedModel, tmp_path: Path) -> None:
    async with service(chat_model, tmp_path) as (chat, principal, _conv):
        request = ChatRequest(GREEDY, messages=(("user", "What is 2+2?"),))
        text, finish = await read(await chat.chat(principal, request))
        assert text and finish in ("stop", "length")


async def test_rate_limits_refuse_with_headers(chat_model: LoadedModel, tmp_path: Path) -> None:
    async with service(chat_model, tmp_path, tier="free") as (chat, principal, _conv):
        streams = principal.tier.max_concurrent_streams
        request = ChatRequest(SamplingParams(max_tokens=4), messages=(("user", "hi"),))
        handles = []
        # Streams left open hold their slots: the next turn is refused before any
        # engine work, whatever the timing.
        with pytest.raises(RateLimited, match="concurrency") as info:
            for _ in range(streams + 1):
                handles.append(await chat.chat(principal, request))
        assert len(handles) == streams
        for handle in handles:
            await read(handle)
        # Finished streams give their slots back.
        assert (await read(await chat.chat(principal, request)))[1] is not None
        assert info.value.retry_after > 0
        assert "x-ratelimit-limit-requests" in info.value.headers


async def test_edit_and_regenerate_make_siblings_and_keep_the_old_branch(
    chat_model: LoadedModel, tmp_path: Path
) -> None:
    async with service(chat_model, tmp_path) as (chat, principal, conv):
        first = await chat.chat(principal, ChatRequest(GREEDY, conv, "Name a fruit."))
        await read(first)
        await first.persisted.wait()
        # Regenerate: a second reply to the same user message.
        again = await chat.chat(principal, ChatRequest(
            GREEDY, conv, regenerate_message_id=first.assistant_message_id))
        await read(again)
        await again.persisted.wait()
        # Edit: a new user message beside the first one (both are roots).
        edited = await chat.chat(principal, ChatRequest(
            GREEDY, conv, "Name a vegetable.", edit_message_id=first.user_message_id))
        await read(edited)
        await edited.persisted.wait()
        tree = await chat.db(chat.store.get_message_tree, principal.user_id, conv)
        by_id = {m.id: m for m in tree}
        replies = [m for m in tree if m.parent_message_id == first.user_message_id]
        assert {m.id for m in replies} == {first.assistant_message_id,
                                          again.assistant_message_id}
        assert by_id[edited.user_message_id].parent_message_id is None
        assert all(m.status is MessageStatus.COMPLETE for m in tree)
        active = await chat.db(chat.store.get_active_branch, principal.user_id, conv)
        assert [m.id for m in active] == [edited.user_message_id, edited.assistant_message_id]


async def test_the_redis_hot_cache_serves_the_next_plain_turn(
    chat_model: LoadedModel, tmp_path: Path
) -> None:
    url = os.environ.get("CHORUSLINE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    async with service(chat_model, tmp_path, redis_url=url) as (chat, principal, conv):
        texts = []
        for question in ("Name a colour.", "Name another one."):
            handle = await chat.chat(principal, ChatRequest(GREEDY, conv, question))
            texts.append((await read(handle))[0])
            await handle.persisted.wait()
        node = conversation_node(chat.admin.snapshot()["tree"], conv)
        assert node is not None and node["turns"] == 2 and node["cache_hits"] == 1
        assert chat.deps.hot_cache is not None
        cached = chat.deps.hot_cache.get(conv)
        assert cached is not None
        assert [e["role"] for e in cached] == ["user", "assistant"] * 2
        assert cached[-1]["content"] == texts[-1]
        chat.deps.hot_cache.invalidate(conv)


def conversation_node(node: dict[str, Any], conv: str) -> dict[str, Any] | None:
    if node.get("conversation_id") == conv:
        return node
    for child in node.get("children", []):
        found = conversation_node(child, conv)
        if found is not None:
            return found
    return None


async def test_the_users_custom_instructions_reach_the_prompt(
    chat_model: LoadedModel, tmp_path: Path
) -> None:
    async with service(chat_model, tmp_path) as (chat, principal, conv):
        plain = await chat.chat(principal, ChatRequest(GREEDY, conv, "Hi."))
        await read(plain)
        await plain.persisted.wait()
        rule = "Always answer in French, in one short sentence."
        await chat.db(chat.store.set_custom_instructions, principal.user_id, rule)
        instructed = await chat.chat(principal, ChatRequest(GREEDY, conv, "Hi again."))
        await read(instructed)
        # The same history plus the instructions' tokens: the prompt grew by more than
        # the new message alone would explain.
        assert instructed.prompt_tokens > plain.prompt_tokens + len(
            chat_model.tokenizer.encode(rule)
        )


async def test_the_window_shrinks_to_what_the_kv_cache_holds(
    chat_model: LoadedModel, tmp_path: Path
) -> None:
    # 16 MiB of fp32 KV cache holds 45 blocks of 8 tokens: 360 tokens, not 2,048.
    store = SqliteStore(tmp_path / "chat.db")
    settings = ChatSettings(engine=EngineConfig(kv_cache_bytes=16 * 1024 * 1024,
                                                dtype=torch.float32))
    async with open_chat_service(settings, model=chat_model, store=store) as chat:
        user = store.create_user("ada")
        principal = await chat.authenticate(store.create_api_key(user.id).plaintext)
        long = (("user", "Tell me about the sea and the sky. " * 40),)  # ~400 tokens
        with pytest.raises(ContextTooLong, match="maximum context length is 360 tokens"):
            await chat.chat(principal, ChatRequest(GREEDY, messages=long))  # before streaming
        short = await chat.chat(principal, ChatRequest(GREEDY, messages=(("user", "Hi"),)))
        assert (await read(short))[1] in ("stop", "length")
