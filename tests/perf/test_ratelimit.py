"""``requests_per_second`` spaces requests: no burst meets an API counting fixed one-second windows."""

from __future__ import annotations

import itertools
import time

from connectors.ratelimit import LocalRateLimiter


async def test_given_a_rate_when_acquired_at_once_then_spaced_one_over_rate_apart_from_the_first() -> None:
    limiter = LocalRateLimiter(20)
    stamps = []
    for _ in range(6):
        await limiter.acquire()
        stamps.append(time.monotonic())

    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert min(gaps) >= 0.045, f"no burst: {gaps}"
    assert stamps[-1] - stamps[0] >= 0.245, "six requests at 20 per second span a quarter second"


async def test_given_a_burst_when_asked_for_then_that_many_go_at_once() -> None:
    limiter = LocalRateLimiter(2, burst=3)
    started = time.monotonic()
    for _ in range(3):
        await limiter.acquire()

    assert time.monotonic() - started < 0.1
