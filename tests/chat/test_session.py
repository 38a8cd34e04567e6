"""The session actor: limits before any engine work, leases the client cannot share, one
request id per turn (real model, real store; in process and through Redis)."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from chorusline.chat import ChatRequest, ChatSettings, TurnHandle, open_chat_service
from chorusline.protocols import RateLimited, SamplingParams
from chorusline.ratelimit import Tiers
from chorusline.runtime import EngineConfig, LoadedModel
from chorusline.store import SqliteStore
from tests.chat.streams import read

#: Two streams at once, plenty of requests: the stream limit is the one under test.
TIERS = Tiers.from_mapping({"default": "two", "tiers": {"two": {
    "requests_per_minute": 1000, "tokens_per_minute": 1_000_000,
    "max_concurrent_streams": 2, "priority": 0}}})
QUESTION = (("user", "Say hello."),)
LONG = SamplingParams(temperature=0.0, max_tokens=32, ignore_eos=True)


@pytest.mark.parametrize("backend", ["local", "redis"])
async def test_one_client_request_id_cannot_share_a_rate_limit_lease(
    chat_model: LoadedModel, tmp_path: Path, backend: str, redis_url: str
) -> None:
    store = SqliteStore(tmp_path / "chat.db")
    settings = ChatSettings(engine=EngineConfig(kv_cache_bytes=64 * 1024 * 1024), tiers=TIERS,
                            redis_url=redis_url if backend == "redis" else None)
    async with open_chat_service(settings, model=chat_model, store=store) as chat:
        user = store.create_user(f"probe-{backend}-{tmp_path.name}")
        issued = store.create_api_key(user.id, tier="two")
        principal = await chat.authenticate(issued.plaintext)
        admitted: list[TurnHandle] = []
        refused: list[RateLimited] = []

        async def ask() -> None:
            request = ChatRequest(LONG, messages=QUESTION, idempotency_key="same-id")
            try:
                admitted.append(await chat.chat(principal, request))
            except RateLimited as error:
                refused.append(error)

        with trio.fail_after(300):
            async with trio.open_nursery() as nursery:
                for _ in range(8):
                    nursery.start_soon(ask)
        assert len(admitted) == 2 and len(refused) == 6
        ids = {handle.request_id for handle in admitted}
        assert len(ids) == 2 and all(i.startswith("chatcmpl-") for i in ids)
        for handle in admitted:
            await read(handle)


async def test_a_stateless_turn_records_its_usage_under_its_request_id(
    chat_model: LoadedModel, tmp_path: Path
) -> None:
    store = SqliteStore(tmp_path / "chat.db")
    settings = ChatSettings(engine=EngineConfig(kv_cache_bytes=64 * 1024 * 1024))
    async with open_chat_service(settings, model=chat_model, store=store) as chat:
        user = store.create_user("ada")
        principal = await chat.authenticate(store.create_api_key(user.id).plaintext)
        handle = await chat.chat(principal, ChatRequest(LONG, messages=QUESTION,
                                                        end_user="end-user-7"))
        _, finish = await read(handle)
        await handle.persisted.wait()
        assert finish == "length"
        (usage,) = store.list_usage(user_id=user.id)
        assert usage.request_id == handle.request_id and usage.end_user == "end-user-7"
        assert usage.completion_tokens == 32 and usage.conversation_id is None
