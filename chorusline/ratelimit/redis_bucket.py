"""Rate limits shared by several nodes, in Redis: one atomic Lua script per operation.

The script does the same arithmetic as ``LocalBucket`` (two token buckets with a
minute's capacity, a reservation per request, a count of open streams) on Redis's own
clock (``TIME`` inside the script), so the nodes' clocks never matter and no two nodes
can both spend the last token: a script runs alone on the server.

Per key there are four Redis keys, sharing a ``{hash tag}`` so a cluster keeps them on
one shard: ``:s`` (bucket levels), ``:l`` (stream leases, a sorted set scored by expiry),
``:p`` (unsettled reservations by expiry) and ``:r`` (reserved amounts). Leases expire
after ``lease_ttl`` seconds, so the slots of a node that crashed mid-turn come back on
their own; a retried ``acquire`` of a held request renews its lease (a heartbeat).

**Threading:** this class is synchronous and thread-safe. redis-py's asyncio client does
not run under trio, so trio code calls it in a worker thread
(``trio.to_thread.run_sync``); ``RedisBucketActor`` does exactly that. When Redis does
not answer, the policy in ``policy.py`` applies: decisions come from per-process
``LocalBucket``s (``Decision.fallback`` is true) and never raise.

Use a stable, non-secret identifier as ``key`` (an API key id or org id, never the key).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, cast

import redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from chorusline.ratelimit.decision import Decision, Reason
from chorusline.ratelimit.local import (
    DEFAULT_CONCURRENCY_RETRY_AFTER,
    DEFAULT_LEASE_TTL,
    WINDOW,
    LocalBucket,
)
from chorusline.ratelimit.policy import DEFAULT_PROBE_INTERVAL, OutageGuard, OutageStats
from chorusline.ratelimit.tiers import Tier

# KEYS: 1 levels hash, 2 leases zset, 3 pending zset, 4 reserved hash
# ARGV: op, request id, amount, rpm, tpm, max streams, lease ttl, concurrency hint, window
SCRIPT = """
local op, rid, amount = ARGV[1], ARGV[2], tonumber(ARGV[3])
local rpm, tpm, maxc = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local ttl, hint, window = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local eps = 1e-6 -- as local.EPSILON: waiting exactly retry_after must be enough
local function fmt(x) return string.format('%.17g', x) end

redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local stale = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)
for i = 1, #stale do redis.call('HDEL', KEYS[4], stale[i]) end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)

local s = redis.call('HMGET', KEYS[1], 'rl', 'rt', 'tl', 'tt')
local function level(l, ts, cap)
  if not l then return cap end
  local v, dt = tonumber(l), now - tonumber(ts)
  if dt > 0 then v = v + dt * cap / window end
  if v > cap then v = cap end
  return v
end
local rl, tl = level(s[1], s[2], rpm), level(s[3], s[4], tpm)
local active = redis.call('ZCARD', KEYS[2])
local allowed, reason, wait, reserved, flag = 0, 0, 0, 0, 0

if op == 'acquire' then
  if redis.call('ZSCORE', KEYS[2], rid) then
    allowed = 1
    redis.call('ZADD', KEYS[2], now + ttl, rid)
    local r = redis.call('HGET', KEYS[4], rid)
    if r then reserved = tonumber(r); redis.call('ZADD', KEYS[3], now + ttl, rid) end
  else
    local need = math.min(amount, tpm)
    if rl < 1 - eps then reason = 1; wait = (1 - rl) * window / rpm end
    if tl < need - eps then
      if reason == 0 then reason = 2 end
      wait = math.max(wait, (need - tl) * window / tpm)
    end
    if active >= maxc then
      if reason == 0 then reason = 3 end
      wait = math.max(wait, hint)
    end
    if reason == 0 then
      allowed, reserved, active = 1, need, active + 1
      rl, tl = rl - 1, tl - need
      redis.call('ZADD', KEYS[2], now + ttl, rid)
      redis.call('ZADD', KEYS[3], now + ttl, rid)
      redis.call('HSET', KEYS[4], rid, need)
    end
  end
