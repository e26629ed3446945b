"""The AIMD limiter's state shared through Redis, by every worker of a service.

:class:`connectors.concurrency.AIMDLimiter` keeps one :class:`AIMDState` per
connection; with :class:`RedisState` as its store, that state is one Redis
key per connection (``custsync:aimd:NAME``), so that all workers together
keep within what the API allows: a 429 seen by one worker halves the limit of
all, and a request in flight anywhere counts against it.

Each change is atomic: the key is read under ``WATCH``, changed by the same
pure functions the in-process state uses, and written back in a
``MULTI``/``EXEC`` that fails when another worker wrote in between, in
which case it is read and changed again. The clock is Redis's (``TIME``), so
workers whose clocks disagree share one schedule. The key expires
``ttl_s`` after its last change: an idle connection starts afresh, and a
worker that died with requests in flight cannot hold their slots longer
than their lease (``connectors.concurrency.LEASE_S``); a dead process of this
host (a killed prefork child, a crashed CLI run) holds none at all: its
leases are dropped at the next change.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
from collections.abc import Callable
from typing import TypeVar

import redis.asyncio as aioredis
from redis.exceptions import WatchError

from connectors.concurrency import AIMDState, lease_process

_HOST = socket.gethostname()

T = TypeVar("T")
PREFIX = "custsync:aimd:"


def _dead_here(token: str) -> bool:
    """Whether a lease was taken by a process of this host that is gone."""
    taker = lease_process(token)
    if taker is None or taker[0] != _HOST or taker[1] == os.getpid():
        return False
    try:
        os.kill(taker[1], 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


class RedisState:
    """A :class:`connectors.concurrency.StateStore` in Redis.

    Args:
        client: an asyncio Redis client.
        prefix: the keys' prefix (one key per connection after it).
        ttl_s: seconds a key outlives its last change.
        attempts: how many times a change is tried when other workers keep
            writing the same key (then :class:`RuntimeError`).
    """

    def __init__(self, client: aioredis.Redis, *, prefix: str = PREFIX, ttl_s: int = 600, attempts: int = 100) -> None:
        self._client = client
        self.prefix = prefix
        self.ttl_s = ttl_s
        self.attempts = attempts
        #: how many changes had to be tried again (contention, for reports and tests).
        self.conflicts = 0
        # Changes from this process go one at a time (WATCH fights only between processes).
        self._locks: dict[str, asyncio.Lock] = {}

    def key(self, name: str) -> str:
        """The Redis key of a connection's state."""
        return f"{self.prefix}{name}"

    async def apply(self, key: str, change: Callable[[AIMDState, float], T]) -> T:
        """Change the connection's state atomically (see the module docstring)."""
        name = self.key(key)
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock, self._client.pipeline(transaction=True) as pipe:
            for _ in range(self.attempts):
                try:
                    await pipe.watch(name)
                    raw = await pipe.get(name)
                    seconds, micros = await pipe.time()
                    state = AIMDState.from_json(json.loads(raw)) if raw else AIMDState()
                    state.leases = {t: until for t, until in state.leases.items() if not _dead_here(t)}
                    result = change(state, seconds + micros / 1_000_000)
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.set(name, json.dumps(state.to_json()), ex=self.ttl_s)
                    await pipe.execute()
                except WatchError:
                    self.conflicts += 1
                    await pipe.reset()  # type: ignore[no-untyped-call]
                    await asyncio.sleep(random.uniform(0, 0.002))  # noqa: S311 - jitter, not security
                else:
                    return result
        raise RuntimeError(f"the concurrency state {name} kept changing under {self.attempts} attempts")

    async def forget(self, key: str) -> None:
        """Drop a connection's state (it starts afresh)."""
        await self._client.delete(self.key(key))


__all__ = ["PREFIX", "RedisState"]
