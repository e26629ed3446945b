"""The rate limit every emulator shares (``Emulator.limit_rate``, sandbox/_core.py): the bench's 5 req/s API."""

from __future__ import annotations

import httpx

from sandbox._core import RateLimit
from sandbox.piriod import SANDBOX_API_TOKEN, SANDBOX_WORKSPACE, PiriodEmulator

HEADERS = {"Authorization": f"Token {SANDBOX_API_TOKEN}", "x-simple-workspace": SANDBOX_WORKSPACE}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_given_a_limit_of_3_per_second_when_5_requests_then_2_refused_with_retry_after_and_logged() -> None:
    emulator = PiriodEmulator()
    clock = Clock()
    emulator.rate_limit = RateLimit(3, 1.0, clock=clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=emulator.app), base_url="http://p") as http:
        answers = [await http.get("/customers/", headers=HEADERS) for _ in range(5)]
        admin = await http.get("/_admin/customers")
        clock.now += 1.0
        again = await http.get("/customers/", headers=HEADERS)

    assert [a.status_code for a in answers] == [200, 200, 200, 429, 429]
    assert answers[3].headers["Retry-After"] == "1"
    assert answers[3].json() == {"detail": "Request was throttled."}
    assert "X-RateLimit-Remaining" not in answers[0].headers, "headers only when asked for"
    assert admin.status_code == 200, "the admin surface is never limited"
    assert again.status_code == 200, "a new window"
    assert [r.status for r in emulator.requests] == [200, 200, 200, 429, 429, 200]
    assert emulator.rate_limit.refused == 2


async def test_given_a_limit_with_headers_when_answered_then_limit_remaining_and_reset_on_every_answer() -> None:
    emulator = PiriodEmulator()
    emulator.limit_rate(2, 60, headers=True)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=emulator.app), base_url="http://p") as http:
        first, second, third = [await http.get("/customers/", headers=HEADERS) for _ in range(3)]

    assert (first.headers["X-RateLimit-Limit"], first.headers["X-RateLimit-Remaining"]) == ("2", "1")
    assert second.headers["X-RateLimit-Remaining"] == "0"
    assert third.status_code == 429
    assert int(third.headers["X-RateLimit-Reset"]) in range(59, 61)
    assert int(third.headers["Retry-After"]) in range(59, 61)


async def test_given_no_limit_when_many_requests_then_none_refused() -> None:
    emulator = PiriodEmulator()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=emulator.app), base_url="http://p") as http:
        answers = [await http.get("/customers/", headers=HEADERS) for _ in range(30)]

    assert {a.status_code for a in answers} == {200}
