"""The bucket actors: one key's limits behind Acquire/Settle/Release/Peek, in process
(time injected) and through Redis (in a worker thread)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis
import trio
import trio.testing

from chorusline.actors import ActorRef, ActorSpec, ActorSystem, open_actor_system
from chorusline.chat.bucket import (
    Acquire,
    BucketActor,
    Peek,
    RedisBucketActor,
    Release,
    SetTier,
    Settle,
)
from chorusline.ratelimit import Decision, RedisBucket, Tier

TIER = Tier("test", 3, 1000, 2, 1)


@pytest.fixture
async def system() -> AsyncIterator[ActorSystem]:
    async with open_actor_system("ratelimit-test") as actor_system:
        yield actor_system


async def test_the_actor_enforces_limits_on_trio_time(
    system: ActorSystem, mock_clock: trio.testing.MockClock
) -> None:
    ref = await system.spawn(ActorSpec(lambda: BucketActor(TIER), name="key-1"))
    for i in range(3):
        decision = await ref.ask(Acquire(f"r{i}", 10))
        assert decision.allowed
        assert await ref.ask(Release(f"r{i}"))
    refused: Decision = await ref.ask(Acquire("r3", 10))
    assert refused.reason == "requests" and refused.retry_after == pytest.approx(20.0)
    mock_clock.jump(19.9)
    assert not (await ref.ask(Acquire("r3", 10))).allowed
    mock_clock.jump(0.1)
    assert (await ref.ask(Acquire("r3", 10))).allowed


async def test_settle_refunds_and_release_is_idempotent(system: ActorSystem) -> None:
    now = [0.0]
    ref = await system.spawn(ActorSpec(lambda: BucketActor(TIER, clock=lambda: now[0])))
    first = await ref.ask(Acquire("a", 800))
    assert first.allowed and first.remaining_tokens == 200
    assert (await ref.ask(Acquire("b", 300))).reason == "tokens"
    assert await ref.ask(Settle("a", 100)) is True
    assert (await ref.ask(Peek())).remaining_tokens == 900
    second = await ref.ask(Acquire("b", 300))
    assert second.allowed and second.active_streams == 2
    assert (await ref.ask(Acquire("c", 0))).reason == "concurrency"
    assert await ref.ask(Release("a")) is True
    assert await ref.ask(Release("a")) is False
    assert (await ref.ask(Peek())).active_streams == 1


async def test_explicit_now_overrides_the_clock(system: ActorSystem) -> None:
    ref = await system.spawn(ActorSpec(lambda: BucketActor(TIER, clock=lambda: 0.0)))
    for i in range(3):
        await ref.ask(Acquire(f"r{i}", 0, now=0.0))
        await ref.ask(Release(f"r{i}", now=0.0))
    assert not (await ref.ask(Acquire("x", 0, now=19.0))).allowed
    assert (await ref.ask(Acquire("x", 0, now=20.0))).allowed
    assert (await ref.ask(Peek(now=20.0))).active_streams == 1


async def test_bad_arguments_come_back_and_the_actor_lives_on(system: ActorSystem) -> None:
    ref = await system.spawn(ActorSpec(lambda: BucketActor(TIER, clock=lambda: 0.0)))
    with pytest.raises(ValueError, match="estimated_tokens"):
        await ref.ask(Acquire("a", -3))
    with pytest.raises(ValueError, match="actual_tokens"):
        await ref.ask(Settle("a", -1))
    assert ref.is_alive and (await ref.ask(Acquire("a", 1))).allowed


async def test_set_tier_applies_the_new_plan(system: ActorSystem) -> None:
    ref = await system.spawn(ActorSpec(lambda: BucketActor(TIER, clock=lambda: 0.0)))
    assert await ref.ask(SetTier(Tier("big", 100, 10**6, 50, 0))) is None
    decisions = [await ref.ask(Acquire(str(i), 0)) for i in range(10)]
    assert all(d.allowed for d in decisions) and decisions[-1].tier == "big"
    assert ref.statistics() is not None


async def test_the_redis_actor_speaks_the_same_protocol(
    system: ActorSystem, redis_url: str, key_prefix: str
) -> None:
    bucket = RedisBucket(redis.Redis.from_url(redis_url), prefix=key_prefix)
    try:
        ref: ActorRef = await system.spawn(
            ActorSpec(lambda: RedisBucketActor(bucket, "org-1", TIER))
        )
        first = await ref.ask(Acquire("a", 700))
        assert first.allowed and first.backend == "redis" and first.reserved_tokens == 700
        assert (await ref.ask(Acquire("b", 700))).reason == "tokens"
        assert await ref.ask(Settle("a", 200)) is True
        assert (await ref.ask(Acquire("b", 700))).allowed
        assert (await ref.ask(Acquire("c", 0))).reason == "concurrency"
        assert await ref.ask(Release("a")) is True
        assert await ref.ask(Release("a")) is False
        peek = await ref.ask(Peek())
        assert peek.active_streams == 1 and peek.remaining_requests == 1
        with pytest.raises(ValueError):
            await ref.ask(Acquire("d", -1))
        assert ref.is_alive
        await ref.ask(SetTier(Tier("one", 1, 10, 1, 0)))
        assert (await ref.ask(Peek())).limit_requests == 1
    finally:
        bucket.close()
