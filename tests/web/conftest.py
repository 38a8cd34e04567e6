"""A real chorusline server for web tests: the SmolLM2 engine, SQLite, Hypercorn on an
ephemeral 127.0.0.1 port, all inside the test's own trio run."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx2
import pytest
import trio

from chorusline.chat import (
    ChatRequest,
    ChatService,
    ChatSettings,
    Principal,
    SqliteStore,
    Tiers,
    TurnHandle,
    open_chat_service,
)
from chorusline.runtime import EngineConfig, LoadedModel, load_model
from chorusline.web import serve

MODEL = "smollm2-135m-instruct"
TIERS = Tiers.from_mapping({
    "default": "big",
    "tiers": {
        "big": {"requests_per_minute": 10_000, "tokens_per_minute": 10_000_000,
                "max_concurrent_streams": 16, "priority": 1},
        "tiny": {"requests_per_minute": 1, "tokens_per_minute": 10_000_000,
                 "max_concurrent_streams": 1, "priority": 1},
    },
})


@pytest.fixture(scope="session")
def chat_model() -> LoadedModel:
    return load_model(progress=False)


@dataclass
class Web:
    chat: ChatService
    port: int
    key: str
    user_id: str
    #: Every TurnHandle the app obtained, in order (the service's ``chat`` is wrapped).
    handles: list[TurnHandle] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def new_key(self, tier: str) -> str:
        return str(self.chat.store.create_api_key(self.user_id, tier=tier).plaintext)


@pytest.fixture
async def web(
    chat_model: LoadedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Web]:
    store = SqliteStore(tmp_path / "chat.db")
    settings = ChatSettings(engine=EngineConfig(kv_cache_bytes=64 * 1024 * 1024),
                            model_name=MODEL, tiers=TIERS)
    async with open_chat_service(settings, model=chat_model, store=store) as chat:
        user = store.create_user("ada")
        issued = store.create_api_key(user.id, tier="big")
        handles: list[TurnHandle] = []
        original = chat.chat

        async def recording(principal: Principal, request: ChatRequest) -> Any:
            handle = await original(principal, request)
            handles.append(handle)
            return handle

        monkeypatch.setattr(chat, "chat", recording)
        shutdown = trio.Event()
        async with trio.open_nursery() as nursery:
            port = await nursery.start(partial(
                serve, chat, host="127.0.0.1", port=0, model_name=MODEL, shutdown=shutdown,
                graceful_timeout=1.0,
            ))
            yield Web(chat, port, issued.plaintext, user.id, handles)
            shutdown.set()


async def api(web: Web, method: str, path: str, *, key: str | None = None,
              json: Any = None, content: bytes | None = None,
              headers: dict[str, str] | None = None, auth: bool = True
              ) -> httpx2.Response:
    """One raw HTTP request to ``/v1{path}`` with ``key`` (the fixture's by default, none
    when ``auth`` is False), made on a thread so the server keeps running in this trio
    run."""
    sent = dict(headers or {})
    if auth:
        sent["Authorization"] = f"Bearer {key or web.key}"
    return await trio.to_thread.run_sync(lambda: httpx2.request(
        method, f"{web.base_url}{path}", json=json, content=content, headers=sent,
        timeout=120))
