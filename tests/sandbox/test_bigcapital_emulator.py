"""Scenario tests of the Bigcapital emulator, driven over HTTP in process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from sandbox.bigcapital import SANDBOX_API_KEY, SANDBOX_ORGANIZATION_ID, BigcapitalEmulator

AUTH = {"Authorization": f"Bearer {SANDBOX_API_KEY}"}
MINIMAL = {"customerType": "business", "currencyCode": "USD", "displayName": "Acme Inc."}


@pytest.fixture
def emu() -> BigcapitalEmulator:
    return BigcapitalEmulator()


@pytest.fixture
async def client(emu: BigcapitalEmulator) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=emu.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test", headers=AUTH) as http:
        yield http


def _active(emu: BigcapitalEmulator, count: int) -> list[dict[str, Any]]:
    return emu.seed([{**MINIMAL, "displayName": f"Customer {i:02d}"} for i in range(count)])


async def _pull_all(client: httpx.AsyncClient, size: int, **params: Any) -> list[int]:
    ids: list[int] = []
    page = 1
    while True:
        response = await client.get(
            "/api/customers", params={"page": page, "pageSize": size, **params}
        )
        assert response.status_code == 200
        body = response.json()
        ids += [c["id"] for c in body["customers"]]
        if page * size >= body["pagination"]["total"]:
            return ids
        page += 1


# -- auth -------------------------------------------------------------------


async def test_given_no_key_when_listing_then_401(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/customers", headers={"Authorization": ""})
    assert response.status_code == 401


async def test_given_wrong_key_when_creating_then_401_and_nothing_stored(
    client: httpx.AsyncClient, emu: BigcapitalEmulator
) -> None:
    response = await client.post(
        "/api/customers", json=MINIMAL, headers={"Authorization": "Bearer bc_" + "0" * 96}
    )
    assert response.status_code == 401
    assert emu.records == {}


async def test_given_organization_header_when_it_matches_then_accepted_else_401(
    client: httpx.AsyncClient,
) -> None:
    good = await client.get("/api/customers", headers={"organization-id": SANDBOX_ORGANIZATION_ID})
    bad = await client.get("/api/customers", headers={"organization-id": "someone-else"})
    assert (good.status_code, bad.status_code) == (200, 401)


def test_given_sandbox_key_then_it_looks_like_a_real_key() -> None:
    assert SANDBOX_API_KEY.startswith("bc_")
    assert len(SANDBOX_API_KEY) == 99
    int(SANDBOX_API_KEY[3:], 16)


# -- listing ----------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 5, 12, 36, 37, 50])
async def test_given_37_customers_when_paging_to_the_end_then_no_gaps_or_repeats(
    emu: BigcapitalEmulator, client: httpx.AsyncClient, size: int
) -> None:
    expected = {c["id"] for c in _active(emu, 37)}
    ids = await _pull_all(client, size)
    assert len(ids) == len(set(ids)) == 37
    assert set(ids) == expected


async def test_given_default_paging_when_listing_then_12_newest_first_with_envelope(
    emu: BigcapitalEmulator, client: httpx.AsyncClient
) -> None:
    _active(emu, 13)
    body = (await client.get("/api/customers")).json()
    assert body["pagination"] == {"total": 13, "page": 1, "page_size": 12}
    assert "filter_meta" in body
    assert [c["id"] for c in body["customers"]] == list(range(13, 1, -1))


async def test_given_page_past_the_end_when_listing_then_empty_page_with_total(
    emu: BigcapitalEmulator, client: httpx.AsyncClient
) -> None:
    _active(emu, 3)
    body = (await client.get("/api/customers", params={"page": 9})).json()
    assert body["customers"] == []
    assert body["pagination"]["total"] == 3


async def test_given_inactive_customer_when_listing_default_then_excluded(
    emu: BigcapitalEmulator, client: httpx.AsyncClient
) -> None:
    emu.seed([MINIMAL, {**MINIMAL, "displayName": "Gone", "active": False}])
    default = (await client.get("/api/customers")).json()["customers"]
    inactive = (await client.get("/api/customers", params={"inactiveMode": "true"})).json()
    snake = (await client.get("/api/customers", params={"inactive_mode": "true"})).json()
    assert [c["display_name"] for c in default] == ["Acme Inc."]
    assert [c["display_name"] for c in inactive["customers"]] == ["Gone"]
    assert snake == inactive


async def test_given_unknown_sort_column_when_listing_then_400_sort_column_not_found(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/api/customers", params={"columnSortBy": "updated_at"})
    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert error["type"] == "SORT_COLUMN_NOT_FOUND"
    assert set(error) == {"statusCode", "type", "message", "payload"}


async def test_given_sort_by_display_name_asc_when_listing_then_ordered(
    emu: BigcapitalEmulator, client: httpx.AsyncClient
) -> None:
    emu.seed([{**MINIMAL, "displayName": n} for n in ("beta", "Alpha", "gamma")])
    params = {"column_sort_by": "display_name", "sort_order": "asc"}
    body = (await client.get("/api/customers", params=params)).json()
    assert [c["display_name"] for c in body["customers"]] == ["Alpha", "beta", "gamma"]


async def test_given_search_keyword_then_partial_on_name_and_exact_on_email(
    emu: BigcapitalEmulator, client: httpx.AsyncClient
) -> None:
    emu.seed(
        [
            {**MINIMAL, "displayName": "Globex Corp", "email": "a@globex.com"},
            {**MINIMAL, "displayName": "Initech", "email": "b@initech.com"},
        ]
    )

    async def names(keyword: str) -> list[str]:
        body = (await client.get("/api/customers", params={"searchKeyword": keyword})).json()
        return [c["display_name"] for c in body["customers"]]

    assert await names("lobe") == ["Globex Corp"]
    assert await names("b@initech.com") == ["Initech"]
    assert await names("initech.com") == []


# -- create / validation ----------------------------------------------------


async def test_given_valid_body_when_creating_then_201_with_snake_case_customer(
    client: httpx.AsyncClient, emu: BigcapitalEmulator
) -> None:
    response = await client.post("/api/customers", json={**MINIMAL, "firstName": "Ana"})
    assert response.status_code == 201
    body = response.json()
    assert body["id"] == 1
    assert body["display_name"] == "Acme Inc."
    assert body["first_name"] == "Ana"
    assert body["contact_type"] == "customer"
    assert body["active"] is True
    assert body["created_at"].endswith("Z")
    assert (await client.get("/api/customers/1")).json() == body
    assert emu.write_count == 1


async def test_given_missing_required_fields_when_creating_then_400_nestjs_body(
    client: httpx.AsyncClient, emu: BigcapitalEmulator
) -> None:
    response = await client.post("/api/customers", json={"email": "not-an-email"})
    assert response.status_code == 400
    body = response.json()
    assert body["statusCode"] == 400
    assert body["error"] == "Bad Request"
    assert set(body["message"]) >= {
        "customerType should not be empty",
        "currencyCode should not be empty",
        "displayName should not be empty",
        "email must be an email",
    }
    assert emu.records == {}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"displayName": "x" * 256}, "displayName must be shorter than or equal to 255 characters"),
        ({"billingAddressEmail": "nope"}, "billingAddressEmail must be an email"),
        ({"customerType": "company"}, "customerType must be one of the following values"),
        ({"currencyCode": "US"}, "currencyCode must be a valid ISO4217 currency code"),
        ({"active": "yes"}, "active must be a boolean value"),
        ({"workPhone": 5551234}, "workPhone must be a string"),
    ],
)
async def test_given_invalid_field_when_creating_then_400_names_it(
    client: httpx.AsyncClient, changes: dict[str, Any], message: str
) -> None:
    response = await client.post("/api/customers", json={**MINIMAL, **changes})
    assert response.status_code == 400
    assert any(m.startswith(message) for m in response.json()["message"])


async def test_given_zipcode_and_postcode_keys_when_creating_then_zipcode_stored_postcode_dropped(
    client: httpx.AsyncClient,
) -> None:
    body = {**MINIMAL, "billingAddressZipcode": "78701", "shippingAddressPostcode": "99999"}
    customer = (await client.post("/api/customers", json=body)).json()
    assert customer["billing_address_postcode"] == "78701"
    assert customer["shipping_address_postcode"] is None
    assert "billing_address_zipcode" not in customer


async def test_given_snake_case_and_unknown_keys_when_creating_then_converted_and_dropped(
    client: httpx.AsyncClient,
) -> None:
    body = {
        "customer_type": "individual",
        "currency_code": "MXN",
        "display_name": "José Núñez",
        "billing_address_zipcode": "44100",
        "billing_address_postcode": "00000",
        "tax_id": "NUJO800101AB1",
    }
    response = await client.post("/api/customers", json=body)
    assert response.status_code == 201
    customer = response.json()
    assert customer["customer_type"] == "individual"
    assert customer["billing_address_postcode"] == "44100"
    assert "tax_id" not in customer


# -- update -----------------------------------------------------------------


async def test_given_put_without_customer_type_and_display_name_then_400(
    client: httpx.AsyncClient, emu: BigcapitalEmulator
) -> None:
    _active(emu, 1)
    response = await client.put("/api/customers/1", json={"email": "x@example.com"})
    assert response.status_code == 400
    assert {"customerType should not be empty", "displayName should not be empty"} <= set(
        response.json()["message"]
    )


async def test_given_put_with_required_fields_then_omitted_fields_kept_and_currency_ignored(
    client: httpx.AsyncClient, emu: BigcapitalEmulator
) -> None:
    emu.seed([{**MINIMAL, "email": "old@example.com", "note": "keep me"}])
    body = {"customerType": "business", "displayName": "Renamed", "currencyCode": "EUR"}
    response = await client.put("/api/customers/1", json=body)
    assert response.status_code == 200
    customer = response.json()
    assert customer["display_name"] == "Renamed"
    assert customer["email"] == "old@example.com"
    assert customer["note"] == "keep me"
    assert customer["currency_code"] == "USD"
    assert customer["updated_at"] > customer["created_at"]


async def test_given_missing_customer_when_getting_or_putting_then_404(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.get("/api/customers/42")).status_code == 404
    assert (await client.put("/api/customers/42", json=MINIMAL)).status_code == 404
    assert (await client.get("/api/customers/abc")).status_code == 400


# -- activate / inactivate / delete -----------------------------------------


async def test_given_active_customer_when_inactivating_twice_then_second_is_already_inactive(
    client: httpx.AsyncClient, emu: BigcapitalEmulator
) -> None:
    _active(emu, 1)
    first = await client.patch("/api/contacts/1/inactivate")
    second = await client.patch("/api/contacts/1/inactivate")
    assert first.json() == {"id": 1, "inactivated": True}
    assert second.status_code == 400
    assert second.json()["errors"][0]["type"] == "CONTACT_ALREADY_INACTIVE"
    assert emu.records["1"]["active"] is False


async def test_given_active_customer_when_activating_then_400_already_active(
    client: httpx.AsyncClient, emu: BigcapitalEmulator
) -> None:
    _active(emu, 1)
    response = await client.patch("/api/contacts/1/activate")
    assert response.status_code == 400
    assert response.json()["errors"][0]["type"] == "CONTACT_ALREADY_ACTIVE"
    await client.patch("/api/contacts/1/inactivate")
    assert (await client.patch("/api/contacts/1/activate")).json() == {"id": 1, "activated": True}


async def test_given_customer_when_deleting_then_gone_and_ids_not_reused(
    client: httpx.AsyncClient, emu: BigcapitalEmulator
) -> None:
    _active(emu, 1)
    response = await client.delete("/api/customers/1")
    assert response.status_code == 200
    assert response.json()["id"] == 1
    assert (await client.get("/api/customers/1")).status_code == 404
    assert (await client.post("/api/customers", json=MINIMAL)).json()["id"] == 2


async def test_given_trailing_slash_when_listing_then_served_like_express(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.get("/api/customers/")).status_code == 200


# -- faults and admin -------------------------------------------------------


async def test_given_error_after_fault_when_creating_then_500_but_customer_stored(
    client: httpx.AsyncClient, emu: BigcapitalEmulator
) -> None:
    emu.faults.add("error_after", method="POST", path="/api/customers$")
    response = await client.post("/api/customers", json=MINIMAL)
    assert response.status_code == 500
    assert len(emu.records) == 1
    assert emu.write_count == 1


async def test_given_rate_limit_fault_when_listing_then_429_with_retry_after(
    client: httpx.AsyncClient, emu: BigcapitalEmulator
) -> None:
    emu.faults.add("rate_limit", retry_after=2)
    response = await client.get("/api/customers")
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "2"
    assert (await client.get("/api/customers")).status_code == 200


async def test_given_admin_seed_and_edit_then_updated_at_bumps_and_log_shows_api_writes_only(
    client: httpx.AsyncClient, emu: BigcapitalEmulator
) -> None:
    seeded = await client.post("/_admin/customers", json={"display_name": "Seeded"})
    assert seeded.status_code == 201
    record = seeded.json()
    edited = (await client.patch("/_admin/customers/1", json={"email": "new@example.com"})).json()
    assert edited["email"] == "new@example.com"
    assert edited["updated_at"] > record["updated_at"]
    await client.put("/api/customers/1", json={**MINIMAL, "displayName": "Via API"})
    log = (await client.get("/_admin/requests")).json()
    assert [(r["method"], r["path"], r["is_write"]) for r in log] == [
        ("PUT", "/api/customers/1", True)
    ]
    assert [w.path for w in emu.writes()] == ["/api/customers/1"]


def test_given_fake_seed_then_countries_are_names_and_inactive_ones_inactive() -> None:
    emu = BigcapitalEmulator()
    records = emu.seed_fake(20)
    assert {r["billing_address_country"] for r in records} == {
        "United States",
        "Mexico",
        "Chile",
        "United Kingdom",
    }
    assert [r["active"] for r in records].count(False) == 2
    assert all(r["billing_address_postcode"] for r in records)
    assert emu.seed_fake(1, seed=3)[0]["id"] == 21
    assert emu.write_count == 0


async def test_given_created_at_filter_role_when_listing_then_only_later_customers_come_back() -> None:
    import json as _json

    emu = BigcapitalEmulator()
    old, new = emu.seed(
        [
            {"customerType": "business", "currencyCode": "USD", "displayName": "Old"},
            {"customerType": "business", "currencyCode": "USD", "displayName": "New"},
        ]
    )
    old["created_at"] = "2026-01-01T10:00:00Z"
    new["created_at"] = "2026-03-01T10:00:00Z"
    role = [{"fieldKey": "created_at", "comparator": "after", "value": "2026-02-01", "condition": "and"}]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=emu.app), base_url="http://test") as client:
        response = await client.get(
            "/api/customers",
            params={"stringifiedFilterRoles": _json.dumps(role)},
            headers={"Authorization": f"Bearer {SANDBOX_API_KEY}"},
        )
    assert response.status_code == 200
    assert [c["display_name"] for c in response.json()["customers"]] == ["New"]
