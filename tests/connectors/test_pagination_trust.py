"""Paging that does not trust totals, and a scan report that says when a listing proves nothing (issue 9.7).

Small ASGI apps play listings whose envelopes lie; the emulators play the honest ones.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import stamina
from starlette.requests import Request
from starlette.responses import Response

from connectors.base import Connector
from connectors.bigcapital import BigcapitalConnector, BigcapitalSettings
from connectors.errors import FatalError, RetriableError
from connectors.piriod import PiriodConnector, PiriodSettings
from connectors.thredfi import ThredfiConnector, ThredfiSettings
from sandbox import thredfi as thredfi_sandbox
from sandbox.bigcapital import SANDBOX_API_KEY, BigcapitalEmulator
from tests.connectors.http_fakes import Hosts, Seen, app, bigcapital_record, json

PAGE = 100  # what the test's Bigcapital connector asks for (the real one asks 1,000: fewer records suffice here)


class _Books(BigcapitalConnector):
    paginator = dataclasses.replace(BigcapitalConnector.paginator, page_size=PAGE)


@pytest.fixture(autouse=True)
def _few_retries() -> Iterator[None]:
    with stamina.set_testing(True, attempts=3):
        yield


def books(transport: httpx.AsyncBaseTransport) -> BigcapitalConnector:
    settings = BigcapitalSettings(system="bigcapital", base_url="http://books.test", api_key=SANDBOX_API_KEY)
    return _Books("books", settings, transport=transport)


def listing_app(
    active: int, *, total: Callable[[int], int] | None = None, served: int = PAGE, seen: Seen | None = None
) -> Any:
    """Bigcapital-like listings: ``active`` records in the active listing, none inactive.

    ``total`` is what the envelope claims (default: the truth); ``served`` the records a page holds.
    """

    async def handler(request: Request) -> Response:
        page = int(request.query_params.get("page", "1"))
        ids = range(1, active + 1) if request.query_params.get("inactiveMode") == "false" else range(0)
        rows = [bigcapital_record(i) for i in ids][(page - 1) * served : page * served]
        claimed = total(len(ids)) if total else len(ids)
        return json({"customers": rows, "pagination": {"total": claimed, "page": page, "page_size": served}})

    return app(handler, seen, bigcapital=True)


async def pull(connector: Connector) -> list[str]:
    return [remote.id async for page in connector.pages() for remote in page]


async def test_given_total_too_small_with_full_pages_when_paged_then_every_record_read_and_scan_failed() -> None:
    async with books(Hosts({"books.test": listing_app(250, total=lambda _: 50)})) as connector:
        ids = await pull(connector)
    assert sorted(map(int, ids)) == list(range(1, 251))
    assert connector.scan.complete is False
    assert connector.scan.reason == "bigcapital: the listing /api/customers reported 50 records, 250 were read"


async def test_given_total_of_ten_million_for_150_records_when_paged_then_stops_at_the_short_page() -> None:
    seen = Seen()
    async with books(Hosts({"books.test": listing_app(150, total=lambda _: 10_000_000, seen=seen)})) as connector:
        ids = await pull(connector)
    assert len(ids) == 150
    listing_calls = [p for p in seen.paths("GET") if p.startswith("/api/customers")]
    assert len(listing_calls) == 3  # active: pages 1 and 2 (short); inactive: page 1 (empty)
    assert connector.scan.complete is False
    assert "reported 10000000 records, 150 were read" in str(connector.scan.reason)


async def test_given_server_serving_fewer_than_asked_when_paged_then_pages_of_its_size_read_to_the_end() -> None:
    async with books(Hosts({"books.test": listing_app(230, served=50)})) as connector:
        ids = await pull(connector)
    assert len(ids) == 230
    assert connector.scan.complete is True, connector.scan.reason


async def test_given_repeated_page_when_paged_then_records_counted_once_and_scan_failed() -> None:
    async def repeating(request: Request) -> Response:
        page = int(request.query_params.get("page", "1"))
        if request.query_params.get("inactiveMode") == "true":
            return json({"customers": [], "pagination": {"total": 0}})
        # Page 2 serves page 1 again (a server whose sort is not stable), page 3 ends.
        first = [bigcapital_record(i) for i in range(1, PAGE + 1)]
        rows = first if page <= 2 else [bigcapital_record(i) for i in range(PAGE + 1, PAGE + 11)]
        return json({"customers": rows, "pagination": {"total": PAGE + 10}})

    async with books(Hosts({"books.test": app(repeating, bigcapital=True)})) as connector:
        ids = await pull(connector)
    assert len(ids) == len(set(ids)) == PAGE + 10
    assert connector.scan.records == PAGE + 10
    assert connector.scan.complete is False
    assert "repeated 100 records already read" in str(connector.scan.reason)


async def test_given_error_in_second_listing_when_paged_then_scan_incomplete_with_reason() -> None:
    async def inactive_fails(request: Request) -> Response:
        if request.query_params.get("inactiveMode") == "true":
            return json({"statusCode": 500, "message": "Internal server error"}, 500)
        return json({"customers": [bigcapital_record(1)], "pagination": {"total": 1}})

    async with books(Hosts({"books.test": app(inactive_fails, bigcapital=True)})) as connector:
        with pytest.raises(RetriableError):
            await pull(connector)
    assert connector.scan.complete is False
    assert connector.scan.reason == "the bigcapital listing stopped on an error (RetriableError)"


async def test_given_short_page_before_the_last_when_links_followed_then_scan_failed() -> None:
    async def links(request: Request) -> Response:
        page = int(request.query_params.get("page", "1"))
        sizes = {1: 100, 2: 10, 3: 100, 4: 5}
        start = sum(sizes[p] for p in range(1, page))
        rows = [{"id": f"c{start + i}", "name": "Acme", "address": "Av. 1"} for i in range(sizes[page])]
        following = f"http://piriod.test/customers/?page={page + 1}" if page < 4 else None
        return json({"count": 215, "next": following, "previous": None, "results": rows})

    settings = PiriodSettings(system="piriod", base_url="http://piriod.test", api_token="sk_test_x1", workspace="w")
    async with PiriodConnector("billing", settings, transport=Hosts({"piriod.test": app(links)})) as connector:
        ids = await pull(connector)
    assert len(ids) == 215
    assert connector.scan.complete is False
    assert connector.scan.reason == "piriod: the listing /customers/ sent a short page before its last"


async def test_given_empty_page_with_a_next_link_when_paged_then_walk_stops() -> None:
    seen = Seen()

    async def endless(request: Request) -> Response:
        page = int(request.query_params.get("page", "1"))
        rows = [{"id": "c1", "name": "Acme", "address": "Av. 1"}] if page == 1 else []
        return json({"count": 1, "next": f"http://piriod.test/customers/?page={page + 1}", "results": rows})

    settings = PiriodSettings(system="piriod", base_url="http://piriod.test", api_token="sk_test_x1", workspace="w")
    async with PiriodConnector("billing", settings, transport=Hosts({"piriod.test": app(endless, seen)})) as connector:
        ids = await pull(connector)
    assert ids == ["c1"]
    assert len(seen.paths("GET")) == 2


# -- honest listings (the emulators) stay complete ---------------------------------------------


async def test_given_bigcapital_emulator_with_250_customers_when_paged_then_complete() -> None:
    emu = BigcapitalEmulator()
    emu.seed_fake(250)
    async with books(httpx.ASGITransport(app=emu.app)) as connector:
        ids = await pull(connector)
    assert len(set(ids)) == 250
    assert connector.scan.complete is True, connector.scan.reason


@pytest.mark.parametrize("count", [0, 200, 201])
async def test_given_thredfi_emulator_with_exactly_full_pages_when_paged_then_complete(count: int) -> None:
    # Thredfi answers 404 "Invalid page." past the last page: after a full last page that is the end.
    emu = thredfi_sandbox.ThredfiEmulator()
    emu.seed_fake(count)
    settings = ThredfiSettings(
        system="thredfi",
        base_url="http://thredfi.test",
        partner_uuid=thredfi_sandbox.SANDBOX_PARTNER_UUID,
        api_key=thredfi_sandbox.SANDBOX_API_KEY,
        business_id=thredfi_sandbox.SANDBOX_BUSINESS_ID,
    )
    async with ThredfiConnector("ledger", settings, transport=httpx.ASGITransport(app=emu.app)) as connector:
        ids = await pull(connector)
    assert len(set(ids)) == count
    assert connector.scan.complete is True, connector.scan.reason


async def test_given_next_link_to_itself_when_paged_then_loop_refused_naming_the_connection() -> None:
    async def itself(request: Request) -> Response:
        rows = [{"id": "c1", "name": "Acme", "address": "Av. 1"}]
        return json({"count": 2, "next": "http://piriod.test/customers/?page=1", "results": rows})

    settings = PiriodSettings(system="piriod", base_url="http://piriod.test", api_token="sk_test_x1", workspace="w")
    async with PiriodConnector("billing", settings, transport=Hosts({"piriod.test": app(itself)})) as connector:
        with pytest.raises(FatalError, match=r"^billing \(piriod\) list: paging loop"):
            await pull(connector)
    assert connector.scan.complete is False


async def test_given_listing_without_its_records_key_when_paged_then_fatal_naming_the_connection() -> None:
    async def envelope(request: Request) -> Response:
        return json({"data": [], "pagination": {"total": 0}})

    async with books(Hosts({"books.test": app(envelope, bigcapital=True)})) as connector:
        with pytest.raises(FatalError, match=r"^books \(bigcapital\) list: listing answered an unexpected body"):
            await pull(connector)
    assert connector.scan.complete is False


async def test_given_a_listing_when_walked_then_each_page_says_when_it_was_asked_for_before_it_was_answered() -> None:
    answered: list[datetime] = []
    inner = listing_app(230)

    async def stamped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/api/customers":
            answered.append(datetime.now(UTC))
        await inner(scope, receive, send)

    async with books(Hosts({"books.test": stamped})) as connector:
        pages = [fetched async for fetched in connector.listed()]
    # 230 active records a page of 100 at a time, then the (empty) inactive listing.
    assert [len(p.records) for p in pages] == [100, 100, 30, 0]
    stamps = [p.listed_at for p in pages if p.listed_at is not None]
    assert len(stamps) == len(answered) == len(pages)
    assert all(s.tzinfo is not None for s in stamps)
    for page, (asked, served) in enumerate(zip(stamps, answered, strict=True)):
        assert asked <= served, f"page {page + 1} stamped after the server answered it"
    assert stamps == sorted(stamps)