elseif op == 'settle' then
  local r = redis.call('HGET', KEYS[4], rid)
  if r then
    tl = math.min(tpm, tl + tonumber(r) - amount)
    redis.call('HDEL', KEYS[4], rid)
    redis.call('ZREM', KEYS[3], rid)
    flag = 1
  end
elseif op == 'release' then
  flag = redis.call('ZREM', KEYS[2], rid)
  active = active - flag
else -- peek
  if rl < 1 - eps then reason = 1; wait = (1 - rl) * window / rpm
  elseif tl < -eps then reason = 2; wait = -tl * window / tpm
  elseif active >= maxc then reason = 3; wait = hint
  else allowed = 1 end
end

redis.call('HSET', KEYS[1], 'rl', fmt(rl), 'rt', fmt(now), 'tl', fmt(tl), 'tt', fmt(now))
local full = math.max((rpm - rl) / rpm, (tpm - tl) / tpm) * window
redis.call('PEXPIRE', KEYS[1], math.ceil(full * 1000) + 1000)
for i = 2, 4 do redis.call('PEXPIRE', KEYS[i], math.ceil(ttl * 1000) + 1000) end
return {allowed, reason, fmt(wait), fmt(rl), fmt(tl), active, reserved, flag}
"""

_REASONS: dict[int, Reason | None] = {0: None, 1: "requests", 2: "tokens", 3: "concurrency"}


def _check_count(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")


class RedisBucket:
    """Shared rate limits for every key, with the local fallback of ``policy.py``."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str = "chorusline:rl:",
        lease_ttl: float = DEFAULT_LEASE_TTL,
        concurrency_retry_after: float = DEFAULT_CONCURRENCY_RETRY_AFTER,
        probe_interval: float = DEFAULT_PROBE_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
        logger: logging.Logger | None = None,
    ) -> None:
        self._client = client
        self._script = client.register_script(SCRIPT)
        self.prefix = prefix
        self.lease_ttl = lease_ttl
        self.concurrency_retry_after = concurrency_retry_after
        self._clock = clock
        self.guard = OutageGuard(clock=clock, probe_interval=probe_interval, logger=logger)
        self._local: dict[str, LocalBucket] = {}
        #: Releases Redis never got, by request id: sent as soon as it answers again.
        self._undelivered: dict[str, tuple[str, Tier]] = {}
        self._local_lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str, *, timeout: float = 0.5, **options: Any) -> RedisBucket:
        """A client tuned for a limiter: short timeouts and no client-side retries, so an
        outage is detected in one ``timeout`` and the request goes on with local limits
        instead of waiting through backoff."""
        client = redis.Redis.from_url(
            url,
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )
        return cls(client, **options)

    @property
    def client(self) -> redis.Redis:
        return self._client

    def close(self) -> None:
        self._client.close()

    def stats(self) -> OutageStats:
        return self.guard.stats()

    # -- the four operations (same meaning as LocalBucket's) ------------------------------
    def acquire(self, key: str, tier: Tier, request_id: str, estimated_tokens: int) -> Decision:
        _check_count("estimated_tokens", estimated_tokens)
        local = self._local_holding(key, request_id)
        if local is None:
            reply = self._run(key, tier, "acquire", request_id, estimated_tokens)
            if reply is not None:
                return self._decode(tier, reply)
            # The script may have run and only its answer been lost: a lease that no
            # release would ever reach. Release it in Redis once Redis answers again.
            self._undeliverable(key, tier, request_id)
        with self._local_lock:
            decision = self._local_bucket(key, tier).acquire(
                request_id, estimated_tokens, self._clock()
            )
        self.guard.served_locally()
        return replace(decision, fallback=True)

    def settle(self, key: str, tier: Tier, request_id: str, actual_tokens: int) -> bool:
        """False if nothing was settled, including when Redis is down (the estimate
        then stays charged: the safe side)."""
        _check_count("actual_tokens", actual_tokens)
        local = self._local_holding(key, request_id)
        if local is not None:
            with self._local_lock:
                return local.settle(request_id, actual_tokens, self._clock())
        reply = self._run(key, tier, "settle", request_id, actual_tokens)
        return reply is not None and int(reply[7]) == 1

    def release(self, key: str, tier: Tier, request_id: str) -> bool:
        """Idempotent. If Redis is down it is sent again once Redis answers (and, if this
        process dies first, the slot is reclaimed by its lease expiry)."""
        local = self._local_holding(key, request_id)
        if local is not None:
            with self._local_lock:
                return local.release(request_id, self._clock())
        reply = self._run(key, tier, "release", request_id, 0)
        if reply is None:
            self._undeliverable(key, tier, request_id)
        return reply is not None and int(reply[7]) == 1

    def peek(self, key: str, tier: Tier) -> Decision:
        reply = self._run(key, tier, "peek", "", 0)
        if reply is not None:
            return self._decode(tier, reply)
        with self._local_lock:
            decision = self._local_bucket(key, tier).peek(self._clock())
        return replace(decision, fallback=True)

    def redis_keys(self, key: str) -> list[str]:
        base = f"{self.prefix}{{{key}}}"
        return [f"{base}:s", f"{base}:l", f"{base}:p", f"{base}:r"]

    # -- helpers --------------------------------------------------------------------------
    def _run(
        self, key: str, tier: Tier, op: str, request_id: str, amount: int
    ) -> Sequence[Any] | None:
        if not key:
            raise ValueError("the rate-limit key must be a non-empty string")
        if not self.guard.should_try():
            return None
        if self._undelivered and not self._deliver_releases():
            return None
        try:
            reply = self._script(keys=self.redis_keys(key),
                                 args=self._args(tier, op, request_id, amount))
        except (RedisError, OSError) as exc:
            self.guard.failed(exc)
            return None
        self.guard.succeeded()
        return cast(Sequence[Any], reply)

    def _args(self, tier: Tier, op: str, request_id: str,
              amount: int) -> list[str | int | float]:
        return [op, request_id, amount, tier.requests_per_minute, tier.tokens_per_minute,
                tier.max_concurrent_streams, self.lease_ttl, self.concurrency_retry_after,
                WINDOW]

    def _undeliverable(self, key: str, tier: Tier, request_id: str) -> None:
        with self._local_lock:
            self._undelivered[request_id] = (key, tier)

    def _deliver_releases(self) -> bool:
        """Send the releases an outage swallowed, before anything else: a slot leased in
        Redis whose release was lost (or whose acquire's answer was) would otherwise hold
        the key's concurrency until ``lease_ttl``, ten minutes by default, after a mere
        blip (``chorusline chaos``'s redis-half-open found it). False if Redis is still
        not answering."""
        with self._local_lock:
            pending = list(self._undelivered.items())
        for request_id, (key, tier) in pending:
            try:
                self._script(keys=self.redis_keys(key),
                             args=self._args(tier, "release", request_id, 0))
            except (RedisError, OSError) as exc:
                self.guard.failed(exc)
                return False
            with self._local_lock:
                self._undelivered.pop(request_id, None)
        return True

    def _decode(self, tier: Tier, reply: Sequence[Any]) -> Decision:
        allowed, reason, wait, rl, tl, active, reserved, _ = reply
        return Decision.from_levels(
            tier,
            allowed=int(allowed) == 1,
            reason=_REASONS[int(reason)],
            retry_after=float(wait),
            request_level=float(rl),
            token_level=float(tl),
            active_streams=int(active),
            reserved_tokens=int(reserved),
            backend="redis",
        )

    def _local_holding(self, key: str, request_id: str) -> LocalBucket | None:
        """The fallback bucket that admitted ``request_id``, if one did: its settle and
        release must go where its charge went, even after Redis is back."""
        with self._local_lock:
            bucket = self._local.get(key)
            return bucket if bucket is not None and bucket.holds(request_id) else None

    def _local_bucket(self, key: str, tier: Tier) -> LocalBucket:
        bucket = self._local.get(key)
        if bucket is None:
            bucket = self._local[key] = LocalBucket(
                tier,
                self._clock(),
                lease_ttl=self.lease_ttl,
                concurrency_retry_after=self.concurrency_retry_after,
            )
        elif bucket.tier != tier:
            bucket.retier(tier)
        return bucket
