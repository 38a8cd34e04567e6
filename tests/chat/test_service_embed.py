"""``ChatService.embed``, the door: input checks (400s naming ``input``), the key's
rate-limit bucket (429s with headers), switching the model off, and a crash of the
embedder mid-service. Real SmolLM2 service, real all-MiniLM-L6-v2, real SQLite."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np
import pytest

from chorusline.chat import ChatService, ChatSettings, Principal, open_chat_service
from chorusline.chat.embedder import EMBEDDER_KEY
from chorusline.protocols import (
    ContextTooLong,
    InvalidRequest,
    InvalidTokenId,
    ModelNotFound,
    RateLimited,
    ServiceUnavailable,
)
from chorusline.ratelimit import Tiers
from chorusline.runtime import EngineConfig, LoadedModel, shared_embedding_model
from chorusline.store import SqliteStore

TIERS = Tiers.from_mapping({
    "default": "big",
    "tiers": {
        "big": {"requests_per_minute": 10_000, "tokens_per_minute": 10_000_000,
                "max_concurrent_streams": 1, "priority": 1},
        "few-tokens": {"requests_per_minute": 10_000, "tokens_per_minute": 20,
                       "max_concurrent_streams": 4, "priority": 1},
    },
})


@asynccontextmanager
async def service(model: LoadedModel, tmp_path: Path, tier: str = "big", *,
                  embeddings: bool = True) -> AsyncIterator[tuple[ChatService, Principal]]:
    store = SqliteStore(tmp_path / "chat.db")
    settings = ChatSettings(engine=EngineConfig(kv_cache_bytes=16 * 1024 * 1024),
                            tiers=TIERS, embeddings=embeddings)
    async with open_chat_service(settings, model=model, store=store) as chat:
        user = store.create_user("ada")
        issued = store.create_api_key(user.id, tier=tier)
        yield chat, await chat.authenticate(issued.plaintext)


async def test_texts_and_their_token_ids_embed_alike(chat_model: LoadedModel,
                                                    tmp_path: Path) -> None:
    model = shared_embedding_model()
    texts = ["The cat sat on the mat.", "Supervision trees restart what crashes."]
    async with service(chat_model, tmp_path) as (chat, principal):
        assert chat.embedding_model == "all-minilm-l6-v2"
        result = await chat.embed(principal, texts)
        ids = [row[1:-1] for row in model.tokenize(texts)]  # text tokens, no specials
        again = await chat.embed(principal, ids, dimensions=384, end_user="u-7")
        # The key's concurrency limit is 1: each call gave its stream slot back.
        usage = await chat.db(chat.store.list_usage, user_id=principal.user_id)
    # Each call is billed as a turn is: its input tokens under the embedding model.
    assert sorted((u.model, u.prompt_tokens, u.completion_tokens, u.end_user or "")
                  for u in usage) == [("all-minilm-l6-v2", result.prompt_tokens, 0, ""),
                                      ("all-minilm-l6-v2", again.prompt_tokens, 0, "u-7")]
    assert all(u.api_key_id == principal.api_key_id for u in usage)
    assert result.model == "all-minilm-l6-v2"
    assert result.vectors.shape == (2, 384) and result.vectors.dtype == np.float32
    assert result.prompt_tokens == sum(len(r) for r in model.tokenize(texts))
    assert again.prompt_tokens == result.prompt_tokens
    np.testing.assert_allclose(again.vectors, result.vectors, atol=1e-6)
    np.testing.assert_allclose(result.vectors, model.embed(model.tokenize(texts)), atol=1e-6)
    assert "x-ratelimit-remaining-tokens" in result.rate_headers


async def test_bad_inputs_are_400s_naming_input(chat_model: LoadedModel,
                                                tmp_path: Path) -> None:
    async with service(chat_model, tmp_path) as (chat, principal):
        cases: list[tuple[object, type[InvalidRequest], str]] = [
            ([], InvalidRequest, "must not be empty"),
            (["fine", ""], InvalidRequest, r"input\[1\] is an empty string"),
            ([[101, 30522]], InvalidTokenId, "outside the embedding model's vocabulary"),
            ([[5, -1]], InvalidTokenId, "outside"),
            ([[]], InvalidRequest, "empty list"),
            (["word " * 255], ContextTooLong, "257 tokens long"),
            ([[1000] * 255], ContextTooLong, "limit of 256"),
        ]
        for inputs, error, message in cases:
            with pytest.raises(error, match=message) as raised:
                await chat.embed(principal, inputs)  # type: ignore[arg-type]
            assert raised.value.param == "input" and raised.value.http_status == 400
        with pytest.raises(InvalidRequest, match="384-dimensional") as raised:
            await chat.embed(principal, ["hi"], dimensions=128)
        assert raised.value.param == "dimensions"
        # The longest accepted input: 254 text tokens plus [CLS] and [SEP].
        assert (await chat.embed(principal, [[1000] * 254])).prompt_tokens == 256


async def test_a_tiny_token_budget_refuses_with_429(chat_model: LoadedModel,
                                                   tmp_path: Path) -> None:
    async with service(chat_model, tmp_path, tier="few-tokens") as (chat, principal):
        first = await chat.embed(principal, ["one two three"])  # 5 of 20 tokens
        assert first.prompt_tokens == 5
        with pytest.raises(RateLimited, match="tokens") as raised:
            await chat.embed(principal, ["a sentence that is rather longer than the budget "
                                         "which is left for this key this minute"])
    refusal = raised.value
    assert refusal.http_status == 429 and refusal.retry_after > 0
    assert refusal.headers["x-ratelimit-limit-tokens"] == "20"


async def test_switched_off_there_is_no_embedding_model(chat_model: LoadedModel,
                                                        tmp_path: Path) -> None:
    async with service(chat_model, tmp_path, embeddings=False) as (chat, principal):
        assert chat.embedding_model is None
        assert chat.system.registry.lookup(EMBEDDER_KEY) is None
        with pytest.raises(ModelNotFound):
            await chat.embed(principal, ["hello"])


async def test_a_crashed_embedder_is_a_503_and_the_next_call_works(
        chat_model: LoadedModel, tmp_path: Path) -> None:
    async with service(chat_model, tmp_path) as (chat, principal):
        await chat.embed(principal, ["warm"])
        old = chat.system.registry.lookup(EMBEDDER_KEY)
        assert old is not None
        chat.system.faults.crash(old.path, on_message=1)
        with pytest.raises(ServiceUnavailable):
            await chat.embed(principal, ["this one meets the crash"])
        await old.join()
        result = await chat.embed(principal, ["and this one a fresh embedder"])
        assert chat.system.registry.lookup(EMBEDDER_KEY) is not old
    assert result.vectors.shape == (1, 384)
