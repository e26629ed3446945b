"""Deadlines, Retry-After and throttle headers, with real waits (issues 9.5 and 8.1).

stamina's testing mode is off here: these tests measure that the waits the
server asks for happen when they fit the retry budget, and that none
happens when it does not. Each bounds its own wall time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
import stamina
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from connectors.auth import parse_delay, retry_after_seconds
from connectors.bigcapital import BigcapitalConnector, BigcapitalSettings
from connectors.errors import RateLimitedError, RetriableError
from connectors.ratelimit import ThrottleGate
from tests.connectors.http_fakes import Hosts, Seen, app, json

EMPTY_PAGE = {"customers": [], "pagination": {"total": 0, "page": 1, "page_size": 100}}


@pytest.fixture(autouse=True)
def _real_waits() -> Iterator[None]:
    with stamina.set_testing(False):
        yield


def books(handler: Any, seen: Seen | None = None, **changes: Any) -> BigcapitalConnector:
    values: dict[str, Any] = {
        "system": "bigcapital",
        "base_url": "http://books.test",
        "api_key": "bc_test_0123456789",
        "retry_timeout_s": 10.0,
        **changes,
    }
    transport = Hosts({"books.test": app(handler, seen, bigcapital=True)})
    return BigcapitalConnector("books", BigcapitalSettings(**values), transport=transport)


class Clock:
    def __init__(self) -> None:
        self.started = time.monotonic()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started


# -- 9.5: timeout_s bounds the whole exchange ---------------------------------------------


async def test_given_answer_trickling_a_byte_every_half_second_when_requested_then_times_out_at_timeout_s() -> None:
    async def trickle(request: Request) -> Response:
        async def body() -> AsyncIterator[bytes]:
            for byte in b'{"customers": [], "pagination": {"total": 0}}':
                yield bytes([byte])
                await asyncio.sleep(0.5)  # each read is quick: only a deadline on the whole stops it

        return StreamingResponse(body(), media_type="application/json")

    clock = Clock()
    async with books(trickle, timeout_s=1.0, retry_attempts=1) as connector:
        with pytest.raises(RetriableError, match=r"no complete answer within 1 s"):
            await connector.check()
    assert clock.elapsed < 3.0  # the body alone would take over 20 s


# -- 9.5: Retry-After, in seconds or as a date, within the budget ---------------------------


def _limited_once(headers: dict[str, str], seen: Seen) -> Any:
    async def handler(request: Request) -> Response:
        if len(seen.paths("GET")) == 1:
            return json({"statusCode": 429, "message": "ThrottlerException: Too Many Requests"}, 429, headers)
        return json(EMPTY_PAGE)

    return handler


@pytest.mark.parametrize("header", ["Retry-After", "Retry-After-auth"])
async def test_given_short_retry_after_when_limited_then_waited_and_retried(header: str) -> None:
    seen = Seen()
    clock = Clock()
    async with books(_limited_once({header: "0.6"}, seen), seen) as connector:
        await connector.check()
    assert len(seen.paths("GET")) == 2
    assert 0.55 <= clock.elapsed < 3.0


@pytest.mark.parametrize(
    "headers",
    [
        {"Retry-After": "120"},
        {"Retry-After-auth": "60"},  # what Bigcapital sends, and all it sends
        {"Retry-After": format_datetime(datetime.now(UTC) + timedelta(hours=1), usegmt=True)},
    ],
    ids=["seconds", "bigcapital-auth", "http-date"],
)
async def test_given_retry_after_past_the_budget_when_limited_then_fails_at_once_without_sleeping(
    headers: dict[str, str],
) -> None:
    seen = Seen()
    clock = Clock()
    async with books(_limited_once(headers, seen), seen, retry_timeout_s=5.0) as connector:
        with pytest.raises(RateLimitedError, match="past the retry budget"):
            await connector.check()
    assert clock.elapsed < 1.5
    assert len(seen.paths("GET")) == 1


async def test_given_a_first_attempt_that_spends_the_whole_budget_when_it_fails_then_no_retry_follows() -> None:
    """The first attempt goes outside stamina; the budget it spent is not given again to the retries."""
    seen = Seen()

    async def slow_then_unavailable(request: Request) -> Response:
        await asyncio.sleep(1.2)  # past retry_timeout_s, within timeout_s
        return json({"statusCode": 503, "message": "Service Unavailable"}, 503)

    clock = Clock()
    async with books(slow_then_unavailable, seen, retry_timeout_s=1.0, timeout_s=5.0) as connector:
        with pytest.raises(RetriableError):
            await connector.check()
    assert len(seen.paths("GET")) == 1
    assert clock.elapsed < 2.5


@pytest.mark.parametrize("attempts", [1, 3])
async def test_given_every_answer_unavailable_when_requested_then_retry_attempts_counts_the_first_one(
    attempts: int,
) -> None:
    seen = Seen()

    async def unavailable(request: Request) -> Response:
        return json({"statusCode": 503, "message": "Service Unavailable"}, 503)

    async with books(unavailable, seen, retry_attempts=attempts) as connector:
        with pytest.raises(RetriableError):
            await connector.check()
    assert len(seen.paths("GET")) == attempts


@pytest.mark.parametrize("value", ["soon", "inf", "nan", "-5", "1e400"])
async def test_given_unusable_retry_after_when_limited_then_ordinary_backoff(value: str) -> None:
    seen = Seen()
    clock = Clock()
    async with books(_limited_once({"Retry-After": value}, seen), seen) as connector:
        await connector.check()
    assert len(seen.paths("GET")) == 2
    assert clock.elapsed < 3.0  # stamina's first wait: 0.2 s plus at most 1 s of jitter


def test_given_retry_after_values_when_parsed_then_seconds_or_dates_and_garbage_ignored() -> None:
    now = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
    at = lambda: now  # noqa: E731
    assert parse_delay("7", now=at) == 7.0
    assert parse_delay(" 2.5 ", now=at) == 2.5
    assert parse_delay("Tue, 01 Dec 2026 12:00:30 GMT", now=at) == 30.0
    assert parse_delay("Tue, 01 Dec 2026 11:00:00 GMT", now=at) == 0.0  # a date gone by: now
    for garbage in (None, "", "soon", "inf", "-inf", "nan", "-1", "Tue, 99 Foo 2026"):
        assert parse_delay(garbage, now=at) is None
    both = httpx.Response(429, headers={"Retry-After": "3", "Retry-After-auth": "9"})
    assert retry_after_seconds(both) == 9.0


# -- 8.1: pace on the throttle headers before a 429 comes --------------------------------------


class Quota:
    """Bigcapital's per-key bucket as recorded: ``limit`` calls per window, then a 429 with Retry-After-auth."""

    def __init__(self, limit: int, window_s: float) -> None:
        self.limit = limit
        self.window_s = window_s
        self.opened = time.monotonic()
        self.used = 0
        self.refused = 0

    async def __call__(self, request: Request) -> Response:
        now = time.monotonic()
        if now - self.opened >= self.window_s:
            self.opened, self.used = now, 0
        reset = max(self.window_s - (now - self.opened), 0.0)
        if self.used >= self.limit:
            self.refused += 1
            headers = {"X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "89", "Retry-After-auth": "60"}
            return json({"statusCode": 429, "message": "ThrottlerException: Too Many Requests"}, 429, headers)
        self.used += 1
        headers = {
            "X-RateLimit-Limit": "100",
            "X-RateLimit-Remaining": "91",
            "X-RateLimit-Reset": "20",
            "X-RateLimit-Limit-auth": str(self.limit),
            "X-RateLimit-Remaining-auth": str(self.limit - self.used),
            "X-RateLimit-Reset-auth": f"{reset:.3f}",
        }
        return json(EMPTY_PAGE, headers=headers)


async def test_given_quota_spent_header_when_next_request_then_waits_for_reset_and_no_429_comes() -> None:
    quota = Quota(limit=2, window_s=1.0)
    clock = Clock()
    async with books(quota) as connector:
        for _ in range(5):
            await connector.check()
    assert quota.refused == 0  # without pacing the third call meets Retry-After-auth: 60
    assert 0.9 <= clock.elapsed < 4.0  # two windows of one second, not a minute


async def test_given_quota_reset_past_the_budget_when_next_request_then_fails_at_once_unsent() -> None:
    seen = Seen()

    async def spent(request: Request) -> Response:
        headers = {"X-RateLimit-Remaining-auth": "0", "X-RateLimit-Reset-auth": "600"}
        return json(EMPTY_PAGE, headers=headers)

    clock = Clock()
    async with books(spent, seen, retry_timeout_s=5.0) as connector:
        await connector.check()
        with pytest.raises(RateLimitedError) as raised:
            await connector.check()
    assert str(raised.value) == "bigcapital check: the quota resets in 600 s, past the retry budget"
    assert clock.elapsed < 1.5
    assert len(seen.paths("GET")) == 1


def test_given_throttle_headers_when_observed_then_pause_only_for_a_spent_quota() -> None:
    now = [100.0]
    gate = ThrottleGate(clock=lambda: now[0], wall=lambda: 1_800_000_000.0)
    assert gate.observe({"X-RateLimit-Remaining": "5", "X-RateLimit-Reset": "20"}) is None
    assert gate.observe({"X-RateLimit-Remaining-auth": "0", "X-RateLimit-Reset-auth": "garbage"}) is None
    assert gate.observe({"X-RateLimit-Remaining": "nan", "X-RateLimit-Reset": "3"}) is None
    assert gate.observe({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "-3"}) is None
    assert gate.wait() == 0.0
    assert gate.observe({"X-RateLimit-Remaining-auth": "0", "X-RateLimit-Reset-auth": "20"}) == 20.0
    assert gate.wait() == 20.0
    now[0] += 15
    assert gate.wait() == 5.0
    # A reset that large is a Unix time (GitHub style): 30 s from the wall clock.
    assert gate.observe({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1800000030"}) == 30.0
