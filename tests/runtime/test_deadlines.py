"""DeadlineQueue: due items in deadline order, ended items skipped, the heap kept small."""

from __future__ import annotations

import pytest

from chorusline.runtime.deadlines import DeadlineQueue


def never_read() -> float:
    pytest.fail("the clock was read with no deadline queued")


def test_due_items_come_out_earliest_first_and_once() -> None:
    live = {"a", "b", "c", "d"}
    q = DeadlineQueue[str](lambda item: item in live)
    assert q.pop_due(never_read) == []
    for deadline, item in [(3.0, "c"), (1.0, "a"), (2.0, "b"), (9.0, "d")]:
        q.push(deadline, item)
    assert q.pop_due(lambda: 0.5) == []
    assert q.pop_due(lambda: 2.0) == ["a", "b"]  # a deadline equal to now has passed
    assert q.pop_due(lambda: 2.5) == []
    live.discard("c")  # ended before its deadline: skipped, not reported
    assert q.pop_due(lambda: 5.0) == []
    assert q.pop_due(lambda: 100.0) == ["d"]
    assert len(q) == 0
    assert q.pop_due(never_read) == []


def test_equal_deadlines_never_compare_the_items() -> None:
    class Opaque:  # no ordering: a tie must be broken by arrival, not by the item
        pass

    first, second = Opaque(), Opaque()
    q = DeadlineQueue[Opaque](lambda item: True)
    q.push(1.0, first)
    q.push(1.0, second)
    assert q.pop_due(lambda: 1.0) == [first, second]


def test_entries_of_ended_items_are_pruned() -> None:
    live: set[int] = set()
    q = DeadlineQueue[int](lambda item: item in live)
    for i in range(10_000):  # each item ends long before its deadline
        live.add(i)
        q.push(1e9 + i, i)
        live.discard(i - 1)
    assert len(q) <= 16
    assert q.pop_due(lambda: 2e9) == [9_999]
