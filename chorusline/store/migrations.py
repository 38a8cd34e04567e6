"""Versioned schema migrations, applied when a store starts.

Each migration runs in the same transaction as the ``schema_version`` row that records
it, so a crash mid-way leaves the database at the previous version, never half-way
(both SQLite and PostgreSQL have transactional DDL). Starting twice is a no-op.

Concurrent starts are serialised by the database itself: ``BEGIN IMMEDIATE`` on SQLite
and a transaction-scoped advisory lock on PostgreSQL, taken before anything is read, so
several replicas booting against one fresh database cannot race to create the tables.
A database whose schema is newer than this code, or whose recorded history differs from
it, is refused: running old code against it could corrupt data.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

# Any constant works as long as nothing else in the database uses it; this one spells
# "chorusln" in ASCII.
ADVISORY_LOCK_ID = 0x63686F7275736C6E


class MigrationError(RuntimeError):
    """The database's schema history does not fit this version of the code."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]

    @classmethod
    def from_script(cls, version: int, name: str, script: str) -> Migration:
        """Split a script on statement-ending semicolons (the drivers run one at a time;
        sqlite3's ``executescript`` would commit behind our back)."""
        parts = (p.strip() for p in re.split(r";\s*$", script, flags=re.MULTILINE))
        return cls(version, name, tuple(p for p in parts if p))


def plan(applied: dict[int, str], migrations: Sequence[Migration]) -> list[Migration]:
    """The migrations still to run, after checking ``applied`` is a prefix of ours."""
    known = {m.version: m for m in migrations}
    if len(known) != len(migrations) or sorted(known) != list(range(1, len(known) + 1)):
        raise MigrationError("migration versions must be 1, 2, 3, ... without gaps")
    for version, name in applied.items():
        if version not in known:
            raise MigrationError(
                f"database schema version {version} ({name!r}) is newer than this code"
            )
        if known[version].name != name:
            raise MigrationError(
                f"schema version {version} is {name!r} in the database but "
                f"{known[version].name!r} here"
            )
    return [m for m in migrations if m.version not in applied]


_SQLITE_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
)"""

_POSTGRES_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)"""


def migrate_sqlite(
    conn: sqlite3.Connection, migrations: Sequence[Migration] | None = None
) -> list[int]:
    """Bring ``conn``'s database up to date; returns the versions applied now.

    ``conn`` must be in autocommit mode (``isolation_level=None``) so that the
    transaction boundaries here are the only ones.
    """
    if migrations is None:
        from chorusline.store._schema_sqlite import MIGRATIONS

        migrations = MIGRATIONS
    # SQLite alters a constraint only by rebuilding the table (new table, copy, drop,
    # rename), and with foreign keys on, dropping a referenced table would delete its
    # rows' references or fail. So, as SQLite's documentation prescribes, foreign keys
    # are off while migrating (the pragma is ignored inside a transaction, hence here)
    # and checked as a whole before the commit: a migration cannot leave a dangling one.
    enforced = bool(conn.execute("PRAGMA foreign_keys").fetchone()[0])
    conn.execute("PRAGMA foreign_keys = OFF")
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(_SQLITE_VERSION_TABLE)
            rows = conn.execute("SELECT version, name FROM schema_version").fetchall()
            applied = {int(v): str(n) for v, n in rows}
            todo = plan(applied, migrations)
            for migration in todo:
                for statement in migration.statements:
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_version (version, name) VALUES (?, ?)",
                    (migration.version, migration.name),
                )
            dangling = conn.execute("PRAGMA foreign_key_check").fetchall() if todo else []
            if dangling:
                raise MigrationError(
                    f"migrating would leave {len(dangling)} broken foreign key(s), "
                    f"first in table {dangling[0][0]!r}"
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    finally:
        if enforced:
            conn.execute("PRAGMA foreign_keys = ON")
    return [m.version for m in todo]


def migrate_postgres(
    conn: psycopg.Connection[Any], migrations: Sequence[Migration] | None = None
) -> list[int]:
    """Bring ``conn``'s database up to date; returns the versions applied now."""
    if migrations is None:
        from chorusline.store._schema_postgres import MIGRATIONS

        migrations = MIGRATIONS
    from psycopg.rows import tuple_row

    # The caller's connection may have any row factory (the pool's returns dicts).
    with conn.transaction(), conn.cursor(row_factory=tuple_row) as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (ADVISORY_LOCK_ID,))
        cur.execute(_POSTGRES_VERSION_TABLE)
        cur.execute("SELECT version, name FROM schema_version")
        applied = {int(row[0]): str(row[1]) for row in cur.fetchall()}
        todo = plan(applied, migrations)
        for migration in todo:
            for statement in migration.statements:
                cur.execute(statement.encode())
            cur.execute(
                "INSERT INTO schema_version (version, name) VALUES (%s, %s)",
                (migration.version, migration.name),
            )
    return [m.version for m in todo]
