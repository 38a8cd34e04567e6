"""What the chat actors share: the store, the model's tokenizer and template, moderation.

The store is synchronous (sqlite3, psycopg's pool), so every call goes through ``db``,
which runs it on a worker thread under one capacity limiter: the event loop never waits
on a disk or a socket, and a burst of turns cannot open more connections than the pool.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

import trio

from chorusline.chat.context import TemplateLike, TokenizerLike
from chorusline.chat.hot_cache import HotCache
from chorusline.chat.moderation import Moderator
from chorusline.chat.ratelimit import RedisBucket
from chorusline.chat.store import Store

T = TypeVar("T")

SCHEDULER_KEY = "chorusline.scheduler"
WORKER_KEY = "chorusline.gpu-worker"


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
    default_reply_budget: int = 512
    draft_flush_interval: float = 0.25
    conversation_idle_timeout: float = 300.0
    db_threads: int = 8
    max_pending_chars: int = 64 * 1024
    #: Shared rate limits across nodes; None keeps them in process (BucketActor).
    redis_bucket: RedisBucket | None = None
    #: Recent turns of active conversations in Redis; None reads history from the store.
    hot_cache: HotCache | None = None
    _limiter: trio.CapacityLimiter | None = field(default=None, repr=False)

    async def db(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if self._limiter is None:
            self._limiter = trio.CapacityLimiter(self.db_threads)
        return await trio.to_thread.run_sync(partial(fn, *args, **kwargs), limiter=self._limiter)
