"""RedisBucket against a real Redis: exact limits, reservations, leases, atomicity under
threads, two nodes sharing one budget, and the fallback policy through a real outage."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import cast
from urllib.parse import urlsplit

import pytest
import redis
import trio

from chorusline.chaos import open_fault_proxy
from chorusline.ratelimit import Decision, RedisBucket, Tier
from tests.services import RedisServer, free_port

TIER = Tier("test", 5, 1000, 3, 1)
Factory = Callable[..., RedisBucket]


@pytest.fixture
def make_bucket(redis_url: str, key_prefix: str) -> Iterator[Factory]:
    """Separate clients per call: each bucket stands for one node."""
    made: list[RedisBucket] = []

    def make(**options: object) -> RedisBucket:
        url = options.pop("url", redis_url)
        bucket = RedisBucket.from_url(str(url), prefix=key_prefix, **options)  # type: ignore[arg-type]
        made.append(bucket)
        return bucket

    yield make
    for bucket in made:
        bucket.close()


def pass_time(bucket: RedisBucket, key: str, seconds: float) -> None:
    """Make ``seconds`` of Redis time pass for one key by moving its stored timestamps
    and lease expiries back: the script's clock is the server's, so this is how a test
    injects time there."""
    client = bucket.client
    state, leases, pending, _ = bucket.redis_keys(key)
    for field in ("rt", "tt"):
        value = client.hget(state, field)
        if value is not None:
            client.hset(state, field, repr(float(value) - seconds))
    for zset in (leases, pending):
        entries = cast(list[tuple[bytes, float]], client.zrange(zset, 0, -1, withscores=True))
        for member, score in entries:
            client.zadd(zset, {member: score - seconds})


def admit(bucket: RedisBucket, key: str, rid: str, tokens: int = 0, tier: Tier = TIER) -> Decision:
    decision = bucket.acquire(key, tier, rid, tokens)
    bucket.release(key, tier, rid)
    return decision


def test_exactly_the_limit_passes_then_retry_after_and_refill(make_bucket: Factory) -> None:
    bucket = make_bucket()
    for i in range(5):
        decision = admit(bucket, "k", f"r{i}")
        assert decision.allowed and decision.backend == "redis" and not decision.fallback
    refused = admit(bucket, "k", "r5")
    assert not refused.allowed and refused.reason == "requests"
    assert 11.5 < refused.retry_after <= 12.0  # 5 per minute: one per 12 s, less elapsed
    assert refused.headers()["retry-after"] == "12"
    pass_time(bucket, "k", 12.0)
    assert admit(bucket, "k", "r6").allowed
    assert not admit(bucket, "k", "r7").allowed
    pass_time(bucket, "k", 60.0)
    assert bucket.peek("k", TIER).remaining_requests == 5


def test_tokens_reserved_then_settled(make_bucket: Factory) -> None:
    bucket = make_bucket()
    first = bucket.acquire("k", TIER, "a", 900)
    assert first.allowed and first.reserved_tokens == 900 and first.remaining_tokens == 100
    assert bucket.acquire("k", TIER, "b", 200).reason == "tokens"
    assert bucket.settle("k", TIER, "a", 150) is True
    assert bucket.settle("k", TIER, "a", 150) is False
    assert bucket.peek("k", TIER).remaining_tokens == 850
    second = bucket.acquire("k", TIER, "b", 200)
    assert second.allowed and second.remaining_tokens == 650
    assert bucket.settle("k", TIER, "b", 1500) is True  # 1300 over: debt
    in_debt = bucket.acquire("k", TIER, "c", 0)
    assert in_debt.reason == "tokens" and in_debt.retry_after == pytest.approx(39.0, abs=0.5)


def test_concurrency_and_idempotent_release(make_bucket: Factory) -> None:
    bucket = make_bucket()
    for rid in "abc":
        assert bucket.acquire("k", TIER, rid, 0).allowed
    refused = bucket.acquire("k", TIER, "d", 0)
    assert refused.reason == "concurrency" and refused.active_streams == 3
    assert bucket.release("k", TIER, "a") is True
    assert bucket.release("k", TIER, "a") is False
    assert bucket.acquire("k", TIER, "d", 0).allowed
    again = bucket.acquire("k", TIER, "d", 0)  # a retry of the same turn is free
    assert again.allowed and again.remaining_requests == 1


def test_a_crashed_nodes_slots_come_back_when_their_leases_expire(make_bucket: Factory) -> None:
    crashed, survivor = make_bucket(lease_ttl=300.0), make_bucket(lease_ttl=300.0)
    for rid in "abc":
        assert crashed.acquire("k", TIER, rid, 0).allowed
    crashed.close()  # the node is gone without releasing anything
    assert survivor.acquire("k", TIER, "d", 0).reason == "concurrency"
    pass_time(survivor, "k", 299.0)
    assert survivor.acquire("k", TIER, "d", 0).reason == "concurrency"
    pass_time(survivor, "k", 1.0)
    decision = survivor.acquire("k", TIER, "d", 0)
    assert decision.allowed and decision.active_streams == 1


def test_two_nodes_share_one_budget(make_bucket: Factory) -> None:
    node_a, node_b = make_bucket(), make_bucket()
    results = [admit(node, "shared", f"r{i}") for i, node in enumerate([node_a, node_b] * 4)]
    assert [d.allowed for d in results] == [True] * 5 + [False] * 3
    assert node_a.acquire("shared", TIER, "x", 0).reason == "requests"
    assert admit(node_a, "other-key", "y").allowed  # keys are independent
    pass_time(node_a, "shared", 12.0)
    assert node_b.acquire("shared", TIER, "z", 0).allowed
    assert node_a.release("shared", TIER, "z") is True  # any node may release


def test_one_script_per_check_is_atomic_under_50_threads(make_bucket: Factory) -> None:
    bucket = make_bucket()
    tier = Tier("burst", 20, 10**6, 7, 0)
    barrier = threading.Barrier(50)
    streams: list[Decision] = []
    requests: list[Decision] = []
    lock = threading.Lock()

    def hit(i: int) -> None:
        barrier.wait()
        held = bucket.acquire("streams", tier, f"s{i}", 1)  # never released
        single = admit(bucket, "requests", f"q{i}", 1, tier=Tier("burst", 20, 10**6, 100, 0))
        with lock:
            streams.append(held)
            requests.append(single)

    started = time.monotonic()
    threads = [threading.Thread(target=hit, args=(i,)) for i in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    assert sum(d.allowed for d in streams) == 7  # concurrency never refills: exact
    # 20 per minute refills one request every 3 s; only that may add to the 20.
    assert 20 <= sum(d.allowed for d in requests) <= 20 + int(elapsed / 3)
    assert all(d.backend == "redis" for d in streams + requests)


def test_keys_expire_instead_of_piling_up(make_bucket: Factory, redis_url: str) -> None:
    bucket = make_bucket(lease_ttl=120.0)
    bucket.acquire("k", TIER, "a", 500)
    client = redis.Redis.from_url(redis_url)
    state, leases, pending, reserved = bucket.redis_keys("k")
    assert 0 < client.pttl(state) <= 61_000  # a full bucket needs no key
    for key in (leases, pending, reserved):
        assert 120_000 < client.pttl(key) <= 121_000
    client.close()


def test_an_unreachable_redis_falls_back_to_local_limits(
    make_bucket: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    now = [0.0]
    bucket = make_bucket(url=f"redis://127.0.0.1:{free_port()}/0", clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="chorusline.ratelimit"):
        decisions = [admit(bucket, "k", f"r{i}") for i in range(6)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False]
    assert all(d.backend == "local" and d.fallback for d in decisions)
    assert decisions[-1].reason == "requests" and decisions[-1].retry_after == pytest.approx(12)
    warnings = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(warnings) == 1
    stats = bucket.stats()
    assert stats.degraded and stats.outages == 1 and stats.fallbacks == 6
    assert stats.redis_errors == 1  # probed once: no further tries within probe_interval
    now[0] = 1.0
    assert not admit(bucket, "k", "r6").allowed
    assert bucket.stats().redis_errors == 2 and len(caplog.records) == 1
    assert bucket.peek("k", TIER).fallback


def test_outage_and_recovery_with_a_real_server(
    make_bucket: Factory,
    spare_redis: Callable[[], RedisServer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = spare_redis()
    server.start()
    now = [0.0]
    bucket = make_bucket(url=server.url, clock=lambda: now[0])
    caplog.set_level(logging.INFO, logger="chorusline.ratelimit")
    shared = bucket.acquire("k", TIER, "in-redis", 100)
    assert shared.backend == "redis"

    server.stop()
    during = bucket.acquire("k", TIER, "in-outage", 100)
    assert during.allowed and during.backend == "local" and during.fallback
    assert during.remaining_requests == 4  # local buckets start full: per-process budget
    assert bucket.release("k", TIER, "in-redis") is False  # reclaimed by lease expiry
    assert bucket.stats().degraded

    server.start()  # same port, empty: a restarted Redis
    assert bucket.acquire("k", TIER, "too-soon", 0).fallback  # within probe_interval
    now[0] = 1.0
    after = bucket.acquire("k", TIER, "after", 0)
    assert after.backend == "redis" and not after.fallback
    stats = bucket.stats()
    assert not stats.degraded and stats.outages == 1 and stats.fallbacks == 2
    # What was admitted locally is settled and released locally, even now.
    assert bucket.settle("k", TIER, "in-outage", 40) is True
    assert bucket.release("k", TIER, "in-outage") is True
    assert bucket.release("k", TIER, "after") is True
    messages = [r.getMessage() for r in caplog.records]
    assert sum("unreachable" in m for m in messages) == 1
    assert sum("restored" in m for m in messages) == 1


def test_an_empty_key_is_a_caller_bug(make_bucket: Factory) -> None:
    with pytest.raises(ValueError):
        make_bucket().acquire("", TIER, "a", 0)
    with pytest.raises(ValueError):
        make_bucket().acquire("k", TIER, "a", -1)


async def test_a_release_lost_in_a_blip_is_delivered_once_redis_answers(
    redis_url: str, key_prefix: str
) -> None:
    """A cut connection swallows a release: the slot must come back as soon as Redis
    answers again, not when its lease expires ten minutes later."""
    one_stream = Tier("one", 100, 100_000, 1, 1)
    parts = urlsplit(redis_url)
    async with open_fault_proxy((parts.hostname or "127.0.0.1", parts.port or 6379)) as proxy:
        bucket = RedisBucket.from_url(f"redis://{proxy.address}{parts.path}",
                                      prefix=key_prefix, timeout=0.3, probe_interval=0.0)
        try:
            def call(op: str, rid: str) -> object:
                if op == "acquire":
                    return bucket.acquire("k", one_stream, rid, 0)
                return bucket.release("k", one_stream, rid)

            held = await trio.to_thread.run_sync(call, "acquire", "r1")
            assert isinstance(held, Decision) and held.backend == "redis"
            proxy.cut()
            assert await trio.to_thread.run_sync(call, "release", "r1") is False
            proxy.heal()
            after = await trio.to_thread.run_sync(call, "acquire", "r2")
            assert isinstance(after, Decision) and after.backend == "redis"
            assert after.allowed and after.active_streams == 1
        finally:
            bucket.close()
