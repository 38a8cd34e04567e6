"""The embedded default store: one SQLite file, no server to run.

One connection serves every thread, guarded by a lock. SQLite admits one writer at a
time anyway, and a single connection means no ``SQLITE_BUSY`` between our own threads;
WAL mode still lets other processes (the ``chorusline keys`` CLI, a backup) read while
we write. Write transactions start with ``BEGIN IMMEDIATE`` so that a read-then-write
sequence cannot deadlock against another process upgrading its own lock.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from chorusline.protocols import StoreUnavailable
from chorusline.store._conversations import ConversationsMixin
from chorusline.store._credentials import CredentialsMixin
from chorusline.store._events import EventsMixin
from chorusline.store._messages import MessagesMixin
from chorusline.store._sharing import SharingMixin
from chorusline.store._sql import Clock, Row
from chorusline.store._tool_turns import ToolTurnsMixin
from chorusline.store.migrations import migrate_sqlite

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


class _SqliteTx:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Sequence[object] = ()) -> int:
        return self._conn.execute(sql, tuple(params)).rowcount

    def fetchone(self, sql: str, params: Sequence[object] = ()) -> Row | None:
        cur = self._conn.execute(sql, tuple(params))
        row = cur.fetchone()
        # Drain the cursor: an UPDATE ... RETURNING only completes once fully stepped.
        cur.fetchall()
        return None if row is None else dict(row)

    def fetchall(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        return [dict(r) for r in self._conn.execute(sql, tuple(params)).fetchall()]


class SqliteStore(
    CredentialsMixin, ConversationsMixin, MessagesMixin, SharingMixin, EventsMixin,
    ToolTurnsMixin,
):
    """``path`` is a file (created if missing) or ``":memory:"`` for a private store."""

    like_operator = "LIKE"  # case-insensitive for ASCII, which is SQLite's own limit

    def __init__(
        self, path: str | Path, *, clock: Clock | None = None, timeout: float = 30.0
    ) -> None:
        super().__init__(clock)
        self._lock = threading.Lock()
        self._closed = False
        self._conn = sqlite3.connect(
            str(path), timeout=timeout, isolation_level=None, check_same_thread=False
        )
        try:
            self._conn.row_factory = sqlite3.Row
            self._conn.execute("PRAGMA foreign_keys = ON")
            self._conn.execute("PRAGMA journal_mode = WAL")
            # NORMAL in WAL mode loses at most the last transactions on power loss, never
            # integrity; FULL would fsync on every streamed draft update.
            self._conn.execute("PRAGMA synchronous = NORMAL")
            migrate_sqlite(self._conn)
        except BaseException:
            self._conn.close()
            raise

    @contextmanager
    def _transaction(self, *, write: bool = True) -> Iterator[_SqliteTx]:
        with self._lock:
            if self._closed:
                raise StoreUnavailable("store is closed")
            self._conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield _SqliteTx(self._conn)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _ts_in(self, value: datetime) -> object:
        return (value.astimezone(UTC) - _EPOCH) // _US

    def _ts_out(self, raw: Any) -> datetime:
        return _EPOCH + int(raw) * _US

    def ping(self) -> None:
        with self._transaction(write=False) as tx:
            tx.fetchone("SELECT 1 AS one")

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.close()
