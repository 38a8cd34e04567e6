"""In-process rate limiting: pure, time-injected token buckets for one key.

Algorithm: two token buckets (requests, tokens) whose **capacity is one minute's
allowance** and which refill continuously at ``limit / 60`` per second, plus a count of
open streams. Consequences, stated so tests (and operators) can hold us to them:

* at any instant at most ``limit`` admissions can happen back to back (the burst);
* over any window of ``w`` seconds at most ``limit + limit * w / 60`` are admitted, so an
  idle key may use up to twice its limit in a 60 s window straddling a full bucket. That
  is the usual token-bucket burst allowance, and what ``x-ratelimit-reset-*`` (seconds
  until the bucket is full) describes;
* after an admission, the next request is admitted at the latest ``60 / limit`` seconds
  later (if tokens and concurrency allow).

Tokens are **reserved at admission and settled at the end**: ``acquire`` takes the
estimate (``policy.estimate_tokens``: prompt + ``max_tokens``, capped at one minute's
allowance so an oversized request waits for a full bucket instead of never passing);
``settle`` refunds ``estimate - actual`` or charges the difference. A charge may push the
bucket below zero: that debt is real usage and delays the key's next admissions. A turn
that ends without ``settle`` keeps its estimate charged (the safe side).

Every method takes ``now`` (seconds, any monotonic origin) so tests control time exactly
and nothing here reads a clock, sleeps, or needs trio.
"""

from __future__ import annotations

from dataclasses import dataclass

from chorusline.ratelimit.decision import Decision, Reason
from chorusline.ratelimit.tiers import Tier

WINDOW = 60.0
DEFAULT_LEASE_TTL = 600.0
DEFAULT_CONCURRENCY_RETRY_AFTER = 1.0
# Float refills are off by a few ulps (0.06 s at 1000/min refills 0.99999999999 tokens):
# without a tolerance a client that waits exactly ``retry_after`` would be refused again.
EPSILON = 1e-6


class TokenBucket:
    """A continuous token bucket. ``level`` may go negative (debt from a settle)."""

    __slots__ = ("capacity", "level", "rate", "updated")

    def __init__(self, capacity: float, rate: float, now: float) -> None:
        self.capacity = capacity
        self.rate = rate
        self.level = capacity
        self.updated = now

    def refill(self, now: float) -> float:
        """Bring the level up to ``now``. Time that runs backwards is ignored rather than
        trusted: a bucket must never refill because a clock stepped."""
        if now > self.updated:
            self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
            self.updated = now
        return self.level

    def wait_for(self, amount: float) -> float:
        """Seconds until ``amount`` is available (0 if it is now)."""
        return max(0.0, (amount - self.level) / self.rate)

    def resize(self, capacity: float, rate: float) -> None:
        self.capacity, self.rate = capacity, rate
        self.level = min(self.level, capacity)


@dataclass(slots=True)
class _Lease:
    """What one request holds: a stream slot (until released) and a token reservation
    (until settled). Both lapse at ``expires_at`` so a lost release cannot leak a slot."""

    reserved: int | None
    holds_slot: bool
    expires_at: float


