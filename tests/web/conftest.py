"""A real chorusline server for web tests: the SmolLM2 engine, SQLite, Hypercorn on an
ephemeral 127.0.0.1 port, all inside the test's own trio run."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx2
import pytest
import trio

from chorusline.chat import (
    AdmissionLimits,
    ChatRequest,
    ChatService,
    ChatSettings,
    EngineLike,
    Principal,
    TurnHandle,
    open_chat_service,
)
from chorusline.ratelimit import Tiers
from chorusline.runtime import Engine, EngineConfig, LoadedModel, load_model
from chorusline.store import SqliteStore
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
    #: Setting it drains and stops the server (``serve``'s ``shutdown``).
    shutdown: trio.Event = field(default_factory=trio.Event)
    #: Set (and replaced) whenever a handle is added to ``handles``.
    handled: trio.Event = field(default_factory=trio.Event)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def new_key(self, tier: str) -> str:
        return str(self.chat.store.create_api_key(self.user_id, tier=tier).plaintext)

    async def wait_for_turns(self, count: int) -> None:
        """Until ``count`` turns have started (each past admission, its handle issued)."""
        while len(self.handles) < count:
            await self.handled.wait()


class GatedEngine:
    """The real engine whose ``step`` waits for ``gate``: holding the first request's
    first step makes "the engine is still busy with it" a fact, not a race."""

    def __init__(self, engine: Engine, gate: threading.Event, entered: threading.Event
                 ) -> None:
        self.engine, self.gate, self.entered = engine, gate, entered

    def add_request(self, *args: Any, **kwargs: Any) -> None:
        self.engine.add_request(*args, **kwargs)

    def abort(self, request_id: str) -> bool:
        return self.engine.abort(request_id)

    def has_unfinished(self) -> bool:
        return self.engine.has_unfinished()

    def stats(self) -> Any:
        return self.engine.stats()

    def block_map(self) -> Any:
        return self.engine.block_map()

    def step(self) -> Any:
        self.entered.set()
        self.gate.wait(timeout=120)  # bounded: a failing test must not hang the worker
        return self.engine.step()


@asynccontextmanager
async def running_server(
    chat_model: LoadedModel | Mapping[str, LoadedModel], db: Path, *,
    config: EngineConfig | None = None,
    limits: AdmissionLimits | None = None,
    make_engine: Callable[[], EngineLike] | Mapping[str, Callable[[], EngineLike]]
    | None = None,
    **serve_options: Any,
) -> AsyncIterator[Web]:
    """A chat service and a server over it, stopped (drained) on exit; ``serve_options``
    go to ``serve`` (``graceful_timeout`` defaults to 1 s). ``chat_model`` is one model
    (served alone) or several by served name, as ``open_chat_service`` takes them."""
    store = SqliteStore(db)
    settings = ChatSettings(engine=config or EngineConfig(kv_cache_bytes=64 * 1024 * 1024),
                            tiers=TIERS,
                            **({} if limits is None else {"limits": limits}))
    async with open_chat_service(settings, model=chat_model, store=store,
                                 make_engine=make_engine) as chat:
        user = store.create_user("ada")
        issued = store.create_api_key(user.id, tier="big")
        web = Web(chat, 0, issued.plaintext, user.id)
        original = chat.chat

        async def recording(principal: Principal, request: ChatRequest) -> Any:
            handle = await original(principal, request)
            web.handles.append(handle)
            web.handled.set()
            web.handled = trio.Event()
            return handle

        chat.chat = recording
        options = {"graceful_timeout": 1.0, **serve_options}
        async with trio.open_nursery() as nursery:
            web.port = await nursery.start(partial(
                serve, chat, host="127.0.0.1", port=0,
                shutdown=web.shutdown, **options))
            try:
                yield web
            finally:
                web.shutdown.set()


@pytest.fixture
async def web(chat_model: LoadedModel, tmp_path: Path) -> AsyncIterator[Web]:
    async with running_server(chat_model, tmp_path / "chat.db") as server:
        yield server


@asynccontextmanager
async def gated_server(chat_model: LoadedModel, tmp_path: Path, limits: AdmissionLimits,
                       gate: threading.Event, entered: threading.Event, **serve_options: Any
                       ) -> AsyncIterator[Web]:
    """A server whose engine holds every step until ``gate`` is set (set on exit)."""
    config = EngineConfig(kv_cache_bytes=16 * 1024 * 1024, max_model_len=2048)
    make_engine = lambda: GatedEngine(Engine(chat_model, config), gate, entered)  # noqa: E731
    try:
        async with running_server(chat_model, tmp_path / "gated.db", config=config,
                                  limits=limits, make_engine=make_engine,
                                  **serve_options) as server:
            try:
                yield server
            finally:
                gate.set()
    finally:
        gate.set()


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
