"""Schema migrations on both dialects: versioned, idempotent, atomic, concurrency-safe."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from chorusline.store import MigrationError, PostgresStore, SqliteStore
from chorusline.store._schema_postgres import MIGRATIONS as PG_MIGRATIONS
from chorusline.store._schema_sqlite import MIGRATIONS as SQLITE_MIGRATIONS
from chorusline.store.migrations import Migration, migrate_postgres, migrate_sqlite, plan


@dataclass
class Db:
    """One fresh database of either dialect, with the migration runner bound to it."""

    migrate: Callable[[Sequence[Migration] | None], list[int]]
    query: Callable[[str], list[tuple[Any, ...]]]
    #: A statement that returns no rows.
    query_none: Callable[[str], None]
    #: The first migration only: the tests below stack their own on top of it.
    base: tuple[Migration, ...]
    #: Every migration the project ships.
    shipped: tuple[Migration, ...]


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Db]:
    if request.param == "sqlite":
        conn = sqlite3.connect(tmp_path / "m.db", isolation_level=None)
        yield Db(
            migrate=lambda ms: migrate_sqlite(conn, ms),
            query=lambda q: conn.execute(q).fetchall(),
            query_none=lambda q: conn.execute(q) and None,
            base=SQLITE_MIGRATIONS[:1],
            shipped=SQLITE_MIGRATIONS,
        )
        conn.close()
    else:
        url = request.getfixturevalue("postgres_url")
        with psycopg.connect(url, autocommit=True) as pg:

            def query(q: str) -> list[tuple[Any, ...]]:
                return pg.execute(q.encode()).fetchall()

            yield Db(migrate=lambda ms: migrate_postgres(pg, ms), query=query,
                     query_none=lambda q: pg.execute(q.encode()) and None,
                     base=PG_MIGRATIONS[:1], shipped=PG_MIGRATIONS)


EXTRA = Migration.from_script(
    2,
    "notes",
    "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);\nCREATE INDEX n ON notes (body);",
)


def tables(db: Db) -> set[str]:
    rows = db.query(
        "SELECT name FROM sqlite_master WHERE type = 'table'"
        if db.shipped is SQLITE_MIGRATIONS
        else "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
    )
    return {str(r[0]) for r in rows}


def test_fresh_database_gets_every_table_once(db: Db) -> None:
    assert db.migrate(db.base) == [1]
    assert db.migrate(db.base) == []
    assert db.query("SELECT version, name FROM schema_version") == [(1, "initial")]
    assert {
        "users",
        "api_keys",
        "conversations",
        "messages",
        "usage_events",
        "moderation_events",
        "idempotency_keys",
        "schema_version",
    } <= tables(db)


def test_the_shipped_migrations_apply_in_order_and_once(db: Db) -> None:
    assert db.migrate(None) == [m.version for m in db.shipped] == [1, 2, 3, 4, 5, 6, 7]
    assert db.migrate(None) == []
    # 2: usage rows carry the turn's request id; 3: the caller's end user; 4: tool calls.
    db.query("SELECT request_id, end_user FROM usage_events")
    db.query("SELECT tool_calls, tool_call_id FROM messages")
    db.query("SELECT message_id, rating, comment FROM message_feedback")
    db.query("SELECT active_leaf_message_id FROM conversations")


def test_the_tool_calls_migration_keeps_every_message_and_reference(db: Db) -> None:
    """Migration 4 rebuilds SQLite's messages table (a CHECK cannot be altered there):
    rows, their parents, and the keys and events pointing at them must all survive."""
    db.migrate(db.shipped[:3])
    now = "1" if db.shipped is SQLITE_MIGRATIONS else "now()"
    for statement in (
        f"INSERT INTO users (id, name, created) VALUES ('u', 'ada', {now})",
        "INSERT INTO conversations (id, user_id, title, created, updated, last_seq) "
        f"VALUES ('c', 'u', 't', {now}, {now}, 2)",
        "INSERT INTO messages (id, conversation_id, seq, parent_message_id, role, content, "
        f"status, created) VALUES ('m1', 'c', 1, NULL, 'user', 'hi', 'complete', {now})",
        "INSERT INTO messages (id, conversation_id, seq, parent_message_id, role, content, "
        "status, finish_reason, created) "
        f"VALUES ('m2', 'c', 2, 'm1', 'assistant', 'hello', 'complete', 'stop', {now})",
        "INSERT INTO idempotency_keys (user_id, key, conversation_id, request_hash, "
        "user_message_id, assistant_message_id, created) "
        f"VALUES ('u', 'k', 'c', 'h', 'm1', 'm2', {now})",
    ):
        db.query_none(statement)
    assert db.migrate(db.shipped[:4]) == [4]
    assert db.query("SELECT id, parent_message_id, role, content, tool_calls, tool_call_id "
                    "FROM messages ORDER BY seq") == [
        ("m1", None, "user", "hi", None, None), ("m2", "m1", "assistant", "hello", None, None)]
    assert db.query("SELECT user_message_id, assistant_message_id FROM idempotency_keys"
                    ) == [("m1", "m2")]
    # The new constraints hold: a tool message needs the call it answers.
    with pytest.raises((sqlite3.Error, psycopg.Error)):
        db.query_none("INSERT INTO messages (id, conversation_id, seq, parent_message_id, "
                      "role, content, status, created) "
                      f"VALUES ('m3', 'c', 3, 'm2', 'tool', '18 C', 'complete', {now})")


def test_new_migrations_apply_on_top(db: Db) -> None:
    db.migrate(db.base)
    assert db.migrate((*db.base, EXTRA)) == [2]
    assert "notes" in tables(db)
    assert [r[0] for r in db.query("SELECT version FROM schema_version ORDER BY version")] == [1, 2]


def test_failing_migration_leaves_the_previous_version(db: Db) -> None:
    db.migrate(db.base)
    broken = Migration(2, "broken", ("CREATE TABLE half (id INTEGER)", "THIS IS NOT SQL"))
    with pytest.raises((sqlite3.Error, psycopg.Error)):
        db.migrate((*db.base, broken))
    assert "half" not in tables(db)
    assert db.query("SELECT version FROM schema_version") == [(1,)]
    assert db.migrate((*db.base, EXTRA)) == [2]


def test_refuses_a_newer_or_different_history(db: Db) -> None:
    db.migrate((*db.base, EXTRA))
    with pytest.raises(MigrationError, match="newer"):
        db.migrate(db.base)
    renamed = Migration(2, "something-else", EXTRA.statements)
    with pytest.raises(MigrationError, match="something-else"):
        db.migrate((*db.base, renamed))


def test_plan_rejects_gaps() -> None:
    with pytest.raises(MigrationError):
        plan({}, (Migration(1, "a", ()), Migration(3, "c", ())))
    assert plan({1: "a"}, (Migration(1, "a", ()), Migration(2, "b", ()))) == [Migration(2, "b", ())]


def test_script_splitting_keeps_statements_whole() -> None:
    m = Migration.from_script(1, "x", "CREATE TABLE a (x TEXT DEFAULT ';');\n\nSELECT 1;\n")
    assert m.statements == ("CREATE TABLE a (x TEXT DEFAULT ';')", "SELECT 1")


def test_reopening_a_store_keeps_data(tmp_path: Path) -> None:
    path = tmp_path / "chat.db"
    store = SqliteStore(path)
    user = store.create_user("kept")
    store.close()
    reopened = SqliteStore(path)
    assert reopened.get_user(user.id) == user
    reopened.close()


def test_concurrent_postgres_starts_migrate_once(postgres_url: str) -> None:
    starts = 6
    barrier = threading.Barrier(starts)
    stores: list[PostgresStore] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def start() -> None:
        barrier.wait()
        try:
            made = PostgresStore(postgres_url, min_size=1, max_size=1)
        except BaseException as exc:
            errors.append(exc)
        else:
            with lock:
                stores.append(made)

    threads = [threading.Thread(target=start) for _ in range(starts)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        with psycopg.connect(postgres_url) as conn:
            shipped = [(m.version,) for m in PG_MIGRATIONS]
            assert conn.execute(
                "SELECT version FROM schema_version ORDER BY version").fetchall() == shipped
        user = stores[0].create_user("shared")
        assert all(s.get_user(user.id) == user for s in stores)
    finally:
        for s in stores:
            s.close()
