"""Fixtures: every test gets a fresh store of each kind, on its own database.

PostgreSQL comes from ``CHORUSLINE_TEST_POSTGRES_URL`` (default: the local server). Each
test creates a database with a random name and drops it afterwards, so tests never see
each other's rows and can run in parallel.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from chorusline.store import SqliteStore, Store
from chorusline.store.postgres_store import PostgresStore


class FakeClock:
    """Advances 1 ms per reading, so "newest first" is deterministic without sleeps."""

    def __init__(self) -> None:
        self._now = datetime(2030, 1, 1, tzinfo=UTC)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            self._now += timedelta(milliseconds=1)
            return self._now


@pytest.fixture
def postgres_url(make_postgres_database: Callable[[], str]) -> str:
    return make_postgres_database()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock) -> Iterator[Store]:
    made: Store
    if request.param == "sqlite":
        made = SqliteStore(tmp_path / "chat.db", clock=clock)
    else:
        made = PostgresStore(request.getfixturevalue("postgres_url"), clock=clock, max_size=8)
    yield made
    made.close()
