"""Requests-per-second limiters: one per connection, in process or shared via Redis.

The CLI runs one process, so an in-process token bucket is exact. As a
service, several workers call the same API: :class:`RedisRateLimiter`
counts requests in one-second windows in Redis so that all of them
together stay under ``requests_per_second``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol

import redis.asyncio as aioredis


class RateLimiter(Protocol):
    """Waits until one more request may be sent."""

    async def acquire(self) -> None:
        """Block until a request is allowed."""


class LocalRateLimiter:
    """A token bucket for one process.

    Args:
        rate: requests per second.
        burst: how many may go at once after a quiet spell.
        clock: monotonic seconds (a seam for tests).
    """

    def __init__(self, rate: float, *, burst: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate = rate
        self._capacity = burst if burst is not None else max(1.0, rate)
        self._tokens = self._capacity
        self._clock = clock
        self._stamp = clock()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        """Take a token, sleeping until one is available."""
        async with self._lock:
            while True:
                now = self._clock()
                self._tokens = min(self._capacity, self._tokens + (now - self._stamp) * self._rate)
                self._stamp = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                await asyncio.sleep((1 - self._tokens) / self._rate)


class RedisRateLimiter:
    """A fixed one-second window shared by every process through Redis.

    Args:
        client: an asyncio Redis client.
        key: the limiter's name (one per connection).
        rate: requests per second, across all processes.
    """

    def __init__(self, client: aioredis.Redis, key: str, rate: float) -> None:
        self._client = client
        self._key = f"custsync:rate:{key}"
        self._limit = max(1, int(rate))

    async def acquire(self) -> None:
        """Count this request in the current second, waiting for the next when full."""
        while True:
            now = time.time()
            window = int(now)
            key = f"{self._key}:{window}"
            count = await self._client.incr(key)
            if count == 1:
                await self._client.expire(key, 5)
            if count <= self._limit:
                return
            await asyncio.sleep(window + 1 - now + 0.001)


__all__ = ["LocalRateLimiter", "RateLimiter", "RedisRateLimiter"]
