"""Issue 12.1: the connector's request loop keeps working over the aiohttp transport (``connectors.transport``).

A real Thredfi connector talks to the Thredfi emulator served by uvicorn on
loopback (a thread), through the chosen transport: the two-step OAuth, a
create and a read, a retry after 503, a timeout as a deadline, a refused
connection, and a connection dropped after a create was applied, which must
not read as "never sent".
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from connectors.errors import FatalError, RetriableError
from connectors.model import Customer
from connectors.thredfi import ThredfiConnector, ThredfiSettings
from connectors.transport import ENV, AiohttpTransport, default_transport
from sandbox.server import BackgroundServer, free_port
from sandbox.thredfi import SANDBOX_API_KEY, SANDBOX_BUSINESS_ID, SANDBOX_PARTNER_UUID, ThredfiEmulator

CUSTOMERS = f"/v1/platform/businesses/{SANDBOX_BUSINESS_ID}/customers/"


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[ThredfiEmulator, str]]:
    emulator = ThredfiEmulator()
    with BackgroundServer(emulator.app) as server:
        yield emulator, server.url


@pytest.fixture
def emulator(served: tuple[ThredfiEmulator, str]) -> ThredfiEmulator:
    emu = served[0]
    emu.reset()
    return emu


def _settings(base_url: str, **changes: Any) -> ThredfiSettings:
    values: dict[str, Any] = {"system": "thredfi", "base_url": base_url, "partner_uuid": SANDBOX_PARTNER_UUID,
                              "api_key": SANDBOX_API_KEY, "business_id": SANDBOX_BUSINESS_ID, **changes}  # fmt: skip
    return ThredfiSettings(**values)


async def _connector(base_url: str, timeout_s: float) -> AsyncIterator[ThredfiConnector]:
    settings = _settings(base_url, timeout_s=timeout_s)
    transport = AiohttpTransport(limits=httpx.Limits(max_connections=settings.max_concurrency))
    async with ThredfiConnector("thredfi", settings, transport=transport) as connector:
        yield connector


@pytest.fixture
async def thredfi(served: tuple[ThredfiEmulator, str], emulator: ThredfiEmulator) -> AsyncIterator[ThredfiConnector]:
    async for connector in _connector(served[1], timeout_s=30):
        yield connector


@pytest.fixture
async def impatient(served: tuple[ThredfiEmulator, str], emulator: ThredfiEmulator) -> AsyncIterator[ThredfiConnector]:
    """A connection that gives up on an answer after 0.5 s."""
    async for connector in _connector(served[1], timeout_s=0.5):
        yield connector


def _customer(name: str) -> Customer:
    return Customer(kind="company", name=name, company_name=name, email="ap@example.com", country="CL")


async def _statuses(emulator: ThredfiEmulator, method: str, count: int) -> list[int]:
    """The statuses of the customer requests, once ``count`` are logged (the server logs after it answers)."""
    for _ in range(200):
        found = [r.status for r in emulator.requests if r.method == method and r.path.endswith(CUSTOMERS)]
        if len(found) >= count:
            return found
        await asyncio.sleep(0.01)
    return found


def test_given_defaults_when_transport_chosen_then_aiohttp_and_env_can_choose_httpx(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(ENV, raising=False)
    assert isinstance(default_transport(), AiohttpTransport)
    monkeypatch.setenv(ENV, "httpx")
    assert default_transport() is None
    monkeypatch.setenv(ENV, "aiohttp")
    assert isinstance(default_transport(), AiohttpTransport)


async def test_given_chosen_transport_when_creating_then_oauth_create_and_read_back_work(
    thredfi: ThredfiConnector, emulator: ThredfiEmulator
) -> None:
    created = await thredfi.create(_customer("Acme SpA"), "bench:1")
    found = await thredfi.find_by_external_id("bench:1")

    assert [r.path.rsplit("/", 3)[-2] for r in emulator.requests[:2]] == ["token", "token"], "OAuth went first"
    assert emulator.records[created.remote.id]["company_name"] == "Acme SpA"
    assert found is not None
    assert [f.id for f in found] == [created.remote.id]


async def test_given_two_503s_when_listing_then_retried_and_answered(
    thredfi: ThredfiConnector, emulator: ThredfiEmulator
) -> None:
    emulator.faults.add("error_before", method="GET", path="/customers/$", status=503, times=2)

    response = await thredfi.request("GET", thredfi.collection, op="list")

    assert response.status_code == 200
    assert await _statuses(emulator, "GET", 3) == [503, 503, 200]


async def test_given_one_slow_answer_when_listing_then_timed_out_as_a_deadline_and_retried(
    impatient: ThredfiConnector, emulator: ThredfiEmulator
) -> None:
    slow = emulator.faults.add("slow", method="GET", path="/customers/$", delay_s=6, times=1)
    started = time.monotonic()

    response = await impatient.request("GET", impatient.collection, op="list")

    assert response.status_code == 200
    assert time.monotonic() - started < 5, "the slow answer was abandoned at 0.5 s and the list asked again"
    assert slow.fired == 1, "the second list was not slowed"


async def test_given_every_answer_slow_when_listing_then_retriable_timeout_naming_the_deadline(
    impatient: ThredfiConnector, emulator: ThredfiEmulator
) -> None:
    emulator.faults.add("slow", method="GET", path="/customers/$", delay_s=1.5, times=None)

    with pytest.raises(RetriableError, match=r"no complete answer within 0\.5 s"):
        await impatient.request("GET", impatient.collection, op="list")


async def test_given_nothing_listening_when_connecting_then_one_fatal_line_connection_refused() -> None:
    settings = _settings(f"http://127.0.0.1:{free_port()}")
    async with ThredfiConnector("thredfi", settings, transport=AiohttpTransport()) as connector:
        with pytest.raises(FatalError, match="connection refused"):
            await connector.request("GET", connector.collection, op="list")


async def test_given_an_unresolvable_host_with_credentials_in_the_url_when_connecting_then_one_fatal_line_dns() -> None:
    settings = _settings("http://admin:hunter2-pass@no-such-host.invalid")
    async with ThredfiConnector("thredfi", settings, transport=AiohttpTransport()) as connector:
        with pytest.raises(FatalError, match="the host name cannot be resolved") as caught:
            await connector.request("GET", connector.collection, op="list")

    assert "hunter2-pass" not in str(caught.value)


async def test_given_credentials_in_the_base_url_when_sent_over_aiohttp_then_dropped_as_httpcore_does(
    served: tuple[ThredfiEmulator, str], emulator: ThredfiEmulator
) -> None:
    # aiohttp refuses a URL's credentials beside an Authorization header; httpcore never sends them.
    with_userinfo = served[1].replace("http://", "http://someone:secret@")
    async for connector in _connector(with_userinfo, 5):
        created = await connector.create(_customer("Userinfo Ltd"), "bench:userinfo")

    assert emulator.records[created.remote.id]["company_name"] == "Userinfo Ltd"


async def test_given_connection_dropped_after_create_applied_when_sent_then_read_error_never_retried(
    thredfi: ThredfiConnector, emulator: ThredfiEmulator
) -> None:
    emulator.faults.add("drop", method="POST", path="/customers/$", after=True, times=1)

    with pytest.raises(RetriableError) as caught:
        await thredfi.request("POST", thredfi.collection, json={"company_name": "Once"}, op="create",
                              idempotent=False)  # fmt: skip

    assert isinstance(caught.value.__cause__, httpx.ReadError), "a drop after sending is not a connect error"
    assert [r["company_name"] for r in emulator.records.values()] == ["Once"], "applied once, never sent again"


async def test_given_server_closing_after_reading_the_request_when_sent_then_read_error_not_connect_timeout() -> None:
    # httpx-aiohttp as shipped names this ConnectTimeout ("never sent"), which would let a create be sent twice.
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server, httpx.AsyncClient(transport=AiohttpTransport()) as http:
        with pytest.raises(httpx.TransportError) as caught:
            await http.post(f"http://127.0.0.1:{port}/customers/", json={"name": "Once"})

    assert isinstance(caught.value, httpx.ReadError)
