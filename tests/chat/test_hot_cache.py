"""``HotCache`` against real Redis: the shared server (a fresh key prefix per test) and
throw-away servers killed and restarted on the same port to stage an outage."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from chorusline.chat.hot_cache import HotCache
from tests.services import RedisServer, free_port

Factory = Callable[..., HotCache]
LOGGER = "chorusline.chat.hot_cache"


def message(seq: int, role: str = "user") -> dict[str, Any]:
    return {"id": f"m{seq}", "seq": seq, "role": role, "content": f"turn {seq} ✓",
            "status": "complete"}


@pytest.fixture
def admin(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def make_cache(redis_url: str, key_prefix: str) -> Iterator[Factory]:
    caches: list[HotCache] = []

    def make(**options: Any) -> HotCache:
        url = options.pop("url", redis_url)
        options.setdefault("prefix", key_prefix)
        cache = HotCache.from_url(url, **options)
        caches.append(cache)
        return cache

    yield make
    for cache in caches:
        cache.close()


def test_a_miss_is_none(make_cache: Factory) -> None:
    cache = make_cache()
    assert cache.get("nope") is None
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.errors, stats.degraded) == (0, 1, 0, False)


def test_put_then_get_round_trips(make_cache: Factory) -> None:
    cache = make_cache()
    messages = [message(1), message(2, "assistant")]
    assert cache.put("c1", messages) is True
    assert cache.get("c1") == messages
    assert cache.get("c2") is None
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.errors) == (1, 1, 0)


def test_put_replaces_and_an_empty_put_deletes(make_cache: Factory) -> None:
    cache = make_cache()
    cache.put("c", [message(1), message(2)])
    cache.put("c", [message(7)])
    assert cache.get("c") == [message(7)]
    cache.put("c", [])
    assert cache.get("c") is None  # an empty list is a miss: the caller reads the store


def test_put_and_append_keep_the_last_max_messages(make_cache: Factory) -> None:
    cache = make_cache(max_messages=4)
    cache.put("c", [message(i) for i in range(10)])
    assert cache.get("c") == [message(i) for i in range(6, 10)]
    assert cache.append("c", message(10)) is True
    assert cache.append("c", message(11)) is True
    assert cache.get("c") == [message(i) for i in range(8, 12)]


def test_append_only_extends_an_existing_entry(
    make_cache: Factory, admin: redis.Redis
) -> None:
    cache = make_cache()
    assert cache.append("c", message(3)) is False  # a miss: no partial list is created
    assert admin.exists(cache.key("c")) == 0
    assert cache.get("c") is None
    cache.put("c", [message(1), message(2)])
    assert cache.append("c", message(3)) is True
    assert cache.get("c") == [message(1), message(2), message(3)]


def test_invalidate(make_cache: Factory, admin: redis.Redis) -> None:
    cache = make_cache()
    cache.put("c", [message(1)])
    assert cache.invalidate("c") is True
    assert cache.get("c") is None
    assert admin.exists(cache.key("c")) == 0
    assert cache.invalidate("c") is True  # idempotent
    assert cache.append("c", message(2)) is False


def test_writes_set_the_ttl(make_cache: Factory, admin: redis.Redis) -> None:
    cache = make_cache(ttl_seconds=120)
    cache.put("c", [message(1)])
    assert 0 < admin.ttl(cache.key("c")) <= 120
    admin.expire(cache.key("c"), 5)
    cache.append("c", message(2))  # an append renews it
    assert 5 < admin.ttl(cache.key("c")) <= 120


def test_two_nodes_share_the_entries(make_cache: Factory, key_prefix: str) -> None:
    node_a, node_b = make_cache(), make_cache()
    node_a.put("c", [message(1)])
    assert node_b.get("c") == [message(1)]
    assert node_b.append("c", message(2)) is True
    assert node_a.get("c") == [message(1), message(2)]
    node_b.invalidate("c")
    assert node_a.get("c") is None
    other = make_cache(prefix=key_prefix + "other:")  # a different prefix: a different cache
    node_a.put("c", [message(1)])
    assert other.get("c") is None


def test_an_undecodable_entry_is_a_miss_and_is_dropped(
    make_cache: Factory, admin: redis.Redis
) -> None:
    cache = make_cache()
    admin.rpush(cache.key("c"), b"not json", b"[1]")
    assert cache.get("c") is None
    assert admin.exists(cache.key("c")) == 0
    assert cache.stats().errors == 0


def test_caller_bugs_raise(make_cache: Factory) -> None:
    cache = make_cache()
    with pytest.raises(ValueError):
        cache.get("")
    with pytest.raises(ValueError):
        make_cache(max_messages=0)
    with pytest.raises(TypeError):  # not JSON-serialisable: nothing is sent
        cache.put("c", [{"content": object()}])


def test_nothing_listening_is_a_miss_and_probes_once_per_interval(
    make_cache: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    now = [0.0]
    cache = make_cache(url=f"redis://127.0.0.1:{free_port()}/0", clock=lambda: now[0])
    caplog.set_level(logging.INFO, logger=LOGGER)
    assert cache.get("c") is None
    assert cache.put("c", [message(1)]) is False
    assert cache.append("c", message(2)) is False
    assert cache.invalidate("c") is False
    stats = cache.stats()
    assert stats.degraded and stats.outages == 1 and stats.misses == 1
    assert stats.errors == 1  # tried once: nothing more within the probe interval
    now[0] = 1.0
    assert cache.get("c") is None
    assert cache.stats().errors == 2
    assert [r.levelname for r in caplog.records] == ["WARNING"]  # logged once per outage
    assert "unreachable (ConnectionError)" in caplog.records[0].getMessage()


def test_outage_and_recovery_with_a_real_server(
    make_cache: Factory,
    spare_redis: Callable[[], RedisServer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = spare_redis()
    server.start()
    now = [0.0]
    cache = make_cache(url=server.url, clock=lambda: now[0])
    caplog.set_level(logging.INFO, logger=LOGGER)
    cache.put("c", [message(1)])
    assert cache.get("c") == [message(1)]

    server.stop()
    assert cache.get("c") is None
    assert cache.put("c", [message(1), message(2)]) is False
    assert cache.append("c", message(3)) is False
    assert cache.invalidate("c") is False
    stats = cache.stats()
    assert stats.degraded and stats.errors == 1 and stats.outages == 1
    assert stats.pending_invalidations == 1
    now[0] = 1.0
    assert cache.get("c") is None  # the probe fails too
    assert cache.stats().errors == 2

    server.start()  # same port, empty: a restarted Redis
    assert cache.get("c") is None  # within the probe interval: not tried yet
    assert cache.stats().errors == 2
    now[0] = 2.0
    assert cache.put("c", [message(1), message(2)]) is True
    assert cache.append("c", message(3)) is True
    assert cache.get("c") == [message(1), message(2), message(3)]
    stats = cache.stats()
    assert not stats.degraded and stats.errors == 2 and stats.outages == 1
    assert stats.pending_invalidations == 0
    messages = [r.getMessage() for r in caplog.records]
    assert sum("unreachable" in m for m in messages) == 1
    assert sum("caching resumed" in m for m in messages) == 1


def test_a_failed_write_invalidates_the_entry_once_redis_answers(
    spare_redis: Callable[[], RedisServer],
) -> None:
    """Redis keeps its data but refuses this node's commands (an ACL change stands in for
    a partition): the append it missed would leave a stale suffix, so the entry is
    deleted before anything else when the node can talk to Redis again."""
    server = spare_redis()
    server.start()
    admin = redis.Redis.from_url(server.url)
    admin.acl_setuser("node", enabled=True, passwords=["+pw"], keys=["*"], commands=["+@all"])
    now = [0.0]
    url = f"redis://node:pw@127.0.0.1:{server.port}/0"
    cache = HotCache.from_url(url, clock=lambda: now[0])
    other = HotCache.from_url(server.url)  # a healthy node
    try:
        cache.put("c", [message(1)])
        cache.put("d", [message(1)])
        admin.acl_setuser("node", enabled=True, commands=["-@all"])
        assert cache.append("c", message(2)) is False  # the store has 2; the cache has not
        assert cache.stats().pending_invalidations == 1
        assert other.get("c") == [message(1)]  # stale until this node is back (or the TTL)

        admin.acl_setuser("node", enabled=True, commands=["+@all"])
        now[0] = 1.0
        assert cache.get("d") == [message(1)]  # the first call back deletes "c" first
        assert other.get("c") is None
        stats = cache.stats()
        assert not stats.degraded and stats.pending_invalidations == 0 and stats.errors == 1
    finally:
        cache.close()
        other.close()
        admin.close()
