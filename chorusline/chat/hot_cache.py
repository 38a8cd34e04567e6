"""An optional Redis hot cache of the last turns of active conversations.

It is a cache: the conversation store (SQLite or PostgreSQL) is the source of truth, and
every answer here may be thrown away. Building a prompt from it is safe because:

* **It only ever holds what the store already committed.** The caller ``put``s a list it
  read from the store, and ``append``s a message only after the store committed it. The
  list is always a *suffix* (the last ``max_messages``) of one branch, in order.
* **A partial list is never created.** ``append`` extends a list that already exists and
  is a no-op otherwise (one Lua script: ``EXISTS`` then ``RPUSH`` + ``LTRIM`` +
  ``EXPIRE``, atomic on the server); ``put`` replaces the whole list in one ``MULTI``.
  A miss therefore means "read the store", never "the conversation is this short".
* **Any edit or branch switch invalidates.** The caller calls ``invalidate`` on every
  edit, regeneration, branch switch or deletion; the next reader rebuilds the entry from
  the store.
* **A write that may not have happened is an invalidation.** If ``put``, ``append`` or
  ``invalidate`` fails (Redis down, timeout: the command may or may not have run), the
  entry can no longer be trusted. The conversation id is remembered and its key deleted
  before anything else as soon as Redis answers again (at most ``max_pending`` ids are
  remembered; beyond that the TTL takes over).
* **The TTL bounds staleness.** Every write sets ``ttl_seconds``; whatever slipped
  through (a node that died between the store commit and its invalidation, a reader that
  ``put`` a list it read just before another node's edit, a forgotten id) is gone after at
  most one TTL.

When Redis does not answer, the cache is simply empty: ``get`` returns ``None``, writes
are dropped, nothing raises. Errors are counted (``stats()``) and logged once per outage
(the error type only: connection errors can carry the URL, and the URL a password).
While degraded, Redis is tried again at most once per ``probe_interval`` seconds, so a
dead server does not add a connect timeout to every request; ``clock`` is injectable so
tests step through it exactly.

**Threading:** synchronous and thread-safe; trio code calls it in a worker thread
(``trio.to_thread.run_sync``), as with ``RedisBucket``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

__all__ = ["HotCache", "HotCacheStats"]

DEFAULT_PREFIX = "chorusline:hot:"
DEFAULT_MAX_MESSAGES = 64
DEFAULT_TTL_SECONDS = 3600
DEFAULT_PROBE_INTERVAL = 1.0
DEFAULT_MAX_PENDING = 10_000

# KEYS: 1 the conversation's list. ARGV: 1 the encoded message, 2 max messages, 3 ttl.
APPEND_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[2]), -1)
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return 1
"""

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class HotCacheStats:
    """Counters for ``/metrics``. ``misses`` includes lookups skipped while degraded;
    ``errors`` counts failed Redis calls; ``degraded`` is true during an outage."""

    hits: int
    misses: int
    errors: int
    outages: int
    degraded: bool
    pending_invalidations: int


