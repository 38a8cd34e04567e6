"""LocalBucket with injected time: exact limits, refill, reservations, concurrency,
leases, headers, and a property over random arrival times."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from chorusline.ratelimit import Decision, LocalBucket, Tier, format_duration

T0 = 1000.0


def tier(rpm: int = 60, tpm: int = 6000, streams: int = 100) -> Tier:
    return Tier("test", rpm, tpm, streams, 1)


def admit(bucket: LocalBucket, rid: str, now: float, tokens: int = 0) -> Decision:
    """Acquire and release at once: a request that does not hold a stream."""
    decision = bucket.acquire(rid, tokens, now)
    bucket.release(rid, now)
    return decision


def test_n_requests_pass_and_the_next_waits_exactly_one_refill() -> None:
    bucket = LocalBucket(tier(rpm=60), T0)
    for i in range(60):
        assert admit(bucket, f"r{i}", T0).allowed, i
    refused = admit(bucket, "r60", T0)
    assert not refused.allowed and refused.reason == "requests"
    assert refused.retry_after == pytest.approx(1.0)  # 60 per minute: one per second
    assert refused.remaining_requests == 0 and refused.reset_requests == pytest.approx(60.0)
    assert not admit(bucket, "r61", T0 + 0.999).allowed
    assert admit(bucket, "r62", T0 + 1.0).allowed
    assert not admit(bucket, "r63", T0 + 1.0).allowed


def test_a_full_window_refills_the_bucket_but_never_beyond_capacity() -> None:
    bucket = LocalBucket(tier(rpm=10), T0)
    for i in range(10):
        assert admit(bucket, f"a{i}", T0).allowed
    assert not admit(bucket, "x", T0).allowed
    later = T0 + 60.0
    assert bucket.peek(later).remaining_requests == 10
    for i in range(10):
        assert admit(bucket, f"b{i}", later + 3600).allowed  # an hour idle: still only 10
    assert not admit(bucket, "y", later + 3600).allowed


def test_a_refusal_consumes_nothing() -> None:
    bucket = LocalBucket(tier(rpm=5, streams=1), T0)
    assert bucket.acquire("holder", 0, T0).allowed
    for i in range(10):
        assert bucket.acquire(f"c{i}", 0, T0).reason == "concurrency"
    assert bucket.peek(T0).remaining_requests == 4


def test_tokens_are_reserved_at_admission_and_refunded_at_settle() -> None:
    bucket = LocalBucket(tier(tpm=1000), T0)
    first = bucket.acquire("a", 700, T0)
    assert first.allowed and first.reserved_tokens == 700 and first.remaining_tokens == 300
    refused = bucket.acquire("b", 400, T0)
    assert not refused.allowed and refused.reason == "tokens"
    assert refused.retry_after == pytest.approx(100 / (1000 / 60))  # 100 tokens short
    assert bucket.settle("a", 250, T0)  # used 250 of 700: 450 come back
    assert bucket.peek(T0).remaining_tokens == 750
    assert not bucket.settle("a", 250, T0)  # settling twice refunds nothing more
    assert bucket.acquire("b", 400, T0).allowed


def test_settling_above_the_estimate_charges_the_difference_into_debt() -> None:
    bucket = LocalBucket(tier(tpm=600), T0)  # refills 10 tokens a second
    assert bucket.acquire("a", 100, T0).allowed
    assert bucket.settle("a", 800, T0)  # 700 more than reserved: level is -200
    refused = bucket.acquire("b", 0, T0)
    assert not refused.allowed and refused.reason == "tokens"
    assert refused.retry_after == pytest.approx(20.0)
    assert refused.remaining_tokens == 0 and refused.reset_tokens == pytest.approx(80.0)
    assert bucket.acquire("b", 0, T0 + 20.0).allowed


def test_an_estimate_above_the_minute_budget_waits_for_a_full_bucket() -> None:
    bucket = LocalBucket(tier(tpm=1000), T0)
    assert bucket.acquire("small", 1, T0).allowed
    refused = bucket.acquire("huge", 50_000, T0)
    assert refused.reason == "tokens" and refused.retry_after == pytest.approx(0.06)
    big = bucket.acquire("huge", 50_000, T0 + 0.06)
    assert big.allowed and big.reserved_tokens == 1000


def test_concurrency_limit_and_idempotent_release() -> None:
    bucket = LocalBucket(tier(streams=2), T0)
    assert bucket.acquire("a", 0, T0).allowed
    assert bucket.acquire("b", 0, T0).allowed
    refused = bucket.acquire("c", 0, T0)
    assert refused.reason == "concurrency" and refused.retry_after == pytest.approx(1.0)
    assert refused.active_streams == 2
    assert bucket.release("a", T0) is True
    assert bucket.release("a", T0) is False  # the finally and the abort handler both call
    assert bucket.release("never-acquired", T0) is False
    assert bucket.active_streams == 1
    assert bucket.acquire("c", 0, T0).allowed
    assert not bucket.acquire("d", 0, T0).allowed


def test_a_repeated_acquire_is_the_same_turn_and_charges_nothing() -> None:
    bucket = LocalBucket(tier(rpm=60, tpm=1000, streams=1), T0, lease_ttl=100)
    assert bucket.acquire("a", 300, T0).allowed
    again = bucket.acquire("a", 300, T0)
    assert again.allowed and again.reserved_tokens == 300 and again.active_streams == 1
    assert again.remaining_tokens == 700 and again.remaining_requests == 59
    assert bucket.acquire("a", 300, T0 + 90).allowed  # renews the lease: a heartbeat
    assert bucket.acquire("b", 0, T0 + 150).reason == "concurrency"
    assert bucket.acquire("b", 0, T0 + 190).allowed  # the renewed lease lapsed at T0+190


def test_a_lost_release_is_reclaimed_when_the_lease_expires() -> None:
    bucket = LocalBucket(tier(streams=1, tpm=1000), T0, lease_ttl=30)
    assert bucket.acquire("lost", 500, T0).allowed
    assert bucket.acquire("next", 0, T0 + 29.9).reason == "concurrency"
    assert bucket.acquire("next", 0, T0 + 30).allowed
    assert not bucket.settle("lost", 0, T0 + 30)  # the estimate stays charged
    assert not bucket.holds("lost")


def test_release_before_settle_still_settles() -> None:
    bucket = LocalBucket(tier(tpm=1000), T0)
    bucket.acquire("a", 600, T0)
    assert bucket.release("a", T0) and bucket.holds("a")
    assert bucket.settle("a", 100, T0) and not bucket.holds("a")
    assert bucket.peek(T0).remaining_tokens == 900


def test_a_clock_that_steps_back_does_not_refill() -> None:
    bucket = LocalBucket(tier(rpm=1), T0)
    assert admit(bucket, "a", T0).allowed
    assert not admit(bucket, "b", T0 - 500).allowed
    assert not admit(bucket, "c", T0 + 59).allowed
    assert admit(bucket, "d", T0 + 60).allowed


def test_bad_counts_are_rejected() -> None:
    bucket = LocalBucket(tier(), T0)
    with pytest.raises(ValueError):
        bucket.acquire("a", -1, T0)
    with pytest.raises(ValueError):
        bucket.settle("a", -5, T0)


def test_retier_applies_at_once() -> None:
    bucket = LocalBucket(tier(rpm=100, streams=5), T0)
    bucket.retier(Tier("small", 2, 10, 1, 3))
    assert bucket.peek(T0).remaining_requests == 2
    decision = admit(bucket, "a", T0, 10)
    assert decision.allowed and decision.tier == "small" and decision.priority == 3
    assert decision.limit_concurrency == 1 and decision.remaining_tokens == 0
    assert admit(bucket, "b", T0).allowed
    assert admit(bucket, "c", T0).reason == "requests"


def test_headers_of_a_refusal() -> None:
    bucket = LocalBucket(tier(rpm=2, tpm=100), T0)
    ok = bucket.acquire("a", 40, T0)
    assert ok.headers() == {
        "x-ratelimit-limit-requests": "2",
        "x-ratelimit-limit-tokens": "100",
        "x-ratelimit-remaining-requests": "1",
        "x-ratelimit-remaining-tokens": "60",
        "x-ratelimit-reset-requests": "30s",
        "x-ratelimit-reset-tokens": "24s",
    }
    bucket.acquire("b", 0, T0)
    refused = bucket.acquire("c", 0, T0 + 0.5)
    headers = refused.headers()
    assert headers["retry-after"] == "30"  # 29.5 s, rounded up to whole seconds
    assert headers["retry-after-ms"] == "29500"
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert headers["x-ratelimit-reset-requests"] == "59.5s"
    assert refused.retry_after_header == 30 and ok.retry_after_header == 0


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (0.0201, "21ms"), (0.999, "999ms"), (1, "1s"), (8.64, "8.64s"),
     (60, "1m0s"), (360, "6m0s"), (90.5, "1m30.5s"), (3723, "1h2m3s"), (-4, "0s")],
)
def test_durations_are_formatted_like_openai(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@settings(max_examples=200, deadline=None)
@given(
    rpm=st.integers(1, 30),
    gaps=st.lists(st.floats(0, 20, allow_nan=False), min_size=1, max_size=150),
)
def test_random_arrivals_never_exceed_limit_plus_refill(rpm: int, gaps: list[float]) -> None:
    """In any window [a, b] at most rpm + rpm*(b-a)/60 requests pass (the documented
    token-bucket burst), and the limiter is not stricter than that: once 60/rpm seconds
    have passed since the last admission, the next request passes. (The 1e-3 slack is
    local.EPSILON, 1e-6 of a request per admission, summed over at most 150.)"""
    bucket = LocalBucket(tier(rpm=rpm, tpm=10**9), 0.0)
    now, allowed = 0.0, []
    last: float | None = None
    for i, gap in enumerate(gaps):
        now += gap
        ok = admit(bucket, str(i), now).allowed
        if last is None or now - last >= 60 / rpm + 1e-9:
            assert ok, (i, now, last)
        if ok:
            allowed.append(now)
            last = now
    for i, start in enumerate(allowed):
        for j in range(i, len(allowed)):
            count = j - i + 1
            assert count <= rpm + rpm * (allowed[j] - start) / 60 + 1e-3


@settings(max_examples=100, deadline=None)
@given(
    tpm=st.integers(10, 1000),
    arrivals=st.lists(
        st.tuples(st.floats(0, 10, allow_nan=False), st.integers(0, 1200)), max_size=100
    ),
)
def test_reserved_tokens_in_any_window_stay_within_budget(
    tpm: int, arrivals: list[tuple[float, int]]
) -> None:
    bucket = LocalBucket(tier(rpm=10**6, tpm=tpm), 0.0)
    now, charged = 0.0, []
    for i, (gap, estimate) in enumerate(arrivals):
        now += gap
        decision = admit(bucket, str(i), now, estimate)
        if decision.allowed:
            assert decision.reserved_tokens == min(estimate, tpm)
            charged.append((now, decision.reserved_tokens))
    for i, (start, _) in enumerate(charged):
        total = 0
        for end, amount in charged[i:]:
            total += amount
            assert total <= tpm + tpm * (end - start) / 60 + 1e-3
