"""Rate limits and tiers: per-key request, token and concurrency budgets.

One node: ``BucketActor`` (a ``LocalBucket`` per key, in process). Several nodes:
``RedisBucket`` (one atomic Lua script per operation) behind ``RedisBucketActor``, with
per-process fallback when Redis is down (see ``policy``). Both answer ``Acquire`` /
``Settle`` / ``Release`` / ``Peek`` with a ``Decision`` that renders the HTTP headers.

``RedisBucket`` needs the ``redis`` package and is imported lazily, so the single-node
path works without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chorusline.chat.ratelimit.bucket_actor import (
    Acquire,
    BucketActor,
    Peek,
    RedisBucketActor,
    Release,
    SetTier,
    Settle,
)
from chorusline.chat.ratelimit.decision import Backend, Decision, Reason, format_duration
from chorusline.chat.ratelimit.local import LocalBucket, TokenBucket
from chorusline.chat.ratelimit.policy import OutageGuard, OutageStats, estimate_tokens
from chorusline.chat.ratelimit.tiers import Tier, TierConfigError, Tiers

if TYPE_CHECKING:
    from chorusline.chat.ratelimit.redis_bucket import RedisBucket

__all__ = [
    "Acquire",
    "Backend",
    "BucketActor",
    "Decision",
    "LocalBucket",
    "OutageGuard",
    "OutageStats",
    "Peek",
    "Reason",
    "RedisBucket",
    "RedisBucketActor",
    "Release",
    "SetTier",
    "Settle",
    "Tier",
    "TierConfigError",
    "Tiers",
    "TokenBucket",
    "estimate_tokens",
    "format_duration",
]


def __getattr__(name: str) -> Any:
    if name == "RedisBucket":
        from chorusline.chat.ratelimit.redis_bucket import RedisBucket

        return RedisBucket
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
