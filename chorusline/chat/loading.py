"""What the chat service builds from a loaded model: its dependencies and its engines.

Kept apart from ``service`` so the door reads as a door: this is the one-off work of a
start (reading the vocabulary twice over, opening Redis clients), done on a worker
thread before any actor runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import trio

from chorusline.actors import ActorSystem
from chorusline.chat.deps import ChatDeps
from chorusline.chat.embedder import EncoderLike
from chorusline.chat.embeddings import loaded_once
from chorusline.chat.gpu_worker import EngineLike, GetStats
from chorusline.chat.hot_cache import HotCache
from chorusline.chat.served import ServedModel, ServedModels
from chorusline.grammar import GrammarCompiler
from chorusline.moderation import Moderator
from chorusline.protocols import EngineStats, TokenizerLike
from chorusline.ratelimit import RedisBucket
from chorusline.store import Store

if TYPE_CHECKING:  # the runtime imports torch: only where a model is needed
    from chorusline.runtime import EngineConfig, LoadedModel


@dataclass(frozen=True)
class ModelSettings:
    """One served model: its name, where it comes from, and how it is routed.

    ``path`` None means the bundled file of that name (``BUNDLED``). ``kv_cache_mb``
    overrides the engine's KV-cache budget for this model's engine alone;
    ``context_window`` caps the service-wide one. ``aliases`` and ``fallback`` are the
    router's (``chat.served``)."""

    name: str
    path: str | None = None
    kv_cache_mb: int | None = None
    context_window: int | None = None
    aliases: tuple[str, ...] = ()
    fallback: tuple[str, ...] = ()


#: The bundled models by served name, and what ``chorusline serve`` serves by default:
#: SmolLM2 (chat; also ``default`` and ``fast``) and Gemma 3 270M (a base model:
#: completions), each falling back to the other for what both can do (completions).
SMOLLM2, GEMMA3 = "smollm2-135m-instruct", "gemma-3-270m"
BUNDLED_MODELS = (
    ModelSettings(SMOLLM2, aliases=("default", "fast"), fallback=(GEMMA3,)),
    ModelSettings(GEMMA3, fallback=(SMOLLM2,)),
)


def model_path(settings: ModelSettings) -> str | None:
    """The file to load: the configured path, a bundled file by name, else an error."""
    if settings.path is not None:
        return settings.path
    if settings.name == SMOLLM2:
        return None  # ``load_model``'s default
    if settings.name == GEMMA3:
        from chorusline.runtime import gemma_model_path

        return str(gemma_model_path())
    raise ValueError(f"model {settings.name!r} needs a path (NAME=PATH): only "
                     f"{SMOLLM2} and {GEMMA3} are bundled")


def served_model(model: LoadedModel, settings: ModelSettings, window: int) -> ServedModel:
    """What the turn pipeline needs of ``model`` (blocking: it reads the vocabulary
    twice over, for the longest token and the grammar compiler; run it on a thread)."""
    from chorusline.runtime import prompt_prefix

    window = min(window, settings.context_window or window,
                 model.config.max_position_embeddings)
    return ServedModel(
        name=settings.name,
        tokenizer=model.tokenizer,
        template=model.chat_template,
        context_window=window,
        vocab_size=model.config.vocab_size,
        grammars=grammar_compiler(model),
        max_token_bytes=longest_token(model.tokenizer),
        prompt_prefix=tuple(prompt_prefix(model.tokenizer)),
        aliases=settings.aliases,
        fallback=settings.fallback,
    )


def shared_deps(models: ServedModels, store: Store, moderator: Moderator,
                max_pending_chars: int, redis_url: str | None,
                max_turn_seconds: float) -> ChatDeps:
    """The turn pipeline's dependencies (blocking: opens the Redis clients)."""
    return ChatDeps(
        store=store,
        models=models,
        moderator=moderator,
        max_pending_chars=max_pending_chars,
        redis_bucket=None if redis_url is None else RedisBucket.from_url(redis_url),
        hot_cache=None if redis_url is None else HotCache.from_url(redis_url),
        max_turn_seconds=max_turn_seconds,
    )