class HotCache:
    """The last ``max_messages`` messages of a conversation's active branch, per
    conversation id, in a Redis list of JSON objects (oldest first)."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str = DEFAULT_PREFIX,
        max_messages: int = DEFAULT_MAX_MESSAGES,
        ttl_seconds: int = DEFAULT_TTL_SECONDS,
        probe_interval: float = DEFAULT_PROBE_INTERVAL,
        max_pending: int = DEFAULT_MAX_PENDING,
        clock: Callable[[], float] = time.monotonic,
        logger: logging.Logger | None = None,
    ) -> None:
        for name, value in (
            ("max_messages", max_messages),
            ("ttl_seconds", ttl_seconds),
            ("max_pending", max_pending),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if probe_interval < 0:
            raise ValueError(f"probe_interval must be non-negative, got {probe_interval!r}")
        self._client = client
        self._append = client.register_script(APPEND_SCRIPT)
        self.prefix = prefix
        self.max_messages = max_messages
        self.ttl_seconds = ttl_seconds
        self.probe_interval = probe_interval
        self.max_pending = max_pending
        self._clock = clock
        self._log = logger or logging.getLogger("chorusline.chat.hot_cache")
        self._lock = threading.Lock()
        self._down = False
        self._next_probe = 0.0
        self._pending: dict[str, None] = {}  # ids to delete on recovery (insertion order)
        self._hits = 0
        self._misses = 0
        self._errors = 0
        self._outages = 0

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        max_messages: int = DEFAULT_MAX_MESSAGES,
        ttl_seconds: int = DEFAULT_TTL_SECONDS,
        timeout: float = 0.5,
        **options: Any,
    ) -> HotCache:
        """A client tuned for a cache: short timeouts and no client-side retries, so an
        outage costs one ``timeout`` and the caller goes on with the store."""
        client = redis.Redis.from_url(
            url,
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )
        return cls(
            client,
            prefix=prefix,
            max_messages=max_messages,
            ttl_seconds=ttl_seconds,
            **options,
        )

    @property
    def client(self) -> redis.Redis:
        return self._client

    def key(self, conversation_id: str) -> str:
        if not conversation_id:
            raise ValueError("the conversation id must be a non-empty string")
        return f"{self.prefix}{conversation_id}"

    # -- the cache ------------------------------------------------------------------------
    def get(self, conversation_id: str) -> list[dict[str, Any]] | None:
        """The cached suffix of the conversation, oldest first; ``None`` on a miss, on a
        Redis error, while degraded, or if the entry cannot be decoded (then it is
        dropped)."""
        key = self.key(conversation_id)
        raw = self._call(lambda: cast(list[bytes], self._client.lrange(key, 0, -1)))
        messages = _decode(raw) if raw else None
        if raw and messages is None:  # not ours or corrupt: drop it, read the store
            self._call(lambda: self._client.delete(key))
        with self._lock:
            if messages is None:
                self._misses += 1
            else:
                self._hits += 1
        return messages

    def put(self, conversation_id: str, messages: list[dict[str, Any]]) -> bool:
        """Replace the entry with the last ``max_messages`` of ``messages`` (committed in
        the store, oldest first) and set its TTL. An empty list deletes the entry. True
        if Redis stored it; a failed put invalidates the entry once Redis is back."""
        key = self.key(conversation_id)
        encoded = [_encode(m) for m in messages[-self.max_messages :]]

        def write() -> None:
            pipe = self._client.pipeline(transaction=True)
            pipe.delete(key)
            if encoded:
                pipe.rpush(key, *encoded)
                pipe.expire(key, self.ttl_seconds)
            pipe.execute()

        return self._write(conversation_id, write)

    def append(self, conversation_id: str, message: dict[str, Any]) -> bool:
        """Add one committed message at the end, only if the entry exists (keeping the
        last ``max_messages`` and renewing the TTL). True if it was appended; False on a
        miss (nothing is created) or a Redis error (the entry is then invalidated once
        Redis is back)."""
        key = self.key(conversation_id)
        encoded = _encode(message)
        appended: list[bool] = [False]

        def write() -> None:
            reply = self._append(keys=[key], args=[encoded, self.max_messages, self.ttl_seconds])
            appended[0] = int(cast(int, reply)) == 1

        return self._write(conversation_id, write) and appended[0]

    def invalidate(self, conversation_id: str) -> bool:
        """Drop the entry (call on every edit, regeneration, branch switch, deletion).
        True if Redis confirmed; otherwise it is retried as soon as Redis answers."""
        key = self.key(conversation_id)
        return self._write(conversation_id, lambda: self._client.delete(key))

    def stats(self) -> HotCacheStats:
        with self._lock:
            return HotCacheStats(
                hits=self._hits,
                misses=self._misses,
                errors=self._errors,
                outages=self._outages,
                degraded=self._down,
                pending_invalidations=len(self._pending),
            )

    def close(self) -> None:
        try:
            self._client.close()
        except (RedisError, OSError) as exc:  # closing a dead connection: nothing to do
            self._log.debug("closing the hot cache's client failed: %s", type(exc).__name__)

    # -- outage handling ------------------------------------------------------------------
    def _write(self, conversation_id: str, write: Callable[[], object]) -> bool:
        """Run a write; if it fails or is skipped, the entry may be stale or missing a
        message, so remember to delete it when Redis is back."""

        def run() -> bool:
            write()
            return True

        done = self._call(run) is not None
        if not done:
            with self._lock:
                self._pending.pop(conversation_id, None)
                self._pending[conversation_id] = None
                while len(self._pending) > self.max_pending:  # the TTL covers the oldest
                    del self._pending[next(iter(self._pending))]
        return done

    def _call(self, operation: Callable[[], _T]) -> _T | None:
        """``operation()``, or None if Redis failed or is not to be tried yet. Deletes the
        remembered invalidations first whenever the last attempt failed."""
        with self._lock:
            if self._down and self._clock() < self._next_probe:
                return None
            pending = list(self._pending) if self._pending else []
        try:
            if pending:
                self._client.delete(*(self.key(c) for c in pending))
            result = operation()
        except (RedisError, OSError) as exc:
            self._failed(exc)
            return None
        with self._lock:
            for conversation_id in pending:
                self._pending.pop(conversation_id, None)
            recovered, self._down = self._down, False
        if recovered:
            self._log.info("hot cache: Redis answers again; caching resumed")
        return result

    def _failed(self, exc: BaseException) -> None:
        with self._lock:
            self._errors += 1
            self._next_probe = self._clock() + self.probe_interval
            if self._down:
                return
            self._down = True
            self._outages += 1
        self._log.warning(
            "hot cache: Redis unreachable (%s); reading conversations from the store until "
            "it answers again",
            type(exc).__name__,
        )


def _encode(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


def _decode(raw: list[bytes]) -> list[dict[str, Any]] | None:
    messages: list[dict[str, Any]] = []
    for item in raw:
        try:
            value = json.loads(item)
        except ValueError:
            return None
        if not isinstance(value, dict):
            return None
        messages.append(value)
    return messages
