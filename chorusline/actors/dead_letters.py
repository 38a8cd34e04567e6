"""Dead letters: messages that reached no actor, counted and observable, never silent."""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DeadLetter:
    recipient: str
    message_type: str
    reason: str


class DeadLetters:
    def __init__(self, keep: int = 100) -> None:
        self.count = 0
        self.by_reason: Counter[str] = Counter()
        self.recent: deque[DeadLetter] = deque(maxlen=keep)
        self._listeners: list[Callable[[DeadLetter, Any], None]] = []

    def publish(self, recipient: str, message: Any, reason: str) -> None:
        letter = DeadLetter(recipient, type(message).__name__, reason)
        self.count += 1
        self.by_reason[reason] += 1
        self.recent.append(letter)
        for listener in self._listeners:
            listener(letter, message)

    def subscribe(self, listener: Callable[[DeadLetter, Any], None]) -> Callable[[], None]:
        """Call ``listener`` for every dead letter; returns the unsubscribe function."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def to_json(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "by_reason": dict(self.by_reason),
            "recent": [vars(letter) for letter in self.recent],
        }