def longest_token(tokenizer: TokenizerLike) -> int:
    """The most bytes one token stands for (bounds prompt preparation, ``chat.context``)."""
    longest, token = 1, 0
    while True:
        try:
            longest = max(longest, len(tokenizer.token_bytes(token)))
        except (IndexError, KeyError, ValueError):
            return longest
        token += 1


def grammar_compiler(model: LoadedModel) -> GrammarCompiler:
    """The compiler that checks request grammars before any engine work (it reads the
    whole vocabulary once: a few hundred milliseconds)."""
    eos = getattr(model.tokenizer, "eos_token_id", None)
    ids = sorted({*model.config.eos_token_ids, *([eos] if isinstance(eos, int) else [])},
                 key=lambda token: token != eos)  # the tokenizer's own first
    return GrammarCompiler(model.tokenizer, vocab_size=model.config.vocab_size,
                           eos_token_ids=ids)


def engine_factory(model: LoadedModel, config: EngineConfig,
                   settings: ModelSettings | None = None) -> Callable[[], EngineLike]:
    """A fresh engine (and KV cache) over the already loaded weights, per worker start,
    with the model's own KV budget where ``settings`` gives one."""
    from chorusline.runtime import Engine

    if settings is not None and settings.kv_cache_mb is not None:
        config = replace(config, kv_cache_bytes=settings.kv_cache_mb * 1024 * 1024)
    return lambda: Engine(model, config)


def served_embedding(enabled: bool, load: Callable[[], EncoderLike] | None
                     ) -> tuple[str, Callable[[], EncoderLike]] | None:
    """The served embedding model's name and its once-only loader (nothing loads yet)."""
    if not enabled:
        return None
    from chorusline.runtime import DEFAULT_EMBEDDING_MODEL, shared_embedding_model

    return DEFAULT_EMBEDDING_MODEL, loaded_once(load or shared_embedding_model)


async def loaded_models(models: tuple[ModelSettings, ...],
                        model: LoadedModel | Mapping[str, LoadedModel] | None
                        ) -> tuple[list[ModelSettings], dict[str, LoadedModel]]:
    """The models to serve, each loaded (on a worker thread when not given), their
    fallbacks kept only where the target is served too (``BUNDLED_MODELS[:1]`` serves
    SmolLM2 alone; the command line refuses an explicit fallback to an unserved model)."""
    if model is not None and not isinstance(model, Mapping):
        wanted, loaded = [models[0]], {models[0].name: model}
    elif model is not None:
        configured = {entry.name: entry for entry in models}
        wanted = [configured.get(name, ModelSettings(name)) for name in model]
        loaded = dict(model)
    else:
        from chorusline.runtime import load_model

        wanted, loaded = list(models), {}
        for entry in models:
            path = await trio.to_thread.run_sync(model_path, entry)
            loaded[entry.name] = await trio.to_thread.run_sync(
                lambda: load_model(path))  # noqa: B023
    names = {entry.name for entry in wanted}
    return [replace(e, fallback=tuple(f for f in e.fallback if f in names))
            for e in wanted], loaded


def engine_for(entry: ModelSettings, model: LoadedModel, info: ServedModel,
               engine: EngineConfig,
               make_engine: Callable[[], EngineLike] | Mapping[str, Callable[[], EngineLike]]
               | None) -> Callable[[], EngineLike]:
    """What starts ``entry``'s engine: the injected factory for it, else a real engine
    over ``model`` with the window as its longest sequence."""
    injected = (make_engine.get(entry.name) if isinstance(make_engine, Mapping)
                else make_engine)
    if injected is not None:
        return injected
    config = engine
    if config.max_model_len is None:
        config = replace(config, max_model_len=info.context_window)
    return engine_factory(model, config, entry)


async def fit_window_to_engine(actors: ActorSystem, model: ServedModel) -> None:
    """Shrink the model's context window to the longest sequence its engine can hold, so
    a prompt its KV cache cannot take is refused before streaming (a 413), not after."""
    worker = await actors.registry.wait_for(model.worker_key)
    stats: EngineStats = await worker.ask(GetStats(), timeout=600.0)
    if 0 < stats.max_sequence_tokens < model.context_window:
        model.context_window = stats.max_sequence_tokens
