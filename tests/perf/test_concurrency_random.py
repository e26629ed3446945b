"""Issue 12.4 in the request loop: an API refusing at random is not answered by a crawl, a real quota is.

A random 429 (the reliability tests' faulty sandbox) halves the in-flight
limit and delays only its own request; it neither holds the connection nor
teaches a pace. A quota that refuses everything once spent does teach one.
Retries do not sleep here (stamina's testing mode), so any wait measured is
the limiter's own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import stamina

from connectors.concurrency import AIMDLimiter
from connectors.model import Customer
from connectors.thredfi import ThredfiConnector, ThredfiSettings
from sandbox.server import BackgroundServer
from sandbox.thredfi import SANDBOX_API_KEY, SANDBOX_BUSINESS_ID, SANDBOX_PARTNER_UUID, ThredfiEmulator


@pytest.fixture(autouse=True)
def _no_retry_sleeps() -> Iterator[None]:
    with stamina.set_testing(True, attempts=12):
        yield


def _settings(base_url: str, **changes: Any) -> ThredfiSettings:
    values: dict[str, Any] = {"system": "thredfi", "base_url": base_url, "partner_uuid": SANDBOX_PARTNER_UUID,
                              "api_key": SANDBOX_API_KEY, "business_id": SANDBOX_BUSINESS_ID, **changes}  # fmt: skip
    return ThredfiSettings(**values)


async def _in_process(emulator: ThredfiEmulator) -> AsyncIterator[ThredfiConnector]:
    transport = httpx.ASGITransport(app=emulator.app)
    async with ThredfiConnector("thredfi", _settings("http://thredfi.test"), transport=transport) as connector:
        yield connector


async def _create_all(connector: ThredfiConnector, count: int) -> None:
    async def one(i: int) -> None:
        await connector.create(Customer(name=f"Random {i} Ltd", kind="company"), f"perf:{i}")

    await asyncio.gather(*(one(i) for i in range(count)))


@pytest.mark.parametrize("share", [0.05, 1 / 3], ids=["5%", "a third"])
async def test_given_writes_refused_at_random_with_retry_after_when_creating_then_no_hold_no_pace_and_fast(
    share: float,
) -> None:
    emulator = ThredfiEmulator(fault_seed=3)
    emulator.faults.add("rate_limit", method="POST", path="customers", probability=share, times=None, retry_after=1)
    async for connector in _in_process(emulator):
        started = time.monotonic()
        await _create_all(connector, 300)
        elapsed = time.monotonic() - started
        state = await connector.http.concurrency.state()

    refused = sum(1 for r in emulator.requests if r.status == 429)
    assert len(emulator.records) == 300
    assert refused > 10, "the faults fired"
    assert state.rate is None, f"no pace kept from random refusals: {state}"
    assert state.hold_until == 0.0, "a Retry-After holds only its own request"
    # Each refusal held for its 1 s Retry-After would take over `refused` seconds.
    assert elapsed < 15, f"{elapsed:.1f} s for 300 creates with {refused} random refusals"


async def test_given_a_quota_refusing_everything_once_spent_when_creating_then_a_pace_and_few_refused() -> None:
    emulator = ThredfiEmulator()
    with BackgroundServer(emulator.app) as server:
        async with ThredfiConnector("thredfi", _settings(server.url)) as connector:
            await connector.request("GET", connector.collection, op="list")  # the tokens, before the quota
            await asyncio.sleep(0.05)
            emulator.limit_rate(20)
            await asyncio.sleep(1.05)  # a fresh window
            connector.http.concurrency = AIMDLimiter("thredfi", ceiling=16)  # measured from here, not the idle second
            await _create_all(connector, 80)
            state = await connector.http.concurrency.state()
        await asyncio.sleep(0.2)  # the server logs a request after it answered it

    creates = [r.status for r in emulator.requests if r.method == "POST" and "customers" in r.path]
    assert len(emulator.records) == 80
    assert state.rate is not None, "three refusals in a row: a pace"
    assert creates.count(429) / len(creates) < 0.1, f"{creates.count(429)} of {len(creates)} refused"
