"""The HTTP layer's refusals as a run sees them (issues 9.3, 9.5 and 9.6).

A wait past the budget and a garbled create answer fail their records, not
the run, and never sleep or write twice; a ``next`` link to another origin
fails the run, and no credentials reach that origin.
"""

from __future__ import annotations

import json
import time

import httpx
import pytest
from structlog.testing import capture_logs

from sandbox.piriod import SANDBOX_API_TOKEN
from sandbox.server import Sandbox
from state.store import Store
from worker.config import AppConfig
from worker.sync import run_pipeline

PIPELINE = "thredfi_to_bigcapital"
SQLITE_ONLY = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)


class GarbleFirstCreate(httpx.AsyncBaseTransport):
    """The sandbox, except that the first Bigcapital create's answer (the create is applied) is garbled."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.garbled = 0
        self.creates = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        is_create = request.method == "POST" and request.url.path == "/bigcapital/api/customers"
        self.creates += is_create
        if is_create and self.garbled == 0:
            self.garbled += 1
            await response.aread()
            return httpx.Response(201, content=b"<html>upstream reset</html>", headers={"content-type": "text/html"})
        return response


def _seed(sandbox: Sandbox, count: int) -> None:
    sandbox["thredfi"].seed_fake(count)
    for record in sandbox["thredfi"].records.values():
        record["currency"] = "USD"  # Bigcapital requires a currency


@SQLITE_ONLY
async def test_given_retry_after_of_an_hour_on_creates_when_run_then_records_fail_at_once_and_run_goes_on(
    sandbox: Sandbox, config: AppConfig, store: Store, transport: httpx.ASGITransport
) -> None:
    _seed(sandbox, 3)
    sandbox["bigcapital"].faults.add("rate_limit", method="POST", times=None, retry_after=3600)

    started = time.monotonic()
    result = await run_pipeline(config, PIPELINE, store=store, transports=dict.fromkeys(config.connections, transport))

    assert time.monotonic() - started < 10.0  # no hour-long (nor budget-long) sleep
    assert result.counts.failed == 3, result.summary()
    assert result.exit_code == 1, result.summary()
    assert sandbox["bigcapital"].records == {}


@SQLITE_ONLY
async def test_given_garbled_create_answer_when_run_then_deferred_recovered_by_its_key_and_never_sent_twice(
    sandbox: Sandbox, config: AppConfig, store: Store, transport: httpx.ASGITransport
) -> None:
    _seed(sandbox, 3)
    garbling = GarbleFirstCreate(transport)
    transports: dict[str, httpx.AsyncBaseTransport] = dict.fromkeys(config.connections, transport)
    transports["bigcapital"] = garbling

    with capture_logs() as events:
        result = await run_pipeline(config, PIPELINE, store=store, transports=transports)

    deferred = [e for e in events if e["event"] == "record_deferred"]
    assert garbling.garbled == 1
    assert [e["error"] for e in deferred] == ["bigcapital answered the create with a body that is not JSON (HTTP 201)"]
    assert garbling.creates == 3  # the garbled create was applied: it is never sent again
    assert len(sandbox["bigcapital"].records) == 3  # and found again by its e-mail, not created twice
    assert result.exit_code == 0, result.summary()
    assert result.counts.created == 3


class LinkToEvil(httpx.AsyncBaseTransport):
    """The sandbox, except that Piriod's first listing page links to another host; that host is kept."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.evil: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == "evil.test":
            self.evil.append(request)
            return httpx.Response(200, json={"count": 0, "next": None, "results": []})
        response = await self.inner.handle_async_request(request)
        if request.method == "GET" and request.url.path == "/piriod/customers/":
            body = json.loads(await response.aread())
            body["next"] = "http://evil.test/piriod/customers/?page=2&page_size=100"
            return httpx.Response(200, json=body)
        return response


@SQLITE_ONLY
async def test_given_next_link_to_another_host_when_run_then_run_fails_and_nothing_reaches_that_host(
    sandbox: Sandbox, config: AppConfig, store: Store, transport: httpx.ASGITransport
) -> None:
    sandbox["piriod"].seed_fake(3)
    evil = LinkToEvil(transport)
    transports: dict[str, httpx.AsyncBaseTransport] = dict.fromkeys(config.connections, transport)
    transports["piriod"] = evil

    result = await run_pipeline(config, "piriod_to_thredfi", store=store, transports=transports)

    assert evil.evil == []
    assert result.status == "failed"
    assert result.exit_code == 3
    assert result.error is not None
    assert "refusing to follow a link to http://evil.test:80" in result.error
    assert SANDBOX_API_TOKEN not in result.error
