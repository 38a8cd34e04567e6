"""What the chat actors share: the store, the model's tokenizer and template, moderation.

The store is synchronous, so every call goes through ``db`` (a ``chat.db.Db``), which
runs it on a worker thread: the event loop never waits on a disk or a socket.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import trio

from chorusline.chat.context import TemplateLike
from chorusline.chat.db import Db
from chorusline.chat.hot_cache import HotCache
from chorusline.moderation import Moderator
from chorusline.protocols import Grammar, InvalidGrammar, TokenizerLike
from chorusline.ratelimit import RedisBucket
from chorusline.store import Store

DRIVER_KEY = "chorusline.engine-driver"
WORKER_KEY = "chorusline.gpu-worker"


class GrammarCheck(Protocol):
    """Compiles (and caches) a grammar for the model's tokenizer, or raises
    ``InvalidGrammar`` naming what it cannot take (``chorusline.grammar``)."""

    def check(self, grammar: Grammar, param: str = "response_format") -> None: ...


@dataclass
class ChatDeps:
    store: Store
    tokenizer: TokenizerLike
    template: TemplateLike
    moderator: Moderator
    model_name: str
    context_window: int
    #: The model's vocabulary size, to refuse bad token ids before a turn starts streaming.
    vocab_size: int
    #: Checks structured-output and tool grammars before any engine work.
    grammars: GrammarCheck = field(default_factory=lambda: _NoGrammars(), repr=False)
    default_reply_budget: int = 512
    draft_flush_interval: float = 0.25
    conversation_idle_timeout: float = 300.0
    max_pending_chars: int = 64 * 1024
    #: Shared rate limits across nodes; None keeps them in process (BucketActor).
    redis_bucket: RedisBucket | None = None
    #: Recent turns of active conversations in Redis; None reads history from the store.
    hot_cache: HotCache | None = None
    #: The longest token's bytes: bounds how much text a prompt can need tokenising.
    max_token_bytes: int = 128
    #: Every turn's engine request ends by then (finish reason ``timeout``), so every
    #: stream ends within a bound whatever the load.
    max_turn_seconds: float = 600.0
    #: Name an untitled conversation after its first reply (``chat.titles``).
    auto_titles: bool = True
    #: Every store call goes through here, on a worker thread (see ``chat.db``).
    db: Db = field(default_factory=Db, repr=False)
    #: Prompt preparation (templating, tokenising, moderating) runs on worker threads,
    #: at most this many at once (see ``chat.runner``).
    cpu_limiter: trio.CapacityLimiter = field(
        default_factory=lambda: trio.CapacityLimiter(2), repr=False)


class _NoGrammars:
    """For a service built without a grammar engine: every grammar is refused."""

    def check(self, grammar: Grammar, param: str = "response_format") -> None:
        raise InvalidGrammar("constrained decoding is not available on this server",
                             param=param)
