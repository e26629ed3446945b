"""Issue 12.3: the emulators' identity lookups go through indexes kept on write, never a scan.

Each lookup is pinned twice: it answers right after edits that move the key
from one record to another (stale index entries are never trusted), and it
does not iterate over the stored records (a scan per create made bulk runs
quadratic, so the emulator, not the connector, set the ceiling).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, ValuesView
from typing import Any

import httpx
import pytest

from sandbox.piriod import SANDBOX_API_TOKEN, SANDBOX_WORKSPACE, PiriodEmulator
from sandbox.thredfi import SANDBOX_API_KEY, SANDBOX_BUSINESS_ID, SANDBOX_PARTNER_UUID, ThredfiEmulator
from sandbox.timbrix import SANDBOX_API_KEY as TIMBRIX_KEY
from sandbox.timbrix import SANDBOX_ORGANIZATION_ID, TimbrixEmulator

THREDFI_CUSTOMERS = f"/v1/platform/businesses/{SANDBOX_BUSINESS_ID}/customers/"
TIMBRIX_CUSTOMERS = f"/api/organizations/{SANDBOX_ORGANIZATION_ID}/customers"


class NoScan(dict[str, dict[str, Any]]):
    """The records, refusing to be iterated: a lookup that scans fails the test."""

    def values(self) -> ValuesView[dict[str, Any]]:  # type: ignore[override]
        raise AssertionError("the records were scanned")

    def __iter__(self) -> Any:
        raise AssertionError("the records were scanned")


@pytest.fixture
async def thredfi() -> AsyncIterator[tuple[ThredfiEmulator, httpx.AsyncClient]]:
    emu = ThredfiEmulator()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=emu.app), base_url="http://t") as http:
        grant = {"grant_type": "client_credentials"}
        partner = await http.post(
            "/v1/platform/oauth2/token/", auth=(SANDBOX_PARTNER_UUID, SANDBOX_API_KEY), data=grant
        )
        business = await http.post(
            f"/v1/platform/{SANDBOX_BUSINESS_ID}/oauth2/token/",
            headers={"Authorization": f"Bearer {partner.json()['access_token']}"},
        )
        http.headers["Authorization"] = f"Bearer {business.json()['access_token']}"
        yield emu, http


async def test_given_external_id_moved_between_customers_when_looked_up_then_only_its_holder(
    thredfi: tuple[ThredfiEmulator, httpx.AsyncClient],
) -> None:
    _, http = thredfi
    first = (await http.post(THREDFI_CUSTOMERS, json={"company_name": "A", "external_id": "x-1"})).json()
    await http.patch(f"{THREDFI_CUSTOMERS}{first['id']}/", json={"external_id": "x-2"})

    old = (await http.get(THREDFI_CUSTOMERS, params={"external_id": "x-1"})).json()
    new = (await http.get(THREDFI_CUSTOMERS, params={"external_id": "x-2"})).json()
    again = await http.post(THREDFI_CUSTOMERS, json={"company_name": "B", "external_id": "x-1"})

    assert old["count"] == 0
    assert [r["id"] for r in new["results"]] == [first["id"]]
    assert again.status_code == 201, "x-1 is free again: a new customer"
    assert (await http.get(THREDFI_CUSTOMERS, params={"external_id": "x-1"})).json()["results"][0][
        "company_name"
    ] == "B"


async def test_given_many_customers_when_creating_and_finding_by_external_id_then_no_scan(
    thredfi: tuple[ThredfiEmulator, httpx.AsyncClient],
) -> None:
    emu, http = thredfi
    emu.seed([{"company_name": f"C{i}", "external_id": f"e-{i}"} for i in range(50)])
    emu.records = NoScan(emu.records)

    replay = await http.post(THREDFI_CUSTOMERS, json={"company_name": "C7", "external_id": "e-7"})
    created = await http.post(THREDFI_CUSTOMERS, json={"company_name": "New", "external_id": "e-new"})
    found = await http.get(THREDFI_CUSTOMERS, params={"external_id": "e-3", "include_archived": "true"})

    assert replay.status_code == 200
    assert created.status_code == 201
    assert [r["company_name"] for r in found.json()["results"]] == ["C3"]


async def test_given_piriod_metadata_external_id_rewritten_when_filtered_then_only_current_holders() -> None:
    emu = PiriodEmulator()
    headers = {
        "Authorization": f"Token {SANDBOX_API_TOKEN}",
        "x-simple-workspace": SANDBOX_WORKSPACE,
        "x-piriod-test-mode": "true",
    }
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=emu.app), base_url="http://p", headers=headers
    ) as http:
        body = {"name": "A", "address": "Calle 1", "country": "US", "metadata": {"external_id": "m-1"}}
        one = (await http.post("/customers/", json=body)).json()
        two = (await http.post("/customers/", json={**body, "name": "B"})).json()
        await http.patch(f"/customers/{one['id']}/", json={"metadata": {"external_id": "m-2"}})
        emu.seed([{"name": f"Other {i}", "address": "x", "country": "US"} for i in range(30)])

        m1 = (await http.get("/customers/", params={"metadata__external_id": "m-1"})).json()
        m2 = (await http.get("/customers/", params={"metadata__external_id": "m-2"})).json()

    assert [r["id"] for r in m1["results"]] == [two["id"]], "Piriod does not make it unique; both held it once"
    assert [r["id"] for r in m2["results"]] == [one["id"]]


async def test_given_timbrix_tax_id_moved_when_creating_then_409_only_for_the_current_holder() -> None:
    emu = TimbrixEmulator()
    body = {
        "legalName": "Dunder Mifflin",
        "taxId": "DUM901231AB3",
        "taxSystem": "601",
        "email": "billing@dunder.example.com",
        "defaultInvoiceUse": "G01",
        "addressStreet": "Blvd. Atardecer",
        "addressExterior": "142",
        "addressNeighborhood": "Centro",
        "addressCity": "Huatabampo",
        "addressMunicipality": "Huatabampo",
        "addressZip": "86500",
        "addressState": "Sonora",
    }
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=emu.app), base_url="http://x", headers={"X-API-Key": TIMBRIX_KEY}
    ) as http:
        first = (await http.post(TIMBRIX_CUSTOMERS, json=body)).json()
        await http.put(f"{TIMBRIX_CUSTOMERS}/{first['id']}", json={"taxId": "DUM901231AB4"})
        emu.records = NoScan(emu.records)
        reused = await http.post(TIMBRIX_CUSTOMERS, json=body)
        taken = await http.post(TIMBRIX_CUSTOMERS, json={**body, "taxId": "DUM901231AB4"})

    assert reused.status_code == 201, "the old RFC is free once its holder changed it"
    assert taken.status_code == 409


# -- listings: the order of all records is computed once per state of the records ---------------


async def test_given_bigcapital_listed_when_a_record_changes_then_the_next_page_has_the_new_order() -> None:
    from sandbox import bigcapital as bc

    emu = bc.BigcapitalEmulator()
    emu.seed([{"displayName": name} for name in ("Bravo", "Alpha", "Delta", "Charlie")])
    auth = {"Authorization": f"Bearer {bc.SANDBOX_API_KEY}"}
    params = {"columnSortBy": "display_name", "sortOrder": "asc", "pageSize": "2"}

    async def names(page: int) -> list[str]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=emu.app), base_url="http://b") as http:
            body = (await http.get("/api/customers", params={**params, "page": page}, headers=auth)).json()
        return [c["display_name"] for c in body["customers"]]

    assert await names(1) + await names(2) == ["Alpha", "Bravo", "Charlie", "Delta"]
    emu.records["3"]["display_name"] = "Aardvark"  # Delta, edited in place (as tests and admin edits do)
    assert await names(1) == ["Aardvark", "Alpha"]
    emu.records["1"]["active"] = 0
    assert await names(1) + await names(2) == ["Aardvark", "Alpha", "Charlie"], "inactive ones filtered after"


async def test_given_piriod_pages_when_walked_then_sorted_once_and_again_only_after_a_write(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sandbox import piriod

    sorts: list[str] = []
    real = piriod._order

    def counted(rows: list[dict[str, Any]], raw: str) -> list[dict[str, Any]]:
        sorts.append(raw)
        return real(rows, raw)

    monkeypatch.setattr(piriod, "_order", counted)
    emu = PiriodEmulator()
    emu.seed([{"name": f"C{i:02}", "country": "CL", "tax_id": f"7654321{i % 10}-K"} for i in range(30)])
    headers = {"Authorization": f"Token {SANDBOX_API_TOKEN}", "x-simple-workspace": SANDBOX_WORKSPACE,
               "x-piriod-test-mode": "true"}  # fmt: skip
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=emu.app), base_url="http://p") as http:

        async def page(n: int, **extra: str) -> list[str]:
            query = {"page": str(n), "page_size": "10", "ordering": "name", **extra}
            return [r["name"] for r in (await http.get("/customers/", params=query, headers=headers)).json()["results"]]

        walked = [name for n in (1, 2, 3) for name in await page(n)]
        assert walked == [f"C{i:02}" for i in range(30)]
        assert len(sorts) == 1, "three pages, one sort"
        first = next(r for r in emu.records.values() if r["name"] == "C29")
        await http.patch(f"/customers/{first['id']}/", json={"name": "A first"}, headers=headers)
        assert (await page(1))[0] == "A first"
        assert len(sorts) == 2
        assert await page(1, name="C05") == ["C05"], "filters still apply to the cached order"
