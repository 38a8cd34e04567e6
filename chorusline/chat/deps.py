"""What the chat actors share: the store, the served models, moderation, the caches.

Everything model-specific (tokenizer, template, window, grammars, the engine's registry
names) lives on the turn's ``ServedModel`` (``chat.served``), found through ``models``.

The store is synchronous, so every call goes through ``db`` (a ``chat.db.Db``), which
runs it on a worker thread: the event loop never waits on a disk or a socket.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import trio

from chorusline.chat.db import Db
from chorusline.chat.hot_cache import HotCache
from chorusline.chat.served import ServedModels
from chorusline.moderation import Moderator
from chorusline.ratelimit import RedisBucket
from chorusline.store import Store


@dataclass
class ChatDeps:
    store: Store
    models: ServedModels
    moderator: Moderator
    default_reply_budget: int = 512
    draft_flush_interval: float = 0.25
    conversation_idle_timeout: float = 300.0
    max_pending_chars: int = 64 * 1024
    #: Shared rate limits across nodes; None keeps them in process (BucketActor).
    redis_bucket: RedisBucket | None = None
    #: Recent turns of active conversations in Redis; None reads history from the store.
    hot_cache: HotCache | None = None
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

