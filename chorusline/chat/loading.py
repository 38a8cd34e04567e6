"""What the chat service builds from a loaded model: its dependencies and its engines.

Kept apart from ``service`` so the door reads as a door: this is the one-off work of a
start (reading the vocabulary twice over, opening Redis clients), done on a worker
thread before any actor runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from chorusline.chat.deps import ChatDeps
from chorusline.chat.embedder import EncoderLike
from chorusline.chat.embeddings import loaded_once
from chorusline.chat.gpu_worker import EngineLike
from chorusline.chat.hot_cache import HotCache
from chorusline.grammar import GrammarCompiler
from chorusline.moderation import Moderator
from chorusline.protocols import TokenizerLike
from chorusline.ratelimit import RedisBucket
from chorusline.store import Store

if TYPE_CHECKING:  # the runtime imports torch: only where a model is needed
    from chorusline.runtime import EngineConfig, LoadedModel


def model_deps(model: LoadedModel, store: Store, moderator: Moderator, window: int,
               model_name: str, max_pending_chars: int, redis_url: str | None,
               max_turn_seconds: float) -> ChatDeps:
    """The turn pipeline's dependencies over ``model`` (blocking: run it on a thread).
    A base model (no chat template) cannot be served here until the chat layer serves
    several models."""
    if model.chat_template is None:
        raise ValueError(f"{model.source.name} has no chat template (a base model)")
    return ChatDeps(
        store=store,
        tokenizer=model.tokenizer,
        template=model.chat_template,
        moderator=moderator,
        model_name=model_name,
        context_window=window,
        vocab_size=model.config.vocab_size,
        max_pending_chars=max_pending_chars,
        redis_bucket=None if redis_url is None else RedisBucket.from_url(redis_url),
        hot_cache=None if redis_url is None else HotCache.from_url(redis_url),
        max_token_bytes=longest_token(model.tokenizer),
        max_turn_seconds=max_turn_seconds,
        grammars=grammar_compiler(model),
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


def engine_factory(model: LoadedModel, config: EngineConfig) -> Callable[[], EngineLike]:
    """A fresh engine (and KV cache) over the already loaded weights, per worker start."""
    from chorusline.runtime import Engine

    return lambda: Engine(model, config)


def served_embedding(enabled: bool, load: Callable[[], EncoderLike] | None
                     ) -> tuple[str, Callable[[], EncoderLike]] | None:
    """The served embedding model's name and its once-only loader (nothing loads yet)."""
    if not enabled:
        return None
    from chorusline.runtime import DEFAULT_EMBEDDING_MODEL, shared_embedding_model

    return DEFAULT_EMBEDDING_MODEL, loaded_once(load or shared_embedding_model)
