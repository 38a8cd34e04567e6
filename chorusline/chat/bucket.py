"""The rate-limit actors a session asks before any engine work.

``BucketActor`` holds one key's ``LocalBucket``. It is a ``SyncActor``: its handler is
a plain function, so an ask to an idle bucket is answered in the asker's task with no
task switch, which matters because every chat turn asks it twice or three times.

``RedisBucketActor`` speaks the same messages for the multi-node setup. The Redis client
blocks, so each message runs in a trio worker thread (``trio.to_thread.run_sync``); the
event loop never waits on the network.

Protocol (the same for both; a session does not care which it talks to)::

    Acquire(request_id, estimated_tokens)  -> Decision     (before any engine work)
    Settle(request_id, actual_tokens)      -> bool         (when the turn has finished)
    Release(request_id)                    -> bool         (always, in a ``finally``)
    Peek()                                 -> Decision

Bad arguments (negative token counts) come back to the asker as ``ValueError`` and leave
the actor running: they are the caller's bug, not the bucket's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import trio

from chorusline.actors import Actor, SyncActor
from chorusline.ratelimit import (
    DEFAULT_CONCURRENCY_RETRY_AFTER,
    DEFAULT_LEASE_TTL,
    LocalBucket,
    Tier,
)

if TYPE_CHECKING:  # redis is only needed by the multi-node setup
    from chorusline.ratelimit import RedisBucket


@dataclass(frozen=True, slots=True)
class Acquire:
    """Admit a turn, reserving ``estimated_tokens`` (see ``estimate_tokens``). ``now``
    overrides the actor's clock for this message (tests; ignored by Redis, which uses
    its own clock)."""

    request_id: str
    estimated_tokens: int
    now: float | None = None


@dataclass(frozen=True, slots=True)
class Settle:
    """Replace the reservation by the turn's real usage (prompt + completion)."""

    request_id: str
    actual_tokens: int
    now: float | None = None


@dataclass(frozen=True, slots=True)
class Release:
    """Free the turn's stream slot; idempotent."""

    request_id: str
    now: float | None = None


@dataclass(frozen=True, slots=True)
class Peek:
    """Current budgets, for headers or the console."""

    now: float | None = None


@dataclass(frozen=True, slots=True)
class SetTier:
    """The key changed plan: apply the new limits at once (replies ``None``)."""

    tier: Tier


class BucketActor(SyncActor):
    """One key's limits, in process. ``clock`` defaults to ``trio.current_time`` (so a
    trio ``MockClock`` drives it too); any monotonic seconds source works."""

    expected_errors = (ValueError,)

    def __init__(
        self,
        tier: Tier,
        *,
        clock: Callable[[], float] | None = None,
        lease_ttl: float = DEFAULT_LEASE_TTL,
        concurrency_retry_after: float = DEFAULT_CONCURRENCY_RETRY_AFTER,
    ) -> None:
        self._clock = clock or trio.current_time
        self._tier = tier
        self._options = {"lease_ttl": lease_ttl, "concurrency_retry_after": concurrency_retry_after}
        self._bucket: LocalBucket | None = None

    @property
    def bucket(self) -> LocalBucket:
        # Built on first use rather than in __init__: the factory may run outside trio,
        # where trio.current_time() has no clock to read.
        if self._bucket is None:
            self._bucket = LocalBucket(self._tier, self._clock(), **self._options)
        return self._bucket

    def _now(self, now: float | None) -> float:
        return self._clock() if now is None else now

    def handle(self, message: Any) -> Any:
        if isinstance(message, Acquire):
            now = self._now(message.now)
            return self.bucket.acquire(message.request_id, message.estimated_tokens, now)
        if isinstance(message, Settle):
            now = self._now(message.now)
            return self.bucket.settle(message.request_id, message.actual_tokens, now)
        if isinstance(message, Release):
            return self.bucket.release(message.request_id, self._now(message.now))
        if isinstance(message, Peek):
            return self.bucket.peek(self._now(message.now))
        if isinstance(message, SetTier):
            self._tier = message.tier
            self.bucket.retier(message.tier)
            return None
        return super().handle(message)

    def introspect(self) -> dict[str, Any]:
        bucket = self._bucket
        return {
            "tier": self._tier.name,
            "active_streams": 0 if bucket is None else bucket.active_streams,
        }


class RedisBucketActor(Actor):
    """One key's limits, shared through Redis; ``bucket`` may serve many keys/actors."""

    expected_errors = (ValueError,)

    def __init__(self, bucket: RedisBucket, key: str, tier: Tier) -> None:
        self._redis = bucket
        self._key = key
        self._tier = tier

    async def receive(self, message: Any) -> Any:
        redis, key, tier = self._redis, self._key, self._tier
        if isinstance(message, Acquire):
            rid, estimate = message.request_id, message.estimated_tokens
            return await trio.to_thread.run_sync(redis.acquire, key, tier, rid, estimate)
        if isinstance(message, Settle):
            rid, actual = message.request_id, message.actual_tokens
            return await trio.to_thread.run_sync(redis.settle, key, tier, rid, actual)
        if isinstance(message, Release):
            return await trio.to_thread.run_sync(redis.release, key, tier, message.request_id)
        if isinstance(message, Peek):
            return await trio.to_thread.run_sync(redis.peek, key, tier)
        if isinstance(message, SetTier):
            self._tier = message.tier
            return None
        return await super().receive(message)

    def introspect(self) -> dict[str, Any]:
        stats = self._redis.stats()
        return {"tier": self._tier.name, "degraded": stats.degraded}

