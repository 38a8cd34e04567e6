"""Rate limits and tiers: per-key request, token and concurrency budgets.

A library below the actors: one node keeps a ``LocalBucket`` per key in process; several
nodes share ``RedisBucket`` (one atomic Lua script per operation), with per-process
fallback when Redis is down (see ``policy``). Both answer with a ``Decision`` that renders
the HTTP headers. The actors that own one bucket per key live in ``chorusline.chat``.

``RedisBucket`` needs the ``redis`` package and is imported lazily, so the single-node
path works without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chorusline.ratelimit.decision import Backend, Decision, Reason, format_duration
from chorusline.ratelimit.local import (
    DEFAULT_CONCURRENCY_RETRY_AFTER,
    DEFAULT_LEASE_TTL,
    LocalBucket,
    TokenBucket,
)
from chorusline.ratelimit.policy import OutageGuard, OutageStats, estimate_tokens
from chorusline.ratelimit.tiers import Tier, TierConfigError, Tiers

if TYPE_CHECKING:
    from chorusline.ratelimit.redis_bucket import RedisBucket

__all__ = [
    "DEFAULT_CONCURRENCY_RETRY_AFTER",
    "DEFAULT_LEASE_TTL",
    "Backend",
    "Decision",
    "LocalBucket",
    "OutageGuard",
    "OutageStats",
    "Reason",
    "RedisBucket",
    "Tier",
    "TierConfigError",
    "Tiers",
    "TokenBucket",
    "estimate_tokens",
    "format_duration",
]


def __getattr__(name: str) -> Any:
    if name == "RedisBucket":
        from chorusline.ratelimit.redis_bucket import RedisBucket

        return RedisBucket
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
