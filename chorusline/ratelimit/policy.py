"""Policies shared by the backends: how much to reserve, and what to do when Redis is down.

Redis outage policy (documented here because it is a product decision, not a detail):

* **Fail open to local limits, never to an error.** A rate limiter that turns a Redis
  outage into 5xx responses makes the limiter a single point of failure for the whole
  product. While Redis does not answer, each process enforces the same tiers with its own
  in-memory buckets (``LocalBucket``). With ``n`` nodes a key may therefore get up to
  ``n`` times its budget during the outage; that is the accepted price.
* **Tell operators once, count always.** The first failure of an outage logs one warning;
  every failed Redis call increments ``redis_errors``, every decision served locally
  increments ``fallbacks``, every switch to local increments ``outages``. ``/metrics``
  reads them from ``OutageGuard.stats()``.
* **Come back by itself.** During an outage Redis is probed again at most once per
  ``probe_interval`` seconds (so a dead server does not add a connect timeout to every
  request); the first answer ends the outage (logged once, at info).
* Slots and reservations taken locally during the outage are settled and released
  locally, even after Redis is back. A release Redis did not get (and the possible lease
  of an acquire whose answer was lost) is sent again before anything else once Redis
  answers; only if the process dies first is the slot left to its lease expiry.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

DEFAULT_COMPLETION_ESTIMATE = 1024
DEFAULT_PROBE_INTERVAL = 1.0


def estimate_tokens(
    prompt_tokens: int,
    max_tokens: int | None,
    *,
    default_completion: int = DEFAULT_COMPLETION_ESTIMATE,
) -> int:
    """The reservation for a turn: its prompt plus the most it may generate.

    Reserving the worst case (``max_tokens``) means a key can never overrun its budget by
    starting many turns at once; the unused part is refunded at ``settle``. Without
    ``max_tokens`` we reserve ``default_completion`` and charge any excess at settle time.
    """
    if prompt_tokens < 0 or (max_tokens is not None and max_tokens < 0):
        raise ValueError("token counts must be non-negative")
    completion = default_completion if max_tokens is None else max_tokens
    return prompt_tokens + completion


@dataclass(frozen=True, slots=True)
class OutageStats:
    """Counters for ``/metrics``; ``degraded`` is true during an outage."""

    redis_errors: int
    fallbacks: int
    outages: int
    degraded: bool


class OutageGuard:
    """Tracks whether the shared store answers; thread-safe (Redis calls run in worker
    threads). ``clock`` is injectable so tests step through probe intervals exactly."""

    def __init__(
        self,
        *,
        clock: Callable[[], float],
        probe_interval: float = DEFAULT_PROBE_INTERVAL,
        logger: logging.Logger | None = None,
        name: str = "redis",
    ) -> None:
        self._clock = clock
        self.probe_interval = probe_interval
        self._log = logger or logging.getLogger("chorusline.ratelimit")
        self._name = name
        self._lock = threading.Lock()
        self._down = False
        self._next_probe = 0.0
        self.redis_errors = 0
        self.fallbacks = 0
        self.outages = 0

    @property
    def degraded(self) -> bool:
        return self._down

    def should_try(self) -> bool:
        """Whether to talk to Redis now: always when healthy, once per probe interval
        during an outage."""
        with self._lock:
            return not self._down or self._clock() >= self._next_probe

    def failed(self, exc: BaseException) -> None:
        with self._lock:
            self.redis_errors += 1
            self._next_probe = self._clock() + self.probe_interval
            if self._down:
                return
            self._down = True
            self.outages += 1
        # Outside the lock: logging may block on its handlers. The message names the
        # error type only: connection errors can carry the URL, and the URL a password.
        self._log.warning(
            "%s unreachable (%s); rate limits fall back to per-process buckets until it "
            "answers again",
            self._name,
            type(exc).__name__,
        )

    def succeeded(self) -> None:
        with self._lock:
            if not self._down:
                return
            self._down = False
        self._log.info("%s answers again; shared rate limits restored", self._name)

    def served_locally(self) -> None:
        with self._lock:
            self.fallbacks += 1

    def stats(self) -> OutageStats:
        with self._lock:
            return OutageStats(self.redis_errors, self.fallbacks, self.outages, self._down)
