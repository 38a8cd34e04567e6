"""``POST /v1/embeddings`` over a real socket: the official ``openai`` SDK (float and
base64, which the SDK asks for by default and decodes), and raw HTTP for every 400 with
its ``param``, the 404s and the 429."""

from __future__ import annotations

import base64
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import openai
import pytest
import trio
from openai import OpenAI

from chorusline.chat import ChatSettings, open_chat_service
from chorusline.ratelimit import Tiers
from chorusline.runtime import EngineConfig, LoadedModel, shared_embedding_model
from chorusline.store import SqliteStore
from chorusline.web import serve
from tests.web.conftest import MODEL, Web, api

EMBEDDING = "all-minilm-l6-v2"
T = TypeVar("T")
TEXTS = ["The quick brown fox.", "Ünïcödé and emoji 🚀", "def f(x): return x"]


async def in_thread(fn: Callable[[], T]) -> T:
    return await trio.to_thread.run_sync(fn)


def client(web: Web) -> OpenAI:
    return OpenAI(api_key=web.key, base_url=web.base_url, max_retries=0, timeout=120)


async def test_the_sdk_gets_the_same_vectors_as_float_and_as_base64(web: Web) -> None:
    sdk = client(web)
    default = await in_thread(lambda: sdk.embeddings.create(model=EMBEDDING, input=TEXTS))
    floats = await in_thread(lambda: sdk.embeddings.create(
        model=EMBEDDING, input=TEXTS, encoding_format="float"))
    assert default.object == "list" and default.model == EMBEDDING
    assert [d.index for d in default.data] == [0, 1, 2]
    assert all(d.object == "embedding" and len(d.embedding) == 384 for d in default.data)
    assert [d.embedding for d in default.data] == [d.embedding for d in floats.data]
    model = shared_embedding_model()
    expected = model.embed(model.tokenize(TEXTS))
    np.testing.assert_allclose(np.array([d.embedding for d in floats.data]), expected,
                               atol=1e-6)
    tokens = sum(len(r) for r in model.tokenize(TEXTS))
    assert default.usage.prompt_tokens == default.usage.total_tokens == tokens


async def test_token_id_inputs_and_a_single_string(web: Web) -> None:
    model = shared_embedding_model()
    ids = model.tokenize(["hello world"])[0][1:-1]
    sdk = client(web)
    from_ids = await in_thread(lambda: sdk.embeddings.create(model=EMBEDDING, input=ids))
    from_text = await in_thread(lambda: sdk.embeddings.create(
        model=EMBEDDING, input="hello world", dimensions=384))
    np.testing.assert_allclose(from_ids.data[0].embedding, from_text.data[0].embedding,
                               atol=1e-6)
    nested = await in_thread(lambda: sdk.embeddings.create(model=EMBEDDING,
                                                           input=[ids, ids[:1]]))
    assert len(nested.data) == 2


async def test_raw_base64_is_little_endian_float32(web: Web) -> None:
    response = await api(web, "POST", "/embeddings", json={
        "model": EMBEDDING, "input": "hello", "encoding_format": "base64", "user": "u-1"})
    assert response.status_code == 200
    assert "x-ratelimit-remaining-requests" in response.headers
    raw = base64.b64decode(response.json()["data"][0]["embedding"])
    vector = np.frombuffer(raw, dtype="<f4")
    assert vector.shape == (384,)
    floats = await api(web, "POST", "/embeddings", json={"model": EMBEDDING, "input": "hello"})
    assert floats.json()["data"][0]["embedding"] == vector.tolist()


