"""``requests_per_second`` spaces requests: no burst meets an API counting fixed one-second windows."""

from __future__ import annotations

import asyncio
import itertools
import time

import httpx

from connectors.ratelimit import LocalRateLimiter
from connectors.thredfi import ThredfiConnector, ThredfiSettings
from sandbox.thredfi import SANDBOX_API_KEY, SANDBOX_BUSINESS_ID, SANDBOX_PARTNER_UUID, ThredfiEmulator


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


async def test_given_requests_queued_for_their_turn_when_sent_then_the_wait_is_not_counted_in_timeout_s() -> None:
    # Eight requests at 10 per second wait up to 0.8 s for their turn: timeout_s (0.3 s) bounds each exchange only.
    emulator = ThredfiEmulator()
    settings = ThredfiSettings(system="thredfi", base_url="http://thredfi.test", partner_uuid=SANDBOX_PARTNER_UUID,
                               api_key=SANDBOX_API_KEY, business_id=SANDBOX_BUSINESS_ID, timeout_s=0.3,
                               retry_attempts=1)  # fmt: skip
    transport = httpx.ASGITransport(app=emulator.app)
    async with ThredfiConnector("thredfi", settings, transport=transport, limiter=LocalRateLimiter(10)) as connector:
        aimd = connector.http.concurrency
        await connector.request("GET", connector.collection, op="list")  # the tokens first
        await aimd.store.apply(aimd.key, lambda state, _now: setattr(state, "limit", 16.0))  # all eight in flight
        started = time.monotonic()
        await asyncio.gather(*(connector.request("GET", connector.collection, op="list") for _ in range(8)))
        elapsed = time.monotonic() - started

    assert elapsed >= 0.7, "eight requests at 10 per second"
    assert [r.status for r in emulator.requests].count(200) == 11, "none timed out (no retries here)"
