"""The server-backed store: PostgreSQL through a psycopg 3 connection pool.

Each store call borrows a pooled connection for exactly one transaction. The pool checks
a connection before lending it, so connections killed behind our back (a database
restart, a failover, an idle-session timeout, ``pg_terminate_backend``) are replaced
transparently rather than surfacing as an error on the next request; the pool also
reconnects in the background once the server is back. A call that was in flight when
its connection died still fails: whether its commit landed is unknowable, so retrying
it is the caller's decision (turns use idempotency keys for exactly that).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.rows import DictRow, dict_row
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout

from chorusline.protocols import StoreUnavailable
from chorusline.store._conversations import ConversationsMixin
from chorusline.store._credentials import CredentialsMixin
from chorusline.store._events import EventsMixin
from chorusline.store._messages import MessagesMixin
from chorusline.store._sharing import SharingMixin
from chorusline.store._sql import Clock, Row
from chorusline.store._tool_turns import ToolTurnsMixin
from chorusline.store.migrations import migrate_postgres

PgConnection = psycopg.Connection[DictRow]


@functools.lru_cache(maxsize=512)
def _to_pyformat(sql: str) -> bytes:
    # The shared SQL contains no literal ``%`` or ``?`` outside placeholders.
    return sql.replace("?", "%s").encode()


class _PgTx:
    def __init__(self, cur: psycopg.Cursor[DictRow]) -> None:
        self._cur = cur

    def execute(self, sql: str, params: Sequence[object] = ()) -> int:
        self._cur.execute(_to_pyformat(sql), tuple(params))
        return self._cur.rowcount

    def fetchone(self, sql: str, params: Sequence[object] = ()) -> Row | None:
        self._cur.execute(_to_pyformat(sql), tuple(params))
        return self._cur.fetchone()

    def fetchall(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        self._cur.execute(_to_pyformat(sql), tuple(params))
        return self._cur.fetchall()


class PostgresStore(
    CredentialsMixin, ConversationsMixin, MessagesMixin, SharingMixin, EventsMixin,
    ToolTurnsMixin,
):
    """``conninfo`` is a libpq URL or key/value string; migrations run on construction."""

    like_operator = "ILIKE"
    _for_update = " FOR UPDATE"

    def __init__(
        self,
        conninfo: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        timeout: float = 10.0,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(clock)
        self._timeout = timeout
        self._pool: ConnectionPool[PgConnection] = ConnectionPool(
            conninfo,
            connection_class=PgConnection,
            kwargs={"autocommit": True, "row_factory": dict_row},
            min_size=min_size,
            max_size=max_size,
            timeout=timeout,
            check=ConnectionPool.check_connection,
            name="chorusline-store",
            open=False,
        )
        try:
            self._pool.open(wait=True, timeout=timeout)
            with self._pool.connection() as conn:
                migrate_postgres(conn)
        except PoolTimeout as exc:
            self._pool.close()
            raise StoreUnavailable(f"PostgreSQL not reachable within {timeout}s") from exc
        except BaseException:
            self._pool.close()
            raise

    @contextmanager
    def _transaction(self, *, write: bool = True) -> Iterator[_PgTx]:
        try:
            with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
                yield _PgTx(cur)
        except PoolTimeout as exc:
            raise StoreUnavailable(f"no database connection within {self._timeout}s") from exc
        except PoolClosed as exc:
            raise StoreUnavailable("store is closed") from exc
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(f"database connection failed: {exc}") from exc

    def _ts_in(self, value: datetime) -> object:
        return value

    def _ts_out(self, raw: Any) -> datetime:
        if not isinstance(raw, datetime):
            raise TypeError(f"expected a timestamptz, got {type(raw).__name__}")
        return raw.astimezone(UTC)

    @property
    def pool(self) -> ConnectionPool[PgConnection]:
        """The pool itself, for metrics (``pool.get_stats()``) and tests."""
        return self._pool

    def ping(self) -> None:
        with self._transaction(write=False) as tx:
            tx.fetchone("SELECT 1 AS one")

    def close(self) -> None:
        self._pool.close()
