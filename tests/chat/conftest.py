"""Fixtures for chat-service tests: the real SmolLM2 model, loaded once per session."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from chorusline.runtime import LoadedModel, load_model
from tests.chat.ratelimit.conftest import RedisServer
from tests.chat.store.conftest import POSTGRES_URL


@pytest.fixture(scope="session")
def chat_model() -> LoadedModel:
    return load_model(progress=False)


# -- fault-injection fixtures (test_service_faults.py, test_service_postgres.py) ------------

@pytest.fixture
def service_postgres() -> Iterator[tuple[str, str]]:
    """A throw-away PostgreSQL database for a whole-service test: ``(conninfo, dbname)``.

    Same approach as the store tests: a random database, dropped (with FORCE) afterwards.
    An unreachable server fails the test loudly; it is never skipped.
    """
    try:
        psycopg.connect(POSTGRES_URL, connect_timeout=5).close()
    except psycopg.Error as exc:
        pytest.fail(
            f"PostgreSQL is not answering at {POSTGRES_URL!r} ({exc}); start it or point "
            "CHORUSLINE_TEST_POSTGRES_URL at a server where this user may CREATE DATABASE",
            pytrace=False,
        )
    name = f"chorusline_test_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield make_conninfo(POSTGRES_URL, dbname=name), name
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture
def spare_redis() -> Iterator[Callable[[], RedisServer]]:
    """Private ``redis-server`` processes a test may start and kill to stage an outage
    (the rate-limit tests' ``throwaway_redis``); all are killed afterwards."""
    servers: list[RedisServer] = []

    def make() -> RedisServer:
        server = RedisServer()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()
