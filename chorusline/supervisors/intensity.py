"""Restart bookkeeping shared by static and dynamic supervisors."""

from __future__ import annotations

import time
from collections import deque
from typing import Any

import trio

from chorusline.supervisors.spec import Backoff, Intensity


class RestartIntensityExceeded(Exception):
    """More restarts than the intensity allows: the supervisor gives up and escalates."""


class RestartLog:
    """Counts restarts in the sliding window and keeps a short history for the console."""

    def __init__(self, path: str, intensity: Intensity, backoff: Backoff) -> None:
        self.path = path
        self.intensity = intensity
        self.backoff = backoff
        self.window: deque[float] = deque()
        self.history: deque[dict[str, Any]] = deque(maxlen=50)
        self.total = 0

    def admit(self, child: str, reason: str) -> float:
        """Record one restart of ``child``; return its backoff delay, or raise if the
        intensity is exceeded (the caller's exception crashes the supervisor)."""
        now = trio.current_time()
        horizon = now - self.intensity.period
        while self.window and self.window[0] <= horizon:
            self.window.popleft()
        self.window.append(now)
        exceeded = len(self.window) > self.intensity.max_restarts
        self.history.append(
            {
                "at": now,
                "wall": time.time(),
                "child": child,
                "reason": reason,
                "action": "escalate" if exceeded else "restart",
            }
        )
        if exceeded:
            raise RestartIntensityExceeded(
                f"{self.path}: more than {self.intensity.max_restarts} restarts "
                f"in {self.intensity.period:g}s (last: {child}, {reason})"
            )
        self.total += 1
        return self.backoff.delay(len(self.window))

    def to_json(self) -> dict[str, Any]:
        return {
            "max_restarts": self.intensity.max_restarts,
            "period": self.intensity.period,
            "restarts_in_window": len(self.window),
            "total_restarts": self.total,
            "history": list(self.history),
        }
