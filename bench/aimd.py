"""A driver through :class:`connectors.concurrency.AIMDLimiter`: what custsync does once the limiter is hooked in.

Every create goes through a slot of the limiter; a 429 is waited out
(``Retry-After``) and the create sent again, as the connector's retry loop
does. No ``requests_per_second`` is given: the limiter finds the pace.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from bench.clients import CUSTOMERS, _httpx_token
from connectors.concurrency import AIMDLimiter
from connectors.transport import default_transport


async def drive(base_url: str, payloads: Sequence[Mapping[str, Any]], ceiling: int) -> int:
    """Create every payload through the limiter, ``ceiling`` tasks at most; how many were created."""
    limiter = AIMDLimiter("bench", ceiling=ceiling)
    async with httpx.AsyncClient(base_url=base_url, transport=default_transport(max_connections=ceiling),
                                 timeout=30) as http:  # fmt: skip
        token = await _httpx_token(http)
        http.headers["Authorization"] = f"Bearer {token}"
        queue: asyncio.Queue[Mapping[str, Any]] = asyncio.Queue()
        for payload in payloads:
            queue.put_nowait(payload)
        created = 0

        async def worker() -> None:
            nonlocal created
            while not queue.empty():
                payload = queue.get_nowait()
                for _ in range(20):
                    async with limiter.slot() as permit:
                        answer = await http.post(CUSTOMERS, json=payload)
                        permit.observe(answer.status_code, answer.headers)
                    if answer.status_code != 429:
                        created += answer.is_success
                        break
                    await asyncio.sleep(float(answer.headers.get("Retry-After", "1")))

        await asyncio.gather(*(worker() for _ in range(ceiling)))
    return created
