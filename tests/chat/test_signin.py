"""The sign-in throttle: failures per key in a sliding window, with the wait it names."""

from __future__ import annotations

import pytest

from chorusline.chat.signin import WINDOW_SECONDS, LoginThrottle
from chorusline.protocols import RateLimited


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_failures_block_then_age_out_and_success_forgets() -> None:
    clock = Clock()
    throttle = LoginThrottle(clock)
    for _ in range(3):
        throttle.check("name:ann", 3)
        throttle.failed("name:ann")
        clock.now += 10
    with pytest.raises(RateLimited) as blocked:
        throttle.check("name:ann", 3)
    assert blocked.value.retry_after == pytest.approx(WINDOW_SECONDS - 30)
    throttle.check("name:bob", 3)  # another key is not affected
    clock.now += WINDOW_SECONDS - 29  # the first failure left the window
    throttle.check("name:ann", 3)
    throttle.forget("name:ann")
    for _ in range(2):
        throttle.failed("name:ann")
    throttle.check("name:ann", 3)
