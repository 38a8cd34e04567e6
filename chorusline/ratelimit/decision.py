"""The answer to "may this key start a turn now?", with everything the web layer needs.

Every backend (in-process, Redis, Redis-down fallback) returns the same ``Decision`` so
the HTTP layer renders ``429``/``Retry-After``/``x-ratelimit-*`` in exactly one place
and never has to know where the numbers came from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from chorusline.ratelimit.tiers import Tier

Reason = Literal["requests", "tokens", "concurrency"]
Backend = Literal["local", "redis"]


def format_duration(seconds: float) -> str:
    """Render a wait as OpenAI does in ``x-ratelimit-reset-*``: ``20ms``, ``1.5s``, ``6m0s``.

    Clients written for the OpenAI API parse this Go-style duration, so we speak it too.
    """
    seconds = max(0.0, seconds)
    millis = math.ceil(round(seconds * 1000.0, 6))
    if millis == 0:
        return "0s"
    if millis < 1000:
        return f"{millis}ms"
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs = f"{rest / 1000:.3f}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{hours}h{minutes}m{secs}"
    if minutes:
        return f"{minutes}m{secs}"
    return secs


@dataclass(frozen=True, slots=True)
class Decision:
    """A rate-limit verdict plus the state of the key's budgets after it.

    ``retry_after`` is 0 when allowed, otherwise the seconds after which the same request
    would pass if nothing else happened (for ``concurrency`` that is only a hint: a slot
    frees when another stream of the key ends). ``reset_*`` are seconds until that budget
    is full again. ``fallback`` is true when Redis was unreachable and a per-process
    bucket decided instead.
    """

    allowed: bool
    reason: Reason | None
    retry_after: float
    tier: str
    priority: int
    limit_requests: int
    remaining_requests: int
    reset_requests: float
    limit_tokens: int
    remaining_tokens: int
    reset_tokens: float
    limit_concurrency: int
    active_streams: int
    reserved_tokens: int = 0
    backend: Backend = "local"
    fallback: bool = False

    @classmethod
    def from_levels(
        cls,
        tier: Tier,
        *,
        allowed: bool,
        reason: Reason | None,
        retry_after: float,
        request_level: float,
        token_level: float,
        active_streams: int,
        reserved_tokens: int = 0,
        backend: Backend = "local",
        fallback: bool = False,
    ) -> Decision:
        """Build a decision from raw bucket levels (shared by all backends, so the
        arithmetic for ``remaining``/``reset`` cannot drift between them)."""
        rpm, tpm = tier.requests_per_minute, tier.tokens_per_minute
        return cls(
            allowed=allowed,
            reason=None if allowed else reason,
            retry_after=0.0 if allowed else max(0.0, retry_after),
            tier=tier.name,
            priority=tier.priority,
            limit_requests=rpm,
            remaining_requests=max(0, math.floor(request_level + 1e-9)),
            reset_requests=max(0.0, (rpm - request_level) * 60.0 / rpm),
            limit_tokens=tpm,
            remaining_tokens=max(0, math.floor(token_level + 1e-9)),
            reset_tokens=max(0.0, (tpm - token_level) * 60.0 / tpm),
            limit_concurrency=tier.max_concurrent_streams,
            active_streams=active_streams,
            reserved_tokens=reserved_tokens if allowed else 0,
            backend=backend,
            fallback=fallback,
        )

    @property
    def retry_after_header(self) -> int:
        """Whole seconds for ``Retry-After`` (HTTP allows no fractions): rounded up, and
        at least 1 on a refusal so a client never retries in a tight loop."""
        if self.allowed:
            return 0
        return max(1, math.ceil(round(self.retry_after, 6)))

    def headers(self) -> dict[str, str]:
        """The response headers: ``x-ratelimit-*`` always, ``retry-after`` (and the
        millisecond variant OpenAI clients prefer) only on a refusal."""
        out = {
            "x-ratelimit-limit-requests": str(self.limit_requests),
            "x-ratelimit-limit-tokens": str(self.limit_tokens),
            "x-ratelimit-remaining-requests": str(self.remaining_requests),
            "x-ratelimit-remaining-tokens": str(self.remaining_tokens),
            "x-ratelimit-reset-requests": format_duration(self.reset_requests),
            "x-ratelimit-reset-tokens": format_duration(self.reset_tokens),
        }
        if not self.allowed:
            out["retry-after"] = str(self.retry_after_header)
            out["retry-after-ms"] = str(max(1, math.ceil(round(self.retry_after * 1000, 6))))
        return out
