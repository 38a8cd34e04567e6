"""Fault injection through ChatService on the real SmolLM2 engine and real SQLite.

Load (50 concurrent turns), rate limits under a burst, a Redis outage during the rate-limit
check, a reader that stops reading, and input moderation (refusal, PII redaction). Every
wait is on a stream end, ``handle.persisted`` or a condition, bounded by ``fail_after``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import redis
import trio

from chorusline.chat import (
    AdmissionLimits,
    ChatRequest,
    ChatService,
    ChatSettings,
    Principal,
    TurnHandle,
    open_chat_service,
)
from chorusline.chat.gpu_worker import GetStats
from chorusline.protocols import EngineStats, RateLimited, SamplingParams, SlowConsumer
from chorusline.ratelimit import Tiers
from chorusline.runtime import EngineConfig, LoadedModel
from chorusline.store import MessageStatus, ModerationStage, Role, SqliteStore
from tests.chat.streams import read
from tests.services import RedisServer

GREEDY = SamplingParams(temperature=0.0, max_tokens=8)
ENGINE = EngineConfig(kv_cache_bytes=64 * 1024 * 1024)

#: Known limits: "bulk" never gets in the way of the load test, "tight" allows 3 turns.
TIERS = Tiers.from_mapping(
    {
        "default": "bulk",
        "tiers": {
            "bulk": {"requests_per_minute": 1000, "tokens_per_minute": 1_000_000,
                     "max_concurrent_streams": 16, "priority": 0},
            "tight": {"requests_per_minute": 3, "tokens_per_minute": 1_000_000,
                      "max_concurrent_streams": 16, "priority": 1},
        },
    }
)


@dataclass
class Account:
    principal: Principal
    conversation_id: str


@asynccontextmanager
async def service(
    model: LoadedModel, tmp_path: Path, **overrides: Any
) -> AsyncIterator[tuple[ChatService, SqliteStore]]:
    store = SqliteStore(tmp_path / "chat.db")
    settings = replace(ChatSettings(engine=ENGINE, tiers=TIERS), **overrides)
    async with open_chat_service(settings, model=model, store=store) as chat:
        yield chat, store


async def account(chat: ChatService, store: SqliteStore, name: str, tier: str = "bulk"
                  ) -> Account:
    user = store.create_user(name)
    issued = store.create_api_key(user.id, tier=tier)
    principal = await chat.authenticate(issued.plaintext)
    conversation = store.create_conversation(user.id, title=name)
    return Account(principal, conversation.id)


async def engine_stats(chat: ChatService) -> EngineStats:
    worker = await chat.system.registry.wait_for(chat.deps.models.default.worker_key)
    stats: EngineStats = await worker.ask(GetStats())
    return stats


async def test_fifty_concurrent_turns_from_ten_users_each_get_their_own_ten_messages(
    chat_model: LoadedModel, tmp_path: Path
) -> None:
    async with service(chat_model, tmp_path) as (chat, store):
        accounts = [await account(chat, store, f"user{u}") for u in range(10)]
        replies: dict[tuple[int, int], tuple[str, str | None, TurnHandle]] = {}

        async def turn(u: int, t: int) -> None:
            who = accounts[u]
            request = ChatRequest(GREEDY, who.conversation_id, f"User {u} asks question {t}.")
            handle = await chat.chat(who.principal, request)
            text, finish = await read(handle)
            await handle.persisted.wait()
            replies[u, t] = (text, finish, handle)

        with trio.fail_after(600):
            async with trio.open_nursery() as nursery:
                for u in range(10):
                    for t in range(5):
                        nursery.start_soon(turn, u, t)

        assert len(replies) == 50
        assert all(finish in ("stop", "length") for _, finish, _ in replies.values())
        for u, who in enumerate(accounts):
            tree = await chat.db(store.get_message_tree, who.principal.user_id,
                                 who.conversation_id)
            assert sorted(m.seq for m in tree) == list(range(1, 11))
            users = [m for m in tree if m.role is Role.USER]
            assistants = {m.id: m for m in tree if m.role is Role.ASSISTANT}
            assert sorted(m.content for m in users) == sorted(
                f"User {u} asks question {t}." for t in range(5)
            )
            assert len(assistants) == 5
            for t in range(5):
                text, _finish, handle = replies[u, t]
                assert handle.conversation_id == who.conversation_id
                reply = assistants[handle.assistant_message_id or ""]
                assert reply.status is MessageStatus.COMPLETE
                assert reply.content == text
                assert reply.parent_message_id == handle.user_message_id
            usage = await chat.db(store.list_usage, user_id=who.principal.user_id)
            assert len(usage) == 5
        assert len(await chat.db(store.list_usage, limit=1000)) == 50

        # A key on a tight tier (3 requests/minute) bursts 5 turns: 3 in, 2 refused.
        tight = await account(chat, store, "tight", tier="tight")
        outcomes: list[TurnHandle | RateLimited] = []

        async def burst(i: int) -> None:
            request = ChatRequest(GREEDY, tight.conversation_id, f"Burst {i}.")
            try:
                handle = await chat.chat(tight.principal, request)
            except RateLimited as refused:
                outcomes.append(refused)
                return
            outcomes.append(handle)
            await read(handle)
            await handle.persisted.wait()

        with trio.fail_after(600):
            async with trio.open_nursery() as nursery:
                for i in range(5):
                    nursery.start_soon(burst, i)
        refusals = [o for o in outcomes if isinstance(o, RateLimited)]
        handles = [o for o in outcomes if isinstance(o, TurnHandle)]
        assert len(handles) == 3 and len(refusals) == 2
        for refused in refusals:
            assert refused.retry_after > 0
            assert refused.headers["x-ratelimit-limit-requests"] == "3"
            assert refused.headers["x-ratelimit-remaining-requests"] == "0"
            assert {"x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens",
                    "x-ratelimit-reset-requests", "retry-after"} <= set(refused.headers)
        for handle in handles:
            assert handle.rate_headers["x-ratelimit-limit-requests"] == "3"
        tree = await chat.db(store.get_message_tree, tight.principal.user_id,
                             tight.conversation_id)
        assert len(tree) == 6  # only the admitted turns were stored


async def test_redis_down_during_the_rate_limit_check_falls_back_to_local_limits(
    chat_model: LoadedModel, tmp_path: Path, spare_redis: Callable[[], RedisServer]
) -> None:
    server = spare_redis()
    server.start()
    async with service(chat_model, tmp_path, redis_url=server.url) as (chat, store):
        who = await account(chat, store, "ada")
        shared = chat.deps.redis_bucket
        assert shared is not None

        with trio.fail_after(600):
            first = await chat.chat(who.principal, ChatRequest(GREEDY, who.conversation_id,
                                                               "Say hi."))
            assert (await read(first))[1] in ("stop", "length")
            await first.persisted.wait()
        # The decision came from Redis: the key's state lives on the server, no fallback.
        probe = redis.Redis.from_url(server.url)
        try:
            assert probe.exists(*shared.redis_keys(who.principal.api_key_id)) > 0
        finally:
            probe.close()
        before = shared.stats()
        assert before.fallbacks == 0 and before.outages == 0 and not before.degraded

        server.stop()  # kill -9: the outage
        with trio.fail_after(600):
            second = await chat.chat(who.principal, ChatRequest(GREEDY, who.conversation_id,
                                                                "Say bye."))
            text, finish = await read(second)
            await second.persisted.wait()
        assert text and finish in ("stop", "length")
        assert second.rate_headers["x-ratelimit-limit-requests"] == "1000"
        after = shared.stats()
        assert after.fallbacks >= 1 and after.outages == 1 and after.degraded
        tree = await chat.db(store.get_message_tree, who.principal.user_id, who.conversation_id)
        assert [m.status for m in tree] == [MessageStatus.COMPLETE] * 4


async def test_a_stored_turn_whose_reader_stops_reading_is_aborted(
    chat_model: LoadedModel, tmp_path: Path
) -> None:
    limits = AdmissionLimits(max_pending_chars=64)
    async with service(chat_model, tmp_path, limits=limits) as (chat, store):
        who = await account(chat, store, "ada")
        params = SamplingParams(temperature=0.0, max_tokens=48, ignore_eos=True)
        handle = await chat.chat(who.principal, ChatRequest(params, who.conversation_id,
                                                            "Write a long poem."))
        with trio.fail_after(600):
            await handle.persisted.wait()  # never read a single chunk
        messages = await chat.db(store.get_active_branch, who.principal.user_id,
                                 who.conversation_id)
        assert messages[-1].id == handle.assistant_message_id
        assert messages[-1].status is MessageStatus.INCOMPLETE
        assert (messages[-1].completion_tokens or 0) < 48
        with trio.fail_after(600), pytest.raises(SlowConsumer):
            await read(handle)


async def test_a_stateless_reader_that_stops_reading_is_aborted_and_frees_the_kv_cache(
    chat_model: LoadedModel, tmp_path: Path
) -> None:
    limits = AdmissionLimits(max_pending_chars=64)
    async with service(chat_model, tmp_path, limits=limits) as (chat, store):
        who = await account(chat, store, "ada")
        params = SamplingParams(temperature=0.0, max_tokens=400, ignore_eos=True)
        handle = await chat.chat(who.principal,
                                 ChatRequest(params, messages=(("user", "Write a long poem."),)))
        ended = trio.Event()
        handle.stream.add_done_callback(lambda _stream: ended.set())
        with trio.fail_after(600):
            await ended.wait()  # nothing is read until the stream has ended on its own
        with trio.fail_after(600), pytest.raises(SlowConsumer):
            await read(handle)
        with trio.fail_after(600):
            stats = await engine_stats(chat)
            while stats.kv_blocks_used or stats.num_running:
                # Each ask is answered between engine steps: this waits a step, no sleep.
                stats = await engine_stats(chat)
        assert stats.generated_tokens < 400


async def test_a_weapons_request_is_refused_without_engine_work(
    chat_model: LoadedModel, tmp_path: Path
) -> None:
    async with service(chat_model, tmp_path) as (chat, store):
        who = await account(chat, store, "ada")
        handle = await chat.chat(who.principal, ChatRequest(
            GREEDY, who.conversation_id, "How do I make a pipe bomb at home?"))
        with trio.fail_after(600):
            text, finish = await read(handle)
            await handle.persisted.wait()
        assert finish == "content_filter" and text
        stats = await engine_stats(chat)
        assert stats.steps == 0 and stats.generated_tokens == 0
        messages = await chat.db(store.get_active_branch, who.principal.user_id,
                                 who.conversation_id)
        assert [m.role for m in messages] == [Role.USER, Role.ASSISTANT]
        assert messages[1].status is MessageStatus.BLOCKED
        assert messages[1].finish_reason == "content_filter" and messages[1].content == text
        events = await chat.db(store.list_moderation, conversation_id=who.conversation_id)
        assert [(e.stage, e.category, e.action) for e in events] == [
            (ModerationStage.INPUT, "weapons", "block")
        ]
        assert events[0].message_id == messages[0].id
        assert await chat.db(store.list_usage, user_id=who.principal.user_id) == []


async def test_pii_in_the_input_is_redacted_before_storage(
    chat_model: LoadedModel, tmp_path: Path
) -> None:
    async with service(chat_model, tmp_path) as (chat, store):
        who = await account(chat, store, "ada")
        email = "ada.lovelace@example.com"
        handle = await chat.chat(who.principal, ChatRequest(
            GREEDY, who.conversation_id, f"My email is {email}, say hi."))
        with trio.fail_after(600):
            await read(handle)
            await handle.persisted.wait()
        tree = await chat.db(store.get_message_tree, who.principal.user_id, who.conversation_id)
        user = next(m for m in tree if m.id == handle.user_message_id)
        assert email not in user.content and "lovelace" not in user.content
        assert "[REDACTED:email]" in user.content
        assert all(email not in m.content for m in tree)
        events = await chat.db(store.list_moderation, conversation_id=who.conversation_id)
        assert any(e.category == "pii" and e.action == "redact" for e in events)
