"""``ChatService``: the chat product as an async Python API, and its only door.

The web layer, the CLI and embedding applications all come in here, and nowhere else:
``chat`` starts a turn (the key's SessionActor takes it from there; everything after that
is messages between supervised actors); ``conversations``, ``accounts`` and ``admin`` are
typed facades for what needs no actor (conversation management, users and keys, the
operator's view and fault buttons), each doing the worker-thread hop to the store inside
and always asking it with the caller's user id, so one user can never reach another's
data. ``system``, ``deps`` and ``store`` stay reachable for tests and deep embedding, but
the web layer and the CLI never touch them (``tests/test_layering.py`` checks).
"""

from __future__ import annotations

import gc
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, ParamSpec, TypeVar

import trio

from chorusline.actors import (
    ActorDead,
    ActorRef,
    ActorSpec,
    ActorSystem,
    open_actor_system,
)
from chorusline.chat.accounts import Accounts, default_database_url, open_store
from chorusline.chat.admin import Admin
from chorusline.chat.conversations import Conversations
from chorusline.chat.deps import ChatDeps
from chorusline.chat.embedder import EncoderLike
from chorusline.chat.embeddings import (
    EmbedCharge,
    Embeddings,
    EmbedGrant,
    Inputs,
    checked_rows,
    run_embedder,
)
from chorusline.chat.engine_driver import AdmissionLimits
from chorusline.chat.gpu_worker import EngineLike
from chorusline.chat.loading import (
    BUNDLED_MODELS,
    ModelSettings,
    engine_for,
    fit_window_to_engine,
    loaded_models,
    served_embedding,
    served_model,
    shared_deps,
)
from chorusline.chat.principal import Principal
from chorusline.chat.router import ROUTER_KEY, Route
from chorusline.chat.runner import check_grammar, check_input
from chorusline.chat.served import CHAT, COMPLETIONS, ModelInfo, ServedModel, ServedModels
from chorusline.chat.session import SessionActor
from chorusline.chat.stopping import generating, stop_turn
from chorusline.chat.stream import TokenStream
from chorusline.chat.tree import EngineSpec, chat_tree
from chorusline.chat.turn import ChatRequest, Turn, TurnHandle
from chorusline.moderation import Moderator, Verdict
from chorusline.protocols import (
    GenerationRequest,
    ModelNotFound,
    ServiceUnavailable,
)
from chorusline.ratelimit import Tiers
from chorusline.store import Store
from chorusline.supervisors import GetChild

T = TypeVar("T")
P = ParamSpec("P")

if TYPE_CHECKING:  # the runtime imports torch: only where a model is needed
    from chorusline.runtime import EngineConfig, LoadedModel


def _engine_config() -> EngineConfig:
    from chorusline.runtime import EngineConfig

    return EngineConfig()


@dataclass
class ChatSettings:
    #: SQLite in the user's data directory unless told otherwise (see ``Accounts``).
    database_url: str = field(default_factory=default_database_url)
    #: The served models, the default first (unless one has the ``default`` alias):
    #: both bundled models unless told otherwise (``chat.loading.BUNDLED_MODELS``).
    models: tuple[ModelSettings, ...] = BUNDLED_MODELS
    #: Every model's engine settings; a model's ``kv_cache_mb`` overrides the budget.
    engine: EngineConfig = field(default_factory=_engine_config)
    limits: AdmissionLimits = field(default_factory=AdmissionLimits)
    tiers: Tiers = field(default_factory=Tiers.defaults)
    context_window: int = 2048
    #: ``redis://...`` shares rate limits between nodes; None keeps them in process.
    redis_url: str | None = None
    #: Every turn ends within this many seconds (finish reason ``timeout``).
    max_turn_seconds: float = 600.0
    #: At start, close every draft left open by a process that died (they are
    #: ``incomplete`` / ``interrupted`` from then on, in a replay and a GET alike). A
    #: second process sharing the store while the first still streams must not do it.
    sweep_open_drafts: bool = True
    #: Serve ``/v1/embeddings`` with all-MiniLM-L6-v2 (loaded on first use, once per
    #: process); False serves no embedding model at all.
    embeddings: bool = True
    #: Name an untitled conversation after its first reply (``chat.titles``).
    auto_titles: bool = True


