"""Scenario tests of the Bigcapital emulator, driven over HTTP in process.

Each exchange of the real server's recordings is replayed as such by
``test_bigcapital_recordings.py``; these tests cover what a single exchange
cannot show (paging, the throttle's windows, seeding).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from sandbox.bigcapital import (
    ROW_KEYS,
    SANDBOX_API_KEY,
    SANDBOX_JWT,
    SANDBOX_ORGANIZATION_ID,
    BigcapitalEmulator,
    Throttle,
)

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
        response = await client.get("/api/customers", params={"page": page, "pageSize": size, **params})
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
    response = await client.post("/api/customers", json=MINIMAL, headers={"Authorization": "Bearer bc_" + "0" * 96})
    assert response.status_code == 401
    assert emu.records == {}


async def test_given_api_key_when_organization_header_is_wrong_then_still_accepted_as_recorded(
    client: httpx.AsyncClient,
) -> None:
    good = await client.get("/api/customers", headers={"organization-id": SANDBOX_ORGANIZATION_ID})
    other = await client.get("/api/customers", headers={"organization-id": "someone-else"})
    assert (good.status_code, other.status_code) == (200, 200)


async def test_given_jwt_when_organization_header_missing_or_wrong_then_401(client: httpx.AsyncClient) -> None:
    jwt = {"Authorization": f"Bearer {SANDBOX_JWT}"}
    missing = await client.get("/api/customers", headers=jwt)
    wrong = await client.get("/api/customers", headers={**jwt, "organization-id": "someone-else"})
    right = await client.get("/api/customers", headers={**jwt, "organization-id": SANDBOX_ORGANIZATION_ID})
    assert missing.status_code == wrong.status_code == 401
    assert missing.json() == {"message": "Organization ID is required.", "error": "Unauthorized", "statusCode": 401}
    assert right.status_code == 200


async def test_given_api_key_when_organization_asked_then_its_id(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/organization/current")
    assert response.status_code == 200
    assert response.json()["organization_id"] == SANDBOX_ORGANIZATION_ID


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
    assert body["filter_meta"] == {"order": "desc", "field_key": "created_at"}
    # Every API-made row has created_at null: the tie keeps the primary-key order, descending or not.
    assert [c["id"] for c in body["customers"]] == list(range(1, 13))


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


@pytest.mark.parametrize("column", ["updated_at", "id"])
async def test_given_unknown_sort_column_when_listing_then_400_sort_column_not_found(
    client: httpx.AsyncClient, column: str
) -> None:
    response = await client.get("/api/customers", params={"columnSortBy": column})
    assert response.status_code == 400
    assert response.json() == {"errors": [{"statusCode": 400, "type": "sort_column_not_found", "message": None}]}


@pytest.mark.parametrize(
    "params",
    [{"columnSortBy": "status"}, {"page": "0"}, {"pageSize": "-1"}, {"pageSize": "0"},
     {"stringifiedFilterRoles": "[not-json"}],
)  # fmt: skip
async def test_given_listing_the_server_crashes_on_when_listing_then_500(
    client: httpx.AsyncClient, params: dict[str, str]
) -> None:
    response = await client.get("/api/customers", params=params)
    assert response.status_code == 500
    assert response.json() == {"statusCode": 500, "message": "Internal server error"}


async def test_given_page_size_far_above_any_limit_when_listing_then_served(
    emu: BigcapitalEmulator, client: httpx.AsyncClient
) -> None:
    _active(emu, 30)
    body = (await client.get("/api/customers", params={"pageSize": 100000})).json()
    assert len(body["customers"]) == 30
    assert body["pagination"] == {"total": 30, "page": 1, "page_size": 100000}


async def test_given_dates_set_by_sql_when_filtering_created_at_then_nothing_is_selected_by_date(
    emu: BigcapitalEmulator, client: httpx.AsyncClient
) -> None:
    rows = _active(emu, 4)
    emu.admin_edit(rows[0], {"created_at": "2026-01-05T10:00:00.000Z"})
    emu.admin_edit(rows[1], {"created_at": "2026-06-20T12:00:00.000Z"})

    async def ids(comparator: str, value: str) -> list[int]:
        role = [{"fieldKey": "created_at", "comparator": comparator, "value": value, "condition": "and"}]
        response = await client.get("/api/customers", params={"stringifiedFilterRoles": json.dumps(role)})
        assert response.status_code == 200
        return [c["id"] for c in response.json()["customers"]]

    # "after" keeps every row that has a date, whatever the date; rows made by the API have none.
    assert await ids("after", "2026-06-19") == [rows[1]["id"], rows[0]["id"]]  # newest first, the default
    assert await ids("after", "2020-01-01") == [rows[1]["id"], rows[0]["id"]]
    assert await ids("in", "2026-01-05") == []


async def test_given_updated_at_filter_when_listing_then_400_filter_roles_fields_not_found(
    client: httpx.AsyncClient,
) -> None:
    role = [{"fieldKey": "updated_at", "comparator": "after", "value": "2020-01-01", "condition": "and"}]
    response = await client.get("/api/customers", params={"stringifiedFilterRoles": json.dumps(role)})
    assert response.status_code == 400
    assert response.json()["errors"][0]["type"] == "filter_roles_fields_not_found"


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


async def test_given_valid_body_when_creating_then_201_with_the_raw_row_and_get_transformed(
    client: httpx.AsyncClient, emu: BigcapitalEmulator
) -> None:
    response = await client.post("/api/customers", json={**MINIMAL, "firstName": "Ana"})
    assert response.status_code == 201
    body = response.json()
    assert set(body) == set(ROW_KEYS)
    assert (body["id"], body["display_name"], body["first_name"]) == (1, "Acme Inc.", "Ana")
    assert (body["contact_type"], body["contact_service"], body["active"]) == ("business", "customer", 1)
    assert body["created_at"] is None
    assert body["updated_at"] is None
    got = (await client.get("/api/customers/1")).json()
    assert set(got) - set(body) == {
        "customer_type", "formatted_customer_type", "formatted_balance", "formatted_opening_balance",
        "formatted_opening_balance_at",
    }  # fmt: skip
    assert (got["customer_type"], got["formatted_customer_type"]) == ("business", "Business")
    assert emu.write_count == 1


async def test_given_missing_required_fields_when_creating_then_400_class_validator_objects(
    client: httpx.AsyncClient, emu: BigcapitalEmulator
) -> None:
    sent = {"email": "not-an-email"}
    response = await client.post("/api/customers", json=sent)
    assert response.status_code == 400
    body = response.json()
    assert (body["statusCode"], body["error"]) == (400, "Bad Request")
    assert [m["property"] for m in body["message"]] == ["customerType", "currencyCode", "displayName", "email"]
    assert all(m["target"] == sent and m["children"] == [] for m in body["message"])
    assert body["message"][3]["value"] == "not-an-email"
    assert "value" not in body["message"][0]  # absent from the body: no value
    assert body["message"][3]["constraints"] == {"isEmail": "email must be an email"}
    assert emu.records == {}


@pytest.mark.parametrize(
    ("changes", "constraint"),
    [
        ({"billingAddressEmail": "nope"}, {"isEmail": "billingAddressEmail must be an email"}),
        ({"billingAddressEmail": ""}, {"isEmail": "billingAddressEmail must be an email"}),
        ({"active": "yes"}, {"isBoolean": "active must be a boolean value"}),
        ({"workPhone": 5551234}, {"isString": "workPhone must be a string"}),
    ],
)
async def test_given_invalid_field_when_creating_then_400_names_it(
    client: httpx.AsyncClient, changes: dict[str, Any], constraint: dict[str, str]
) -> None:
    response = await client.post("/api/customers", json={**MINIMAL, **changes})
    assert response.status_code == 400
    (error,) = response.json()["message"]
    assert error["constraints"] == constraint


@pytest.mark.parametrize(
    "changes",
    [
        {"displayName": "x" * 256},
        {"note": "n" * 256},  # a text column, but the strict reading: over 255 is a 500 too
        {"billingAddressCity": "c" * 300},
        {"displayName": "Café 😀 Ltd"},
        {"note": "\U0001d504"},  # MATHEMATICAL FRAKTUR CAPITAL A, beyond U+FFFF
        {"currencyCode": "USDX"},
        {"currencyCode": "US"},
        {"billingAddressZipcode": "78701"},
        {"billingAddressZipcode": None},
        {"shipping_address_zipcode": "78701"},
    ],
)
async def test_given_body_the_database_refuses_when_creating_then_500_and_nothing_stored(
    client: httpx.AsyncClient, emu: BigcapitalEmulator, changes: dict[str, Any]
) -> None:
    response = await client.post("/api/customers", json={**MINIMAL, **changes})
    assert response.status_code == 500
    assert response.json() == {"statusCode": 500, "message": "Internal server error"}
    assert emu.records == {}
    assert emu.server_errors() == [500]


async def test_given_loose_values_the_server_keeps_when_creating_then_stored_as_sent(
    client: httpx.AsyncClient,
) -> None:
    odd = (await client.post("/api/customers", json={**MINIMAL, "customerType": "company"})).json()
    lower = (await client.post("/api/customers", json={**MINIMAL, "currencyCode": "usd"})).json()
    empty = (await client.post("/api/customers", json={**MINIMAL, "email": ""})).json()
    born = (await client.post("/api/customers", json={**MINIMAL, "active": False})).json()
    assert odd["contact_type"] == "company"
    assert (await client.get(f"/api/customers/{odd['id']}")).json()["formatted_customer_type"] == ""
    assert lower["currency_code"] == "usd"
    assert empty["email"] == ""
    assert born["active"] == 0


async def test_given_postcode_keys_when_creating_then_dropped(client: httpx.AsyncClient) -> None:
    body = {**MINIMAL, "billingAddressPostcode": "78701", "shipping_address_postcode": "99999"}
    customer = (await client.post("/api/customers", json=body)).json()
    assert customer["billing_address_postcode"] is None
    assert customer["shipping_address_postcode"] is None


async def test_given_snake_case_and_unknown_keys_when_creating_then_converted_and_dropped(
    client: httpx.AsyncClient,
) -> None:
    body = {
        "customer_type": "individual",
        "currency_code": "MXN",
        "display_name": "José Núñez",
        "external_id": "thredfi:x:1",
        "tax_id": "NUJO800101AB1",
    }
    response = await client.post("/api/customers", json=body)
    assert response.status_code == 201
    customer = response.json()
    assert customer["contact_type"] == "individual"
    assert set(customer) == set(ROW_KEYS)


# -- update -----------------------------------------------------------------


async def test_given_put_without_customer_type_and_display_name_then_400(
    client: httpx.AsyncClient, emu: BigcapitalEmulator
) -> None:
    _active(emu, 1)
    response = await client.put("/api/customers/1", json={"email": "x@example.com"})
    assert response.status_code == 400
    assert [m["property"] for m in response.json()["message"]] == ["customerType", "displayName"]


async def test_given_put_with_required_fields_then_omitted_fields_kept_currency_ignored_dates_null(
    client: httpx.AsyncClient, emu: BigcapitalEmulator
) -> None:
    emu.seed([{**MINIMAL, "email": "old@example.com", "note": "keep me"}])
    body = {"customerType": "business", "displayName": "Renamed", "currencyCode": "EUR"}
    response = await client.put("/api/customers/1", json=body)
    assert response.status_code == 200
    customer = response.json()
    assert set(customer) == set(ROW_KEYS)
    assert customer["display_name"] == "Renamed"
    assert customer["email"] == "old@example.com"
    assert customer["note"] == "keep me"
    assert customer["currency_code"] == "USD"
    assert customer["updated_at"] is None  # never set through the API


@pytest.mark.parametrize(
    ("changes", "status"),
    [({"email": ""}, 400), ({"billingAddressEmail": ""}, 400), ({"email": None, "note": None}, 200),
     ({"billingAddressZipcode": None}, 500), ({"displayName": "😀"}, 500)],
)  # fmt: skip
async def test_given_put_then_empty_strings_refused_nulls_clear_and_database_refusals_are_500(
    client: httpx.AsyncClient, emu: BigcapitalEmulator, changes: dict[str, Any], status: int
) -> None:
    emu.seed([{**MINIMAL, "email": "old@example.com", "note": "n"}])
    response = await client.put("/api/customers/1", json={"customerType": "business", "displayName": "A", **changes})
    assert response.status_code == status
    if status == 200:
        assert (emu.records["1"]["email"], emu.records["1"]["note"]) == (None, None)
    else:
        assert emu.records["1"]["email"] == "old@example.com"


async def test_given_missing_customer_when_getting_or_putting_then_404_not_found_error(
    client: httpx.AsyncClient,
) -> None:
    for response in (
        await client.get("/api/customers/42"),
        await client.put("/api/customers/42", json=MINIMAL),
        await client.get("/api/customers/abc"),  # no ParseIntPipe on this route: 404, not 400
        await client.delete("/api/customers/42"),
    ):
        assert response.status_code == 404
        assert response.json() == {"statusCode": 404, "message": "NotFoundError"}


# -- activate / inactivate / delete -----------------------------------------


async def test_given_active_customer_when_inactivating_twice_then_second_is_already_inactive(
    client: httpx.AsyncClient, emu: BigcapitalEmulator
) -> None:
    _active(emu, 1)
    first = await client.patch("/api/contacts/1/inactivate")
    second = await client.patch("/api/contacts/1/inactivate")
    assert first.json() == {"id": 1, "inactivated": True}
    assert second.status_code == 400
    assert second.json() == {"errors": [{"statusCode": 400, "type": "CONTACT_ALREADY_INACTIVE", "message": None}]}
    assert emu.records["1"]["active"] == 0


async def test_given_active_customer_when_activating_then_400_already_active(
    client: httpx.AsyncClient, emu: BigcapitalEmulator
) -> None:
    _active(emu, 1)
    response = await client.patch("/api/contacts/1/activate")
    assert response.status_code == 400
    assert response.json()["errors"][0]["type"] == "CONTACT_ALREADY_ACTIVE"
    await client.patch("/api/contacts/1/inactivate")
    assert (await client.patch("/api/contacts/1/activate")).json() == {"id": 1, "activated": True}
    assert (await client.patch("/api/contacts/abc/activate")).status_code == 400


async def test_given_customer_when_deleting_then_empty_200_gone_and_ids_not_reused(
    client: httpx.AsyncClient, emu: BigcapitalEmulator
) -> None:
    _active(emu, 2)
    emu.undeletable.add("2")
    response = await client.delete("/api/customers/1")
    assert response.status_code == 200
    assert response.content == b""
    assert (await client.get("/api/customers/1")).status_code == 404
    blocked = await client.delete("/api/customers/2")
    assert blocked.status_code == 400
    assert blocked.json()["errors"][0]["message"] is None
    assert (await client.post("/api/customers", json=MINIMAL)).json()["id"] == 3


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


async def test_given_admin_seed_and_edit_then_dates_stay_as_set_and_log_shows_api_writes_only(
    client: httpx.AsyncClient, emu: BigcapitalEmulator
) -> None:
    seeded = await client.post("/_admin/customers", json={"display_name": "Seeded"})
    assert seeded.status_code == 201
    assert seeded.json()["updated_at"] is None  # the web app sets no dates either
    edited = (await client.patch("/_admin/customers/1", json={"email": "new@example.com"})).json()
    assert edited["email"] == "new@example.com"
    assert edited["updated_at"] is None
    pinned = (await client.patch("/_admin/customers/1", json={"created_at": "2026-01-05T10:00:00.000Z"})).json()
    assert pinned["created_at"] == "2026-01-05T10:00:00.000Z"  # as SQL would set it
    await client.put("/api/customers/1", json={**MINIMAL, "displayName": "Via API"})
    log = (await client.get("/_admin/requests")).json()
    assert [(r["method"], r["path"], r["is_write"]) for r in log] == [("PUT", "/api/customers/1", True)]
    assert [w.path for w in emu.writes()] == ["/api/customers/1"]


def test_given_admin_seed_the_api_would_crash_on_then_refused() -> None:
    emu = BigcapitalEmulator()
    with pytest.raises(ValueError, match="500"):
        emu.seed([{"displayName": "Café 😀"}])
    with pytest.raises(ValueError, match="currencyCode"):
        emu.seed([{"displayName": "x", "currencyCode": None}])


def test_given_fake_seed_then_countries_are_names_postcodes_imported_and_inactive_ones_inactive() -> None:
    emu = BigcapitalEmulator()
    records = emu.seed_fake(20)
    assert {r["billing_address_country"] for r in records} == {
        "United States",
        "Mexico",
        "Chile",
        "United Kingdom",
    }
    assert [r["active"] for r in records].count(0) == 2
    assert all(r["billing_address_postcode"] for r in records)  # as an import would leave them
    assert emu.seed_fake(1, seed=3)[0]["id"] == 21
    assert emu.write_count == 0


# -- throttle -----------------------------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_given_default_emulator_then_rate_headers_as_with_throttle_limits_of_100000(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/api/customers")
    assert response.headers["X-RateLimit-Limit"] == response.headers["X-RateLimit-Limit-auth"] == "100000"
    assert response.headers["X-RateLimit-Remaining-auth"] == "99999"


async def test_given_recorded_throttle_when_11_calls_to_one_route_then_429_with_retry_after_auth_only() -> None:
    clock = _Clock()
    emu = BigcapitalEmulator(throttle=Throttle(), clock=clock)
    transport = httpx.ASGITransport(app=emu.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test", headers=AUTH) as http:
        answers = [await http.get("/api/customers") for _ in range(10)]
        other_route = await http.get("/api/customers/1")  # counted on its own
        refused = await http.get("/api/customers")
        clock.now += 30
        still = await http.get("/api/customers")
        clock.now += 31
        again = await http.get("/api/customers")

    assert [a.status_code for a in answers] == [200] * 10
    assert [a.headers["X-RateLimit-Remaining-auth"] for a in answers] == [str(n) for n in range(9, -1, -1)]
    assert answers[0].headers["X-RateLimit-Limit"] == "100"
    assert answers[0].headers["X-RateLimit-Reset-auth"] == "60"
    assert (other_route.status_code, other_route.headers["X-RateLimit-Remaining-auth"]) == (404, "9")
    assert refused.status_code == 429
    assert refused.json() == {"statusCode": 429, "message": "ThrottlerException: Too Many Requests"}
    assert refused.headers["Retry-After-auth"] == "60"
    assert "Retry-After" not in refused.headers
    assert "X-RateLimit-Remaining-auth" not in refused.headers
    assert refused.headers["X-RateLimit-Remaining"] == "89"
    assert (still.status_code, still.headers["Retry-After-auth"]) == (429, "30")
    assert again.status_code == 200


async def test_given_throttle_with_short_window_when_switched_on_later_then_counts_from_then(
    emu: BigcapitalEmulator, client: httpx.AsyncClient
) -> None:
    await client.get("/api/customers")
    emu.throttle = Throttle(auth_limit=2, global_limit=100, window_s=0.5)
    statuses = [(await client.get("/api/customers")).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
