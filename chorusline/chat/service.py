"""``ChatService``: the chat product as an async Python API.

The web layer, the tests and embedding applications all come in here. It authenticates
a key, finds (or starts) the key's SessionActor and hands it the turn; everything after
that is messages between supervised actors. Conversation management that needs no actor
(list, rename, share...) goes straight to the store on a worker thread, with the caller's
user id, so one user can never reach another's data.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import trio

from chorusline.actors import ActorRef, ActorSpec, ActorSystem, open_actor_system
from chorusline.chat.deps import ChatDeps
from chorusline.chat.gpu_worker import EngineLike
from chorusline.chat.hot_cache import HotCache
from chorusline.chat.moderation import Moderator
from chorusline.chat.ratelimit import RedisBucket, Tiers
from chorusline.chat.scheduler_actor import AdmissionLimits
from chorusline.chat.session import ChatRequest, Principal, SessionActor
from chorusline.chat.store import SqliteStore, Store
from chorusline.chat.tree import chat_tree
from chorusline.chat.turn import TurnHandle
from chorusline.protocols import Unauthorized
from chorusline.runtime import Engine, EngineConfig, LoadedModel, load_model
from chorusline.supervisors import GetChild


@dataclass
class ChatSettings:
    database_url: str = "sqlite:///chorusline.db"
    model_path: str | None = None
    model_name: str = "smollm2-135m-instruct"
    engine: EngineConfig = field(default_factory=EngineConfig)
    limits: AdmissionLimits = field(default_factory=AdmissionLimits)
    tiers: Tiers = field(default_factory=Tiers.defaults)
    context_window: int = 2048
    #: ``redis://...`` shares rate limits between nodes; None keeps them in process.
    redis_url: str | None = None


def open_store(url: str) -> Store:
    if url.startswith("sqlite:///"):
        return SqliteStore(Path(url.removeprefix("sqlite:///")))
    if url.startswith(("postgresql://", "postgres://")):
        from chorusline.chat.store import PostgresStore

        return PostgresStore(url)
    raise ValueError(f"unsupported database URL {url!r} (sqlite:/// or postgresql://)")


class ChatService:
    def __init__(self, system: ActorSystem, deps: ChatDeps, tree: ActorRef, tiers: Tiers) -> None:
        self.system = system
        self.deps = deps
        self.store = deps.store
        self.tree = tree
        self.tiers = tiers

    async def authenticate(self, api_key: str) -> Principal:
        key = await self.deps.db(self.store.authenticate_api_key, api_key)
        if key is None:
            raise Unauthorized("invalid or revoked API key")
        return Principal(key.user_id, key.id, self.tiers.get(key.tier), key.is_admin)

    async def _child(self, name: str) -> ActorRef:
        ref: ActorRef | None = await self.tree.ask(GetChild(name))
        if ref is None:
            raise RuntimeError(f"/chat/{name} is restarting")
        return ref

    async def session(self, principal: Principal) -> ActorRef:
        deps = self.deps
        buckets = await self._child("buckets")
        conversations = await self._child("conversations")
        spec = ActorSpec(
            lambda: SessionActor(principal, deps, buckets, conversations),
            name=f"session-{principal.api_key_id}",
            idle_timeout=900.0,
        )
        return await self.system.registry.get_or_spawn(
            ("session", principal.api_key_id), spec, under=await self._child("sessions")
        )

    async def chat(self, principal: Principal, request: ChatRequest) -> TurnHandle:
        session = await self.session(principal)
        handle: TurnHandle = await session.ask(request, timeout=120.0)
        return handle

    async def db(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run one store call off the event loop (conversation management)."""
        return await self.deps.db(fn, *args, **kwargs)

    def snapshot(self) -> dict[str, Any]:
        return self.system.snapshot()


def engine_factory(model: LoadedModel, config: EngineConfig) -> Callable[[], EngineLike]:
    """A fresh engine (and KV cache) over the already loaded weights, per worker start."""
    return lambda: Engine(model, config)


@asynccontextmanager
async def open_chat_service(
    settings: ChatSettings | None = None,
    *,
    system: ActorSystem | None = None,
    model: LoadedModel | None = None,
    store: Store | None = None,
    make_engine: Callable[[], EngineLike] | None = None,
) -> AsyncIterator[ChatService]:
    """Start the chat tree (in ``system``, or a new actor system) and yield the service."""
    settings = settings or ChatSettings()
    if model is None:
        model = await trio.to_thread.run_sync(lambda: load_model(settings.model_path))
    if store is None:
        store = await trio.to_thread.run_sync(open_store, settings.database_url)
    window = min(settings.context_window, model.config.max_position_embeddings)
    engine_config = settings.engine
    if engine_config.max_model_len is None:
        engine_config = replace(engine_config, max_model_len=window)
    deps = ChatDeps(
        store=store,
        tokenizer=model.tokenizer,
        template=model.chat_template,
        moderator=Moderator(),
        model_name=settings.model_name,
        context_window=window,
        max_pending_chars=settings.limits.max_pending_chars,
        redis_bucket=None if settings.redis_url is None else RedisBucket.from_url(
            settings.redis_url
        ),
        hot_cache=None if settings.redis_url is None else HotCache.from_url(settings.redis_url),
    )
    factory = make_engine or engine_factory(model, engine_config)
    async with _system(system) as actors:
        tree = await actors.spawn(chat_tree(factory, settings.limits))
        try:
            yield ChatService(actors, deps, tree, settings.tiers)
        finally:
            await actors.stop(tree)
            await trio.to_thread.run_sync(store.close)
            if deps.redis_bucket is not None:
                deps.redis_bucket.close()
            if deps.hot_cache is not None:
                deps.hot_cache.close()


@asynccontextmanager
async def _system(system: ActorSystem | None) -> AsyncIterator[ActorSystem]:
    if system is not None:
        yield system
        return
    async with open_actor_system("chorusline") as own:
        yield own