class ChatService:
    def __init__(self, system: ActorSystem, deps: ChatDeps, tree: ActorRef, tiers: Tiers,
                 embedding: tuple[str, Callable[[], EncoderLike]] | None = None) -> None:
        self.system = system
        self.deps = deps
        self.store = deps.store
        self.tree = tree
        self.tiers = tiers
        self.conversations = Conversations(deps.db, deps.store)
        self.accounts = Accounts(deps.db, deps.store, tiers)
        self.admin = Admin(system, deps.models)
        #: The served embedding model's name and (once-only) loader, if one is served.
        self._embedding = embedding

    @property
    def model_name(self) -> str:
        """The default model's name."""
        return self.deps.models.default.name

    @property
    def models(self) -> list[ModelInfo]:
        """What each served model is and can do, the default first."""
        return [m.info() for m in self.deps.models.ordered()]

    @property
    def embedding_model(self) -> str | None:
        """The served embedding model's name; None when no embedding model is served."""
        return None if self._embedding is None else self._embedding[0]

    async def authenticate(self, api_key: str) -> Principal:
        return await self.accounts.authenticate(api_key)

    async def ping(self) -> None:
        """Raise if the store cannot answer (the readiness probe)."""
        await self.deps.db(self.store.ping)

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
        """Start one turn; its request id is minted here, once (see ``chat.turn``).

        Token ids and ``response_format``'s grammar are checked here, before any actor
        work: the engine only sees the request after a streaming response has sent its
        status line, so this is where a bad ``logit_bias`` or ``stop_token_ids`` id or a
        schema the grammar engine cannot take can still be a 400.
        """
        capability = COMPLETIONS if request.prompt is not None else CHAT
        router = await self.system.registry.wait_for(ROUTER_KEY)
        models: tuple[str, ...] = await router.ask(
            Route(request.model, principal.tier, capability))
        if _names_token_ids(request):
            models = models[:1]  # ids mean other tokens in another model's vocabulary
        first = self.deps.models[models[0]]
        request.params.check_vocab(first.vocab_size)
        if request.params.grammar is not None:  # before the turn stores anything
            await check_grammar(self.deps, first, request.params.grammar, "response_format")
        kind = "cmpl" if request.prompt is not None else "chatcmpl"  # OpenAI's id prefixes
        turn = Turn(principal, request, f"{kind}-{uuid.uuid4().hex}", models)
        recorder = self.system.recorder
        trace = recorder.open_trace(
            turn.request_id, tenant=principal.user_id, tier=principal.tier.name,
            api_key_id=principal.api_key_id, model=first.name,
            conversation_id=request.conversation_id)
        try:
            session = await self.session(principal)
            trace.add("accept", "/http", 0.0)
            handle: TurnHandle = await session.ask(turn, timeout=120.0)
        except ActorDead as error:  # e.g. the conversation crashed and took the session
            recorder.finish_trace(turn.request_id, "error", "ServiceUnavailable", trace)
            raise ServiceUnavailable("an actor serving this request crashed and is being "
                                     "restarted; retry the request") from error
        except BaseException as error:
            recorder.finish_trace(turn.request_id, "error", type(error).__name__, trace)
            raise
        if handle.persisted.is_set():  # a replay or a refusal: no reply is generated
            recorder.finish_trace(handle.request_id, "replayed" if handle.replayed
                                  else "blocked", None, trace)
        return handle

    async def stop(self, principal: Principal, request_id: str) -> None:
        """Stop the caller's own running turn (its reply is kept ``incomplete``)."""
        await stop_turn(self.system, [m.driver_key for m in self.deps.models], request_id,
                        principal=principal)

    async def stop_reply(self, principal: Principal, conversation_id: str,
                         message_id: str) -> str:
        """Stop the turn writing the assistant message ``message_id``; its request id."""
        message = await self.conversations.message(principal, conversation_id, message_id)
        request_id = generating(message)
        await self.stop(principal, request_id)
        return request_id

    def _model(self, name: str | None) -> ServedModel:
        model = self.deps.models.default if name is None else self.deps.models.lookup(name)
        if model is None:
            raise ModelNotFound(f"The model `{name}` does not exist", param="model")
        return model

    async def generate(self, request: GenerationRequest,
                       model: str | None = None) -> TokenStream:
        """Raw generation: ``request`` straight to ``model``'s (default: the default
        model's) engine actors, with no session, rate limit, moderation or record (an
        embedding application's own pipeline, or a benchmark of the actors alone).
        Closing the stream aborts the request."""
        served = self._model(model)
        request.params.check_vocab(served.vocab_size)
        driver = await self.system.registry.wait_for(served.driver_key)
        stream: TokenStream = await driver.ask(request)
        return stream

    @cached_property
    def _special_ids(self) -> dict[str, frozenset[int]]:
        return {m.name: frozenset(m.tokenizer.special_tokens.values())
                for m in self.deps.models}

    def token_bytes(self, token_id: int, model: str | None = None) -> bytes:
        """The bytes that logprobs report for a generated token: its vocabulary bytes, and
        none for a special (control) token. The end-of-turn token that ends a reply is
        counted in usage and has a logprob, but adds no text; reporting it as empty keeps
        the concatenated tokens equal to the reply (as vLLM does, skipping special
        tokens). An id past the tokenizer's vocabulary (padded logits) is empty too.
        ``model``: the model that generated it (default: the default model)."""
        served = self._model(model)
        if token_id in self._special_ids[served.name]:
            return b""
        try:
            return served.tokenizer.token_bytes(token_id)
        except IndexError:
            return b""

    async def embed(self, principal: Principal, inputs: Inputs, *,
                    dimensions: int | None = None, end_user: str | None = None) -> Embeddings:
        """Embed ``inputs`` (texts, or lists of the embedding model's token ids) in one
        call: checked and tokenised first (every bad input a 400), then charged to the
        key's bucket like a chat turn (429 when refused), then batched by the embedder
        with whatever else is waiting (see ``chat.embeddings``, ``chat.embedder``), and
        kept as a usage row (its input tokens, under the embedding model's name) as a
        turn is, so a key's bill counts both."""
        if self._embedding is None:
            raise ModelNotFound("no embedding model is served here", param="model")
        name, load = self._embedding
        rows = await checked_rows(load, inputs, dimensions, self.deps.cpu_limiter)
        tokens = sum(len(row) for row in rows)
        session = await self.session(principal)
        request_id = f"embd-{uuid.uuid4().hex}"
        try:
            grant: EmbedGrant = await session.ask(EmbedCharge(request_id, tokens),
                                                  timeout=120.0)
        except ActorDead as error:
            raise ServiceUnavailable("the session actor crashed and is being restarted; "
                                     "retry the request") from error
        try:
            vectors = await run_embedder(self.system, rows)
        finally:
            grant.release()
        await self.deps.db(self.deps.store.record_usage, user_id=principal.user_id,
                           model=name, prompt_tokens=tokens, completion_tokens=0,
                           api_key_id=principal.api_key_id, request_id=request_id,
                           end_user=end_user)
        return Embeddings(name, vectors, tokens, grant.headers)

    async def db(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """One store call off the event loop (tests and embedders; typed)."""
        return await self.deps.db(fn, *args, **kwargs)

    async def moderate(self, texts: Sequence[str]) -> list[Verdict]:
        """The input policy's verdict on each text: the check a chat turn's input gets
        (``/v1/moderations`` exposes it), on a worker thread for a long text, as the
        chat path does, so one large body does not hold the other streams up."""
        return [await check_input(self.deps, text) for text in texts]

def _names_token_ids(request: ChatRequest) -> bool:
    """Whether the request speaks in its model's token ids (a token-id prompt,
    ``logit_bias``, ``stop_token_ids``): such a turn never falls back to another model,
    whose vocabulary gives the same ids other meanings."""
    params = request.params
    return (isinstance(request.prompt, tuple) or bool(params.logit_bias)
            or bool(params.stop_token_ids))


@asynccontextmanager
async def open_chat_service(
    settings: ChatSettings | None = None,
    *,
    system: ActorSystem | None = None,
    model: LoadedModel | Mapping[str, LoadedModel] | None = None,
    store: Store | None = None,
    make_engine: Callable[[], EngineLike] | Mapping[str, Callable[[], EngineLike]]
    | None = None,
    moderator: Moderator | None = None,
    embedding_model: Callable[[], EncoderLike] | None = None,
) -> AsyncIterator[ChatService]:
    """Start the chat tree (in ``system``, or a new actor system) and yield the service.

    ``model``: already loaded models by served name, or one loaded model served as the
    first of ``settings.models`` alone (its fallbacks to models not served dropped);
    None loads every model of ``settings.models``. ``make_engine``: what builds an
    engine, for the one model or by name (tests inject held or failing engines).
    ``moderator``: the policy and classifiers for input and output (default: the
    built-in rules); an embedding app passes its own to add a model-based classifier or
    change what is blocked, redacted or flagged. ``embedding_model``: what loads the
    embedding model (default: the packaged all-MiniLM-L6-v2, once per process); it is
    called on a worker thread at the first embedding request, never at start.
    """
    settings = settings or ChatSettings()
    wanted, loaded = await loaded_models(settings.models, model)
    if store is None:
        store = await trio.to_thread.run_sync(open_store, settings.database_url)
    served: list[ServedModel] = []
    engines: list[EngineSpec] = []
    for entry in wanted:
        one = loaded[entry.name]
        info = await trio.to_thread.run_sync(
            lambda: served_model(one, entry, settings.context_window))  # noqa: B023
        served.append(info)
        engines.append((info, engine_for(entry, one, info, settings.engine, make_engine)))
    models = ServedModels(served)
    models.check_tiers(settings.tiers)
    deps = await trio.to_thread.run_sync(lambda: shared_deps(
        models, store, moderator or Moderator(), settings.limits.max_pending_chars,
        settings.redis_url, settings.max_turn_seconds))
    deps.auto_titles = settings.auto_titles
    if settings.sweep_open_drafts:
        await deps.db(store.mark_interrupted_drafts)
    embedding = served_embedding(settings.embeddings, embedding_model)
    async with _system(system) as actors:
        tree = await actors.spawn(chat_tree(models, engines, settings.limits,
                                            None if embedding is None else embedding[1]))
        try:
            for info in served:
                await fit_window_to_engine(actors, info)
            yield ChatService(actors, deps, tree, settings.tiers, embedding)
        finally:
            await actors.stop(tree)
            await trio.to_thread.run_sync(store.close)
            if deps.redis_bucket is not None:
                deps.redis_bucket.close()
            if deps.hot_cache is not None:
                deps.hot_cache.close()
            # The tree's actors, engine and KV cache are left in reference cycles (tasks,
            # closures, the registry) that only the cycle collector frees, and a stopped
            # service allocates too little to trigger it: collect now, so an app that
            # opens and closes services (a test suite: ~300 MB each) gets the memory back.
            gc.collect()


@asynccontextmanager
async def _system(system: ActorSystem | None) -> AsyncIterator[ActorSystem]:
    if system is not None:
        yield system
        return
    async with open_actor_system("chorusline") as own:
        yield own
