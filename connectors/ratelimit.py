"""Requests-per-second limiters: the protocol, and the one for a single process.

The CLI runs one process, so an in-process token bucket is exact. As a
service, several workers call the same API: the Redis-backed limiter that
they share lives with the service (:mod:`worker.ratelimit`); connectors only
see the :class:`RateLimiter` protocol.

:class:`ThrottleGate` paces on what the server says instead: an answer
whose ``X-RateLimit-Remaining`` (or Bigcapital's ``-auth`` variant) is 0
holds the connection's next request until ``X-RateLimit-Reset`` has passed,
so the 429 never comes.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Mapping
from typing import Protocol

#: (remaining, reset) header pairs: Bigcapital's per-credential bucket, then the usual global one.
_THROTTLE_HEADERS = (
    ("X-RateLimit-Remaining-auth", "X-RateLimit-Reset-auth"),
    ("X-RateLimit-Remaining", "X-RateLimit-Reset"),
)
#: a reset this large is a Unix time, not a number of seconds (GitHub's style).
_EPOCH_FROM = 1_000_000_000
#: the share of ``requests_per_second`` the built-in limiters send at. Requests spaced exactly
#: ``1/rate`` apart reach the API with a few milliseconds of jitter, so that an API counting
#: fixed one-second windows (opened by the first request after the last one closed) sees the
#: next window's first request a hair early, and refuses it (the bench: 11 % refused at 1.0).
HEADROOM = 0.95


class RateLimiter(Protocol):
    """Waits until one more request may be sent."""

    async def acquire(self) -> None:
        """Block until a request is allowed."""


class LocalRateLimiter:
    """A token bucket for one process.

    Args:
        rate: requests per second.
        burst: how many may go at once after a quiet spell; 1 by default, so
            requests are spaced ``1/rate`` apart as the service's Redis limiter
            spaces them: a burst would meet an API counting fixed one-second
            windows with more than ``rate`` requests in its first window.
        clock: monotonic seconds (a seam for tests).
    """

    def __init__(self, rate: float, *, burst: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate = rate
        self._capacity = burst if burst is not None else 1.0
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


def _number(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        value = float(raw.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None


class ThrottleGate:
    """Holds a connection's requests while the server says its quota is spent.

    Args:
        clock: monotonic seconds (a seam for tests).
        wall: Unix seconds, for resets given as a time (a seam for tests).
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._wall = wall
        self._open_at = 0.0

    def observe(self, headers: Mapping[str, str]) -> float | None:
        """Read an answer's throttle headers; returns the pause they impose, if any.

        A quota counts as spent when its remaining count is 0 or less; its
        reset is seconds from now, or a Unix time when it is that large.
        Unreadable, infinite or negative values are ignored.
        """
        pause: float | None = None
        for remaining_name, reset_name in _THROTTLE_HEADERS:
            remaining = _number(headers.get(remaining_name))
            reset = _number(headers.get(reset_name))
            if remaining is None or remaining > 0 or reset is None or reset < 0:
                continue
            seconds = reset - self._wall() if reset >= _EPOCH_FROM else reset
            if seconds > 0:
                pause = max(pause or 0.0, seconds)
        if pause is not None:
            self._open_at = max(self._open_at, self._clock() + pause)
        return pause

    def wait(self) -> float:
        """Seconds until the next request may go (0 when it may go now)."""
        return max(self._open_at - self._clock(), 0.0)


__all__ = ["HEADROOM", "LocalRateLimiter", "RateLimiter", "ThrottleGate"]