def _check_count(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")


class LocalBucket:
    """One key's budgets and open streams. Not thread-safe: an actor (or a lock) owns it."""

    def __init__(
        self,
        tier: Tier,
        now: float,
        *,
        lease_ttl: float = DEFAULT_LEASE_TTL,
        concurrency_retry_after: float = DEFAULT_CONCURRENCY_RETRY_AFTER,
    ) -> None:
        self._tier = tier
        rpm, tpm = tier.requests_per_minute, tier.tokens_per_minute
        self.requests = TokenBucket(rpm, rpm / WINDOW, now)
        self.tokens = TokenBucket(tpm, tpm / WINDOW, now)
        self.lease_ttl = lease_ttl
        self.concurrency_retry_after = concurrency_retry_after
        self._leases: dict[str, _Lease] = {}
        self._active = 0

    @property
    def tier(self) -> Tier:
        return self._tier

    def retier(self, tier: Tier) -> None:
        """Apply a new plan at once; levels above the new capacity are cut down."""
        self._tier = tier
        self.requests.resize(tier.requests_per_minute, tier.requests_per_minute / WINDOW)
        self.tokens.resize(tier.tokens_per_minute, tier.tokens_per_minute / WINDOW)

    @property
    def active_streams(self) -> int:
        return self._active

    def holds(self, request_id: str) -> bool:
        """Whether this bucket knows the request (a slot or an unsettled reservation)."""
        return request_id in self._leases

    # -- the four operations -----------------------------------------------------------
    def acquire(self, request_id: str, estimated_tokens: int, now: float) -> Decision:
        """Admit one request or say why not; on admission take one request, reserve the
        token estimate and a stream slot, all or nothing.

        Acquiring again with a request id that still holds its slot is a retry of the
        same turn: it charges nothing and renews the lease (use it as a heartbeat for
        turns longer than ``lease_ttl``).
        """
        _check_count("estimated_tokens", estimated_tokens)
        self._advance(now)
        lease = self._leases.get(request_id)
        if lease is not None and lease.holds_slot:
            lease.expires_at = now + self.lease_ttl
            return self._decision(True, None, 0.0, reserved=lease.reserved or 0)
        need = min(estimated_tokens, self._tier.tokens_per_minute)
        reason: Reason | None = None
        wait = 0.0
        if self.requests.level < 1.0 - EPSILON:
            reason, wait = "requests", self.requests.wait_for(1.0)
        if self.tokens.level < need - EPSILON:  # also refuses a key in debt asking for 0 tokens
            reason = reason or "tokens"
            wait = max(wait, self.tokens.wait_for(need))
        if self._active >= self._tier.max_concurrent_streams:
            reason = reason or "concurrency"
            wait = max(wait, self.concurrency_retry_after)
        if reason is not None:
            return self._decision(False, reason, wait)
        self.requests.level -= 1.0
        self.tokens.level -= need
        self._leases[request_id] = _Lease(need, True, now + self.lease_ttl)
        self._active += 1
        return self._decision(True, None, 0.0, reserved=need)

    def settle(self, request_id: str, actual_tokens: int, now: float) -> bool:
        """Replace the request's reservation by its real usage: refund or charge the
        difference. Returns False (and changes nothing) if there is nothing to settle:
        unknown id, already settled, or the lease expired."""
        _check_count("actual_tokens", actual_tokens)
        self._advance(now)
        lease = self._leases.get(request_id)
        if lease is None or lease.reserved is None:
            return False
        refund = lease.reserved - actual_tokens  # negative: a charge, possibly into debt
        self.tokens.level = min(self.tokens.capacity, self.tokens.level + refund)
        lease.reserved = None
        self._forget_if_done(request_id, lease)
        return True

    def release(self, request_id: str, now: float) -> bool:
        """Give the stream slot back. Idempotent: True only for the call that freed it,
        so a ``finally`` and an abort handler may both call it safely."""
        self._advance(now)
        lease = self._leases.get(request_id)
        if lease is None or not lease.holds_slot:
            return False
        lease.holds_slot = False
        self._active -= 1
        self._forget_if_done(request_id, lease)
        return True

    def peek(self, now: float) -> Decision:
        """The key's state for headers or the console; ``allowed`` says whether a request
        needing no tokens would pass now. Changes nothing but the refill."""
        self._advance(now)
        if self.requests.level < 1.0 - EPSILON:
            return self._decision(False, "requests", self.requests.wait_for(1.0))
        if self.tokens.level < -EPSILON:
            return self._decision(False, "tokens", self.tokens.wait_for(0.0))
        if self._active >= self._tier.max_concurrent_streams:
            return self._decision(False, "concurrency", self.concurrency_retry_after)
        return self._decision(True, None, 0.0)

    # -- helpers ------------------------------------------------------------------------
    def _advance(self, now: float) -> None:
        self.requests.refill(now)
        self.tokens.refill(now)
        expired = [rid for rid, lease in self._leases.items() if lease.expires_at <= now]
        for rid in expired:
            if self._leases.pop(rid).holds_slot:
                self._active -= 1

    def _forget_if_done(self, request_id: str, lease: _Lease) -> None:
        if lease.reserved is None and not lease.holds_slot:
            del self._leases[request_id]

    def _decision(
        self, allowed: bool, reason: Reason | None, wait: float, *, reserved: int = 0
    ) -> Decision:
        return Decision.from_levels(
            self._tier,
            allowed=allowed,
            reason=reason,
            retry_after=wait,
            request_level=self.requests.level,
            token_level=self.tokens.level,
            active_streams=self._active,
            reserved_tokens=reserved,
        )
