"""Which requests' deadlines have passed, at the cost of one comparison per step.

A min-heap keyed by deadline: a step looks at the earliest entry only, and reads no clock
at all while no request has a deadline. Taking an entry out of the middle of a heap costs
O(n), so a request that ends early is not taken out: its entry is skipped when it
surfaces, and dropped when the heap has doubled since it was last pruned, which keeps it
within a small multiple of the live requests.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

_MIN_PRUNE = 16


class DeadlineQueue(Generic[T]):
    def __init__(self, is_live: Callable[[T], bool]) -> None:
        """``is_live(item)`` tells whether an item still wants its deadline enforced."""
        self._is_live = is_live
        self._heap: list[tuple[float, int, T]] = []
        self._order = itertools.count()  # ties never compare the items themselves
        self._prune_at = _MIN_PRUNE

    def __len__(self) -> int:
        """Entries held, including those of items no longer live."""
        return len(self._heap)

    def push(self, deadline: float, item: T) -> None:
        if len(self._heap) >= self._prune_at:
            self._heap = [e for e in self._heap if self._is_live(e[2])]
            heapq.heapify(self._heap)
            self._prune_at = max(_MIN_PRUNE, 2 * len(self._heap))
        heapq.heappush(self._heap, (deadline, next(self._order), item))

    def pop_due(self, clock: Callable[[], float]) -> list[T]:
        """The live items whose deadline is at or before ``clock()``, earliest first."""
        heap = self._heap
        if not heap:
            return []
        now = clock()
        due: list[T] = []
        while heap and heap[0][0] <= now:
            item = heapq.heappop(heap)[2]
            if self._is_live(item):
                due.append(item)
        return due