BAD: list[tuple[dict[str, Any], str, str]] = [
    ({"input": ""}, "input", "empty string"),
    ({"input": []}, "input", "must not be empty"),
    ({"input": ["ok", ""]}, "input", "input[1]"),
    ({"input": [[]]}, "input", "empty array"),
    ({"input": [1, "a"]}, "input", "neither"),
    ({"input": ["a", 1]}, "input", "neither"),
    ({"input": [[1.5]]}, "input", "neither"),
    ({"input": [[True]]}, "input", "neither"),
    ({"input": {"text": "a"}}, "input", "must be a string"),
    ({"input": 7}, "input", "must be a string"),
    ({"input": [[30522]]}, "input", "vocabulary"),
    ({"input": [-3]}, "input", "vocabulary"),
    ({"input": "word " * 300}, "input", "limit of 256"),
    ({"input": ["x"] * 2049}, "input", "at most 2048"),
    ({"input": "hi", "encoding_format": "int8"}, "encoding_format", "'float' or 'base64'"),
    ({"input": "hi", "dimensions": 128}, "dimensions", "384-dimensional"),
    ({"input": "hi", "dimensions": 0}, "dimensions", "positive integer"),
    ({"input": "hi", "dimensions": "384"}, "dimensions", "positive integer"),
    ({"input": "hi", "user": "u" * 257}, "user", "256"),
    ({"input": "hi", "user": 5}, "user", "must be a string"),
    ({"input": "hi", "temperature": 0}, "temperature", "Unrecognized request argument"),
    ({"input": "hi", "model": None}, "model", "model parameter"),
    ({}, "input", "input parameter"),
]


@pytest.mark.parametrize(("body", "param", "message"), BAD,
                         ids=[f"{p}-{i}" for i, (_b, p, _m) in enumerate(BAD)])
async def test_every_bad_request_is_a_400_naming_its_param(
        web: Web, body: dict[str, Any], param: str, message: str) -> None:
    response = await api(web, "POST", "/embeddings", json={"model": EMBEDDING, **body})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param
    assert message in error["message"]


async def test_a_body_that_is_not_an_object_is_a_400(web: Web) -> None:
    response = await api(web, "POST", "/embeddings", json=["hi"])
    assert response.status_code == 400


async def test_an_unknown_model_is_a_404_the_sdk_raises(web: Web) -> None:
    with pytest.raises(openai.NotFoundError) as raised:
        await in_thread(lambda: client(web).embeddings.create(model=MODEL, input="hi"))
    assert raised.value.code == "model_not_found"
    response = await api(web, "POST", "/embeddings", json={"model": "nope", "input": "a"})
    assert response.status_code == 404 and response.json()["error"]["param"] == "model"


async def test_without_a_key_it_is_a_401(web: Web) -> None:
    response = await api(web, "POST", "/embeddings", auth=False,
                         json={"model": EMBEDDING, "input": "a"})
    assert response.status_code == 401


async def served(chat_model: LoadedModel, db: Path, settings: ChatSettings,
                 tier: str, requests: list[dict[str, Any]]) -> list[Any]:
    """A one-off server with ``settings``: each body POSTed in turn, the responses."""
    store = SqliteStore(db)
    async with open_chat_service(settings, model=chat_model, store=store) as chat:
        user = store.create_user("bo")
        key = store.create_api_key(user.id, tier=tier).plaintext
        shutdown = trio.Event()
        async with trio.open_nursery() as nursery:
            port = await nursery.start(partial(serve, chat, host="127.0.0.1", port=0,
                                               shutdown=shutdown, graceful_timeout=1.0))
            web = Web(chat, port, key, user.id)
            try:
                return [await api(web, "POST", "/embeddings", json=b) for b in requests]
            finally:
                shutdown.set()


async def test_switched_off_every_model_is_a_404(chat_model: LoadedModel,
                                                 tmp_path: Path) -> None:
    settings = ChatSettings(engine=EngineConfig(kv_cache_bytes=16 * 1024 * 1024),
                            embeddings=False)
    (response,) = await served(chat_model, tmp_path / "off.db", settings, "free",
                               [{"model": EMBEDDING, "input": "hi"}])
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"


async def test_a_tiny_token_budget_is_a_429_with_headers(chat_model: LoadedModel,
                                                        tmp_path: Path) -> None:
    tiers = Tiers.from_mapping({"default": "small", "tiers": {"small": {
        "requests_per_minute": 100, "tokens_per_minute": 16,
        "max_concurrent_streams": 2, "priority": 1}}})
    settings = ChatSettings(engine=EngineConfig(kv_cache_bytes=16 * 1024 * 1024),
                            tiers=tiers)
    body = {"model": EMBEDDING, "input": "five words of text here"}  # 7 tokens
    responses = await served(chat_model, tmp_path / "tiny.db", settings, "small",
                             [body, body, body])
    assert [r.status_code for r in responses] == [200, 200, 429]
    refused = responses[2]
    assert refused.json()["error"]["type"] == "rate_limit_error"
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.headers["x-ratelimit-limit-tokens"] == "16"
