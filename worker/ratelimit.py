"""The requests-per-second limiter shared by every worker of the service, through Redis.

:class:`RedisRateLimiter` keeps one schedule per connection in Redis,
spacing requests ``1/rate`` apart, so that all workers together stay under
a connection's ``requests_per_second``. It satisfies
:class:`connectors.ratelimit.RateLimiter`; connectors never import Redis.
"""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis


class RedisRateLimiter:
    """Requests spaced ``1/rate`` seconds apart across every process, through Redis.

    Each :meth:`acquire` reserves the next free slot atomically (a Lua script
    keeps the "theoretical arrival time" of the next request, the GCRA of
    ATM networks) and sleeps until it. Slots are timed by the Redis server's
    clock, so workers on hosts whose clocks disagree still share one
    schedule. Unlike counting requests in fixed one-second windows, this
    never lets a burst at the end of one second meet a burst at the start of
    the next, and a rate below one per second (0.5: one request every two
    seconds) is honoured instead of being rounded up.

    Args:
        client: an asyncio Redis client.
        key: the limiter's name (one per connection).
        rate: requests per second, across all processes.
    """

    #: KEYS[1] the schedule; ARGV[1] the interval in microseconds. Returns the wait in microseconds.
    _SCRIPT = """
local now = redis.call('TIME')
local now_us = tonumber(now[1]) * 1000000 + tonumber(now[2])
local interval = tonumber(ARGV[1])
local slot = tonumber(redis.call('GET', KEYS[1]) or '0')
if slot < now_us then slot = now_us end
local ttl_ms = math.ceil((slot + interval - now_us) / 1000) + 1000
redis.call('SET', KEYS[1], string.format('%d', slot + interval), 'PX', ttl_ms)
return slot - now_us
"""

    def __init__(self, client: aioredis.Redis, key: str, rate: float) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self._client = client
        self._key = f"custsync:rate:{key}"
        self._interval_us = max(1, round(1_000_000 / rate))
        self._script = client.register_script(self._SCRIPT)

    async def acquire(self) -> None:
        """Reserve the next slot of this connection's schedule and wait for it."""
        wait_us = int(await self._script(keys=[self._key], args=[self._interval_us]))
        if wait_us > 0:
            await asyncio.sleep(wait_us / 1_000_000)


__all__ = ["RedisRateLimiter"]
