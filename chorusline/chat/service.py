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
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import trio

from chorusline.actors import (
    ActorDead,
    ActorRef,
    ActorSpec,
    ActorSystem,
    AskTimeout,
    open_actor_system,
)
from chorusline.chat.deps import SCHEDULER_KEY, WORKER_KEY, ChatDeps
from chorusline.chat.gpu_worker import EngineLike, GetStats
from chorusline.chat.hot_cache import HotCache
from chorusline.chat.moderation import Moderator
from chorusline.chat.ratelimit import RedisBucket, Tiers
from chorusline.chat.scheduler_actor import AdmissionLimits
from chorusline.chat.session import ChatRequest, Principal, SessionActor
from chorusline.chat.store import SqliteStore, Store
from chorusline.chat.tree import chat_tree
from chorusline.chat.turn import TurnHandle
from chorusline.protocols import InvalidRequest, NotFound, ServiceUnavailable, Unauthorized
from chorusline.runtime import Engine, EngineConfig, EngineStats, LoadedModel, load_model
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
        # The engine checks token ids too, but only once the turn is admitted, after a
        # streaming response has sent its status line: checked here, a bad ``logit_bias``
        # or ``stop_token_ids`` id is a 400 like any other invalid parameter.
        request.params.check_vocab(self.deps.vocab_size)
        session = await self.session(principal)
        try:
            handle: TurnHandle = await session.ask(request, timeout=120.0)
        except ActorDead as error:  # e.g. the conversation crashed and took the session
            raise ServiceUnavailable("an actor serving this request crashed and is being "
                                     "restarted; retry the request") from error
        return handle

    @cached_property
    def _special_ids(self) -> frozenset[int]:
        return frozenset(self.deps.tokenizer.special_tokens.values())

    def token_bytes(self, token_id: int) -> bytes:
        """The bytes that logprobs report for a generated token: its vocabulary bytes, and
        none for a special (control) token. The end-of-turn token that ends a reply is
        counted in usage and has a logprob, but adds no text; reporting it as empty keeps
        the concatenated tokens equal to the reply (as vLLM does, skipping special
        tokens). An id past the tokenizer's vocabulary (padded logits) is empty too."""
        if token_id in self._special_ids:
            return b""
        try:
            return self.deps.tokenizer.token_bytes(token_id)
        except IndexError:
            return b""

    async def db(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run one store call off the event loop (conversation management)."""
        return await self.deps.db(fn, *args, **kwargs)

    def snapshot(self) -> dict[str, Any]:
        return self.system.snapshot()

    # -- operations: what the admin API (and the console behind it) may see and do -----
    async def engine_stats(self, timeout: float = 10.0) -> dict[str, Any]:
        """The scheduler's counters plus fresh engine figures asked of the GPU worker.

        The worker answers between engine steps, so the figures are exact rather than a
        step old. ``engine`` is None while the worker restarts (or does not answer in
        ``timeout``): operators need the scheduler's view most exactly then.
        """
        scheduler = self.system.registry.lookup(SCHEDULER_KEY)
        node = None if scheduler is None else _find(self.snapshot()["tree"], scheduler.path)
        engine: dict[str, Any] | None = None
        worker = self.system.registry.lookup(WORKER_KEY)
        if worker is not None:
            try:
                stats: EngineStats = await worker.ask(GetStats(), timeout=timeout)
            except (ActorDead, AskTimeout):
                pass
            else:
                engine = asdict(stats)
                engine["kv_blocks_free"] = stats.kv_blocks_total - stats.kv_blocks_used
        return {"scheduler": node, "engine": engine}

    def inject_fault(self, path: str, action: str, *, on_message: int = 1,
                     seconds: float = 0.0, fraction: float = 0.0,
                     seed: int | None = None) -> None:
        """Crash, delay, drop or kill the live actor at ``path``.

        Only live actors can be named, so a typo is a NotFound rather than a plan that
        silently waits for an actor that never comes. Thread actors (the GPU worker) run
        no trio message loop for a plan to hook into: only ``kill`` applies to them.
        """
        ref = self.system.lookup(path)
        if ref is None:
            raise NotFound(f"no live actor at {path!r}", param="path")
        faults = self.system.faults
        if action == "kill":
            if not faults.kill(path):  # it stopped since the lookup
                raise NotFound(f"no live actor at {path!r}", param="path")
            return
        if ref.statistics().kind == "thread":
            raise InvalidRequest(f"{path} is a thread actor: only 'kill' applies to it",
                                 param="action")
        try:
            if action == "crash":
                faults.crash(path, on_message=on_message)
            elif action == "delay":
                faults.delay(path, seconds)
            elif action == "drop":
                faults.drop(path, fraction, seed=seed)
            else:
                raise InvalidRequest(f"unknown fault action {action!r}", param="action")
        except ValueError as error:  # an out-of-range number, as the injector checks it
            raise InvalidRequest(str(error)) from None

    def clear_faults(self, path: str | None = None) -> list[str]:
        """Remove the fault plans (all, or ``path``'s); returns the paths that had one."""
        active = self.system.faults.active()
        if path is None:
            self.system.faults.clear()
            return sorted(active)
        if path not in active and self.system.lookup(path) is None:
            raise NotFound(f"no live actor and no fault plan at {path!r}", param="path")
        self.system.faults.clear(path)
        return [path] if path in active else []

    def active_faults(self) -> dict[str, dict[str, Any]]:
        """Fault plans in force, by actor path (a consumed one-shot crash is gone)."""
        return self.system.faults.active()


def _find(node: dict[str, Any], path: str) -> dict[str, Any] | None:
    if node.get("path") == path:
        return {k: v for k, v in node.items() if k != "children"}
    for child in node.get("children", []):
        if (found := _find(child, path)) is not None:
            return found
    return None


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
    moderator: Moderator | None = None,
) -> AsyncIterator[ChatService]:
    """Start the chat tree (in ``system``, or a new actor system) and yield the service.

    ``moderator``: the policy and classifiers for input and output (default: the built-in
    rules); an embedding app passes its own to add a model-based classifier or change
    what is blocked, redacted or flagged.
    """
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
        moderator=moderator or Moderator(),
        model_name=settings.model_name,
        context_window=window,
        vocab_size=model.config.vocab_size,
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
