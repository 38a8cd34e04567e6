"""PostgreSQL-only behaviour: the connection pool and surviving killed connections."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import psycopg
import pytest

from chorusline.store import PostgresStore, Role, StoreUnavailable


@pytest.fixture
def pg_store(postgres_url: str) -> Iterator[PostgresStore]:
    store = PostgresStore(postgres_url, min_size=2, max_size=3)
    yield store
    store.close()


def terminate_backends(url: str) -> int:
    """Kill every other session on the test database, as a server restart would."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return sum(1 for (ok,) in rows if ok)


def test_next_call_succeeds_after_backends_are_killed(
    pg_store: PostgresStore, postgres_url: str
) -> None:
    user = pg_store.create_user("survivor")
    convo = pg_store.create_conversation(user.id)
    for round_ in range(3):
        assert terminate_backends(postgres_url) >= 1
        pg_store.ping()
        pg_store.append_message(user.id, convo.id, role=Role.USER, content=f"after kill {round_}")
    assert [m.seq for m in pg_store.get_message_tree(user.id, convo.id)] == [1, 2, 3]


def test_pool_is_bounded_and_shared_by_threads(pg_store: PostgresStore) -> None:
    user = pg_store.create_user("busy")
    convo = pg_store.create_conversation(user.id)
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def work() -> None:
        barrier.wait()
        try:
            for _ in range(5):
                pg_store.append_message(user.id, convo.id, role=Role.USER, content="x")
                pg_store.list_conversations(user.id)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    stats = pg_store.pool.get_stats()
    assert stats["pool_size"] <= 3
    assert len(pg_store.get_message_tree(user.id, convo.id)) == 40


def test_unreachable_server_fails_fast_and_clearly() -> None:
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(StoreUnavailable, match="not reachable"):
        PostgresStore(f"postgresql://postgres@127.0.0.1:{port}/postgres", timeout=1.0)


def test_restarting_the_store_keeps_data(pg_store: PostgresStore, postgres_url: str) -> None:
    user = pg_store.create_user("kept")
    pg_store.close()
    reopened = PostgresStore(postgres_url)
    try:
        assert reopened.get_user(user.id) == user
    finally:
        reopened.close()
