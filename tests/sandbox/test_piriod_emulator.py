"""The Piriod emulator behaves like docs.piriod.com describes, quirks included."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from sandbox.piriod import (
    SANDBOX_API_TOKEN,
    SANDBOX_WORKSPACE,
    STATES,
    PiriodEmulator,
    state_id,
)

HEADERS = {
    "Authorization": f"Token {SANDBOX_API_TOKEN}",
    "x-simple-workspace": SANDBOX_WORKSPACE,
    "x-piriod-test-mode": "true",
}
SANTIAGO = state_id("CL", "Región Metropolitana de Santiago")
TEXAS = state_id("US", "Texas")


@pytest.fixture
def emu() -> PiriodEmulator:
    return PiriodEmulator()


@pytest.fixture
async def client(emu: PiriodEmulator) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=emu.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test", headers=HEADERS) as c:
        yield c


def a_body(**changes: Any) -> dict[str, Any]:
    body = {
        "name": "Acme SpA",
        "address": "Av. Providencia 1234, Providencia",
        "country": "CL",
        "state": SANTIAGO,
        "tax_id": "76086428-5",
        "email": "billing@acme.cl",
    }
    body.update(changes)
    return body


def many(count: int) -> list[dict[str, Any]]:
    return [{"name": f"Customer {i:03d}", "address": f"Calle {i}", "country": "US"} for i in range(count)]


async def pull_all(client: httpx.AsyncClient, url: str) -> tuple[list[dict[str, Any]], int]:
    rows: list[dict[str, Any]] = []
    pages = 0
    next_url: str | None = url
    while next_url:
        response = await client.get(next_url)
        assert response.status_code == 200
        page = response.json()
        rows.extend(page["results"])
        pages += 1
        next_url = page["next"]
    return rows, pages


# -- authentication and tenancy --------------------------------------------


async def test_given_no_authorization_when_listing_then_401_credentials_not_provided(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/customers/", headers={"Authorization": ""})
    assert response.status_code == 401
    assert response.json() == {"detail": "Authentication credentials were not provided."}


async def test_given_wrong_token_when_listing_then_401_invalid_token(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/customers/", headers={"Authorization": "Token sk_live_nope"})
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid token."}


async def test_given_regenerated_token_when_using_old_one_then_401(
    emu: PiriodEmulator, client: httpx.AsyncClient
) -> None:
    emu.api_token = "sk_test_new"
    assert (await client.get("/customers/")).status_code == 401


async def test_given_no_workspace_header_when_listing_then_400_detail(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/customers/", headers={"x-simple-workspace": ""})
    assert response.status_code == 400
    assert set(response.json()) == {"detail"}


async def test_given_foreign_workspace_when_listing_then_403(client: httpx.AsyncClient) -> None:
    response = await client.get("/customers/", headers={"x-simple-workspace": "acc_other"})
    assert response.status_code == 403
    assert "detail" in response.json()


async def test_given_test_mode_record_when_reading_live_then_invisible(
    client: httpx.AsyncClient,
) -> None:
    created = (await client.post("/customers/", json=a_body())).json()
    live = {"x-piriod-test-mode": "false"}
    assert created["test_mode"] is True
    assert (await client.get("/customers/", headers=live)).json()["count"] == 0
    assert (await client.get(f"/customers/{created['id']}/", headers=live)).status_code == 404
    assert (await client.get("/customers/")).json()["count"] == 1


async def test_given_no_test_mode_header_when_creating_then_record_is_live(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/customers/", json=a_body(), headers={"x-piriod-test-mode": ""})
    assert response.json()["test_mode"] is False
    assert (await client.get("/customers/")).json()["count"] == 0


async def test_given_seed_without_test_mode_when_listing_then_records_are_test_mode(
    emu: PiriodEmulator, client: httpx.AsyncClient
) -> None:
    emu.seed(many(2))
    emu.seed(many(3), test_mode=False)
    assert (await client.get("/customers/")).json()["count"] == 2
    live = await client.get("/customers/", headers={"x-piriod-test-mode": "false"})
    assert live.json()["count"] == 3


# -- paging -----------------------------------------------------------------


@pytest.mark.parametrize(("page_size", "pages"), [(100, 3), (None, 12)])
async def test_given_237_records_when_following_next_then_every_record_once(
    emu: PiriodEmulator, client: httpx.AsyncClient, page_size: int | None, pages: int
) -> None:
    emu.seed(many(237))
    url = "/customers/" + (f"?page_size={page_size}" if page_size else "")
    rows, fetched = await pull_all(client, url)
    assert fetched == pages
    assert len(rows) == 237
    assert {r["id"] for r in rows} == set(emu.records)


async def test_given_page_size_over_100_when_listing_then_clamped_to_100(
    emu: PiriodEmulator, client: httpx.AsyncClient
) -> None:
    emu.seed(many(150))
    page = (await client.get("/customers/?page_size=500")).json()
    assert len(page["results"]) == 100
    assert page["count"] == 150


@pytest.mark.parametrize("page_size", ["0", "-3", "abc"])
async def test_given_invalid_page_size_when_listing_then_default_20(
    emu: PiriodEmulator, client: httpx.AsyncClient, page_size: str
) -> None:
    emu.seed(many(25))
    assert len((await client.get(f"/customers/?page_size={page_size}")).json()["results"]) == 20


async def test_given_filters_when_paging_then_links_are_absolute_and_keep_params(
    emu: PiriodEmulator, client: httpx.AsyncClient
) -> None:
    emu.seed(many(5))
    first = (await client.get("/customers/?page_size=2&country=US")).json()
    assert first["previous"] is None
    assert first["next"] == "http://test/customers/?country=US&page=2&page_size=2"
    second = (await client.get(first["next"])).json()
    assert second["previous"] == "http://test/customers/?country=US&page_size=2"
    last = (await client.get(second["next"])).json()
    assert last["next"] is None
    assert len(last["results"]) == 1


@pytest.mark.parametrize("page", ["4", "0", "x"])
async def test_given_page_out_of_range_when_listing_then_404_invalid_page(
    emu: PiriodEmulator, client: httpx.AsyncClient, page: str
) -> None:
    emu.seed(many(5))
    response = await client.get(f"/customers/?page_size=2&page={page}")
    assert response.status_code == 404
    assert response.json() == {"detail": "Invalid page."}


async def test_given_no_records_when_listing_first_page_then_empty_envelope(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.get("/customers/")).json() == {"count": 0, "next": None, "previous": None, "results": []}


# -- filters and ordering ----------------------------------------------------


async def test_given_metadata_external_id_when_filtering_then_only_that_record(
    emu: PiriodEmulator, client: httpx.AsyncClient
) -> None:
    emu.seed(
        [
            {**a_body(), "metadata": {"external_id": "bc-1"}},
            {**a_body(name="Other"), "metadata": {"external_id": "bc-2"}},
        ]
    )
    page = (await client.get("/customers/?metadata__external_id=bc-2")).json()
    assert [r["name"] for r in page["results"]] == ["Other"]


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ("reference=ref-2", ["B"]),
        ("tax_id=11111111-1", ["A"]),
        ("tax_id__in=11111111-1,22222222-2", ["A", "B"]),
        ("status=archived", ["B"]),
        ("country=CL", ["A", "B"]),
        ("search=REF-2", ["B"]),
        ("search=acme ref", ["A", "B"]),
        ("email=", ["A", "B"]),
    ],
)
async def test_given_records_when_filtering_then_matching_records(
    emu: PiriodEmulator, client: httpx.AsyncClient, query: str, names: list[str]
) -> None:
    emu.seed(
        [
            a_body(name="A", tax_id="11111111-1", reference="ref-1"),
            a_body(name="B", tax_id="22222222-2", reference="ref-2", status="archived"),
        ]
    )
    page = (await client.get(f"/customers/?{query}&ordering=name")).json()
    assert [r["name"] for r in page["results"]] == names


async def test_given_created_range_when_filtering_then_by_created_and_updated_filter_ignored(
    emu: PiriodEmulator, client: httpx.AsyncClient
) -> None:
    emu.seed(
        [
            a_body(name="old", created="2025-01-10T00:00:00Z", updated="2026-06-01T00:00:00Z"),
            a_body(name="new", created="2026-02-01T00:00:00Z", updated="2026-02-01T00:00:00Z"),
        ]
    )
    gte = (await client.get("/customers/?created__gte=2026-01-01")).json()
    assert [r["name"] for r in gte["results"]] == ["new"]
    lte = (await client.get("/customers/?created__lte=2025-12-31T23:59:59Z")).json()
    assert [r["name"] for r in lte["results"]] == ["old"]
    # ``updated`` has no documented filter: the parameter is silently ignored.
    assert (await client.get("/customers/?updated__gte=2026-05-01")).json()["count"] == 2
    bad = await client.get("/customers/?created__gte=yesterday")
    assert bad.status_code == 400
    assert bad.json() == {"created__gte": ["Enter a valid date/time."]}


async def test_given_unknown_country_filter_when_listing_then_400_invalid_choice(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/customers/?country=ZZ")
    assert response.status_code == 400
    assert list(response.json()) == ["country"]


async def test_given_ordering_when_listing_then_sorted_with_default_newest_first(
    emu: PiriodEmulator, client: httpx.AsyncClient
) -> None:
    emu.seed([a_body(name="b"), a_body(name="c"), a_body(name="a")])
    names = lambda page: [r["name"] for r in page["results"]]  # noqa: E731
    assert names((await client.get("/customers/?ordering=name")).json()) == ["a", "b", "c"]
    assert names((await client.get("/customers/?ordering=-name")).json()) == ["c", "b", "a"]
    # Same created second: newest first means the last created first (id tie-break).
    assert names((await client.get("/customers/")).json()) == ["a", "c", "b"]
    assert names((await client.get("/customers/?ordering=bogus")).json()) == ["a", "c", "b"]


# -- creating and validation -------------------------------------------------


async def test_given_valid_body_when_creating_then_201_with_country_and_state_objects(
    emu: PiriodEmulator, client: httpx.AsyncClient
) -> None:
    response = await client.post("/customers/", json=a_body())
    assert response.status_code == 201
    record = response.json()
    assert record["id"].startswith("cus_")
    assert len(record["id"]) == 30
    assert record["country"] == {
        "id": "CL",
        "name": "Chile",
        "code": "+56",
        "has_regulation": True,
        "currencies": ["CLP"],
    }
    assert record["state"] == {"id": SANTIAGO, "name": "Región Metropolitana de Santiago", "country": "CL"}
    assert record["currency"] == "CLP"
    assert record["status"] == "active"
    assert record["aggregations"] == {"sales": 0.0, "sales_current_period": 0.0, "balance": 0.0}
    assert (record["sources"], record["contacts"]) == ([], [])
    assert emu.write_count == 1
    assert (await client.get(f"/customers/{record['id']}/")).json() == record


async def test_given_long_address_when_creating_then_400_names_address(
    emu: PiriodEmulator, client: httpx.AsyncClient
) -> None:
    response = await client.post("/customers/", json=a_body(address="x" * 65))
    assert response.status_code == 400
    assert response.json() == {"address": ["Ensure this field has no more than 64 characters."]}
    assert emu.write_count == 0
    assert emu.records == {}


@pytest.mark.parametrize(
    ("field", "limit"),
    [
        ("name", 100),
        ("address", 64),
        ("phone", 16),
        ("zip_code", 16),
        ("tax_id", 32),
        ("reference", 64),
        ("manager", 64),
    ],
)
async def test_given_a_documented_length_exceeded_when_creating_then_400_names_the_field(
    emu: PiriodEmulator, client: httpx.AsyncClient, field: str, limit: int
) -> None:
    response = await client.post("/customers/", json=a_body(**{field: "7" * (limit + 1)}))
    assert response.status_code == 400
    assert response.json() == {field: [f"Ensure this field has no more than {limit} characters."]}
    fits = await client.post("/customers/", json=a_body(**{field: "7" * limit}))
    assert fits.status_code == 201


async def test_given_missing_name_and_address_when_creating_then_400_required(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/customers/", json={"country": "US"})
    assert response.status_code == 400
    assert response.json() == {"name": ["This field is required."], "address": ["This field is required."]}


async def test_given_cl_customer_in_cl_account_without_tax_id_when_creating_then_400(
    client: httpx.AsyncClient,
) -> None:
    body = a_body()
    del body["tax_id"]
    response = await client.post("/customers/", json=body)
    assert response.status_code == 400
    assert response.json() == {"tax_id": ["This field is required."]}


async def test_given_us_customer_in_cl_account_without_tax_id_when_creating_then_201(
    client: httpx.AsyncClient,
) -> None:
    body = {"name": "Acme Inc.", "address": "Main St 1", "country": "US", "state": TEXAS}
    response = await client.post("/customers/", json=body)
    assert response.status_code == 201
    assert response.json()["currency"] == "USD"


async def test_given_mx_customer_in_cl_account_without_tax_id_when_creating_then_201(
    client: httpx.AsyncClient,
) -> None:
    body = {"name": "Acme SA de CV", "address": "Av. Vallarta 3000", "country": "MX"}
    assert (await client.post("/customers/", json=body)).status_code == 201


async def test_given_mx_account_when_creating_mx_customer_without_tax_id_then_400() -> None:
    emu = PiriodEmulator(account_country="MX")
    transport = httpx.ASGITransport(app=emu.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=HEADERS) as c:
        body = {"name": "Acme SA de CV", "address": "Av. Vallarta 3000", "country": "MX"}
        response = await c.post("/customers/", json=body)
    assert response.json() == {"tax_id": ["This field is required."]}


async def test_given_state_of_another_country_when_creating_then_400_names_state(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/customers/", json=a_body(state=TEXAS))
    assert response.status_code == 400
    assert list(response.json()) == ["state"]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"state": 9999}, {"state": ['Invalid pk "9999" - object does not exist.']}),
        ({"state": "Texas"}, {"state": ["Incorrect type. Expected pk value, received str."]}),
        ({"country": "ZZ"}, {"country": ['Invalid pk "ZZ" - object does not exist.']}),
        ({"country": {"id": "CL"}}, {"country": ["Incorrect type. Expected pk value, received dict."]}),
        ({"email": "nope"}, {"email": ["Enter a valid email address."]}),
        ({"website": "acme"}, {"website": ["Enter a valid URL."]}),
        ({"phone": "+56 9 1234 5678 99"}, {"phone": ["Ensure this field has no more than 16 characters."]}),
        ({"status": "deleted"}, {"status": ['"deleted" is not a valid choice.']}),
        ({"currency": "XXY"}, {"currency": ['"XXY" is not a valid choice.']}),
        ({"send_invoices": "maybe"}, {"send_invoices": ["Must be a valid boolean."]}),
        ({"metadata": ["a"]}, {"metadata": ['Expected a dictionary of items but got type "list".']}),
        ({"metadata": {"ok": "1", "bad": {"x": 1}}}, {"metadata": {"bad": ["Not a valid string."]}}),
        ({"name": ""}, {"name": ["This field may not be blank."]}),
    ],
)
async def test_given_invalid_field_when_creating_then_400_field_keyed_errors(
    client: httpx.AsyncClient, changes: dict[str, Any], expected: dict[str, Any]
) -> None:
    response = await client.post("/customers/", json=a_body(**changes))
    assert response.status_code == 400
    assert response.json() == expected


async def test_given_string_state_id_and_numeric_metadata_when_creating_then_coerced(
    client: httpx.AsyncClient,
) -> None:
    body = a_body(state=str(SANTIAGO), metadata={"n": 5}, send_vouchers="false")
    record = (await client.post("/customers/", json=body)).json()
    assert record["state"]["id"] == SANTIAGO
    assert record["metadata"] == {"n": "5"}
    assert record["send_vouchers"] is False


async def test_given_list_body_when_creating_then_400_non_field_errors(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/customers/", json=[a_body()])
    assert response.status_code == 400
    assert response.json() == {"non_field_errors": ["Invalid data. Expected a dictionary, but got list."]}


# -- updating ----------------------------------------------------------------


@pytest.mark.parametrize("method", ["PATCH", "PUT"])
async def test_given_partial_body_when_updating_then_only_those_fields_change(
    emu: PiriodEmulator, client: httpx.AsyncClient, method: str
) -> None:
    [seeded] = emu.seed([{**a_body(), "updated": "2020-01-01T00:00:00Z"}])
    before = dict(seeded)
    # A PUT must carry the required fields (a full update); both keep what they do not send.
    required = {"name": seeded["name"], "address": seeded["address"]} if method == "PUT" else {}
    response = await client.request(method, f"/customers/{seeded['id']}/", json={"email": "new@acme.cl", **required})
    assert response.status_code == 200
    after = response.json()
    assert after["email"] == "new@acme.cl"
    assert after["updated"] > before["updated"]
    assert {k: v for k, v in after.items() if k not in ("email", "updated")} == {
        k: v for k, v in before.items() if k not in ("email", "updated")
    }
    assert emu.write_count == 1


async def test_given_put_without_required_fields_then_400_and_nothing_changes(
    emu: PiriodEmulator, client: httpx.AsyncClient
) -> None:
    """The docs say PATCH, the Node SDK sends PUT: strict reading, PUT is a full update."""
    [seeded] = emu.seed([a_body()])
    response = await client.put(f"/customers/{seeded['id']}/", json={"email": "new@acme.cl"})
    assert response.status_code == 400
    assert response.json() == {"name": ["This field is required."], "address": ["This field is required."]}
    assert emu.records[seeded["id"]]["email"] == seeded["email"]
    assert emu.write_count == 0


@pytest.mark.parametrize("email", ["ana@acme", "ana@@acme.cl", "ana@acme.cl.", "ana acme@acme.cl"])
async def test_given_an_email_django_would_refuse_when_creating_then_400_names_email(
    client: httpx.AsyncClient, email: str
) -> None:
    response = await client.post("/customers/", json={**a_body(), "email": email})
    assert response.status_code == 400
    assert response.json() == {"email": ["Enter a valid email address."]}


async def test_given_status_archived_when_patching_then_archived(
    emu: PiriodEmulator, client: httpx.AsyncClient
) -> None:
    [seeded] = emu.seed([a_body()])
    response = await client.patch(f"/customers/{seeded['id']}/", json={"status": "archived"})
    assert response.json()["status"] == "archived"
    assert (await client.get("/customers/?status=archived")).json()["count"] == 1


async def test_given_metadata_when_patching_then_metadata_is_replaced_whole(
    emu: PiriodEmulator, client: httpx.AsyncClient
) -> None:
    [seeded] = emu.seed([{**a_body(), "metadata": {"external_id": "x", "notes": "keep?"}}])
    response = await client.patch(f"/customers/{seeded['id']}/", json={"metadata": {"a": "b"}})
    assert response.json()["metadata"] == {"a": "b"}


async def test_given_country_change_without_state_when_patching_then_400_names_state(
    emu: PiriodEmulator, client: httpx.AsyncClient
) -> None:
    [seeded] = emu.seed([a_body()])
    response = await client.patch(f"/customers/{seeded['id']}/", json={"country": "US"})
    assert response.status_code == 400
    assert list(response.json()) == ["state"]
    both = await client.patch(f"/customers/{seeded['id']}/", json={"country": "US", "state": None})
    assert both.json()["country"]["id"] == "US"
    assert both.json()["state"] is None


async def test_given_missing_id_when_getting_then_404_not_found(client: httpx.AsyncClient) -> None:
    response = await client.get("/customers/cus_nope/")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


async def test_given_customer_when_deleting_then_405(emu: PiriodEmulator, client: httpx.AsyncClient) -> None:
    [seeded] = emu.seed([a_body()])
    response = await client.delete(f"/customers/{seeded['id']}/")
    assert response.status_code == 405
    assert response.json() == {"detail": 'Method "DELETE" not allowed.'}
    assert seeded["id"] in emu.records


# -- states catalog --------------------------------------------------------


@pytest.mark.parametrize(("country", "count"), [("CL", 16), ("MX", 32), ("US", 51), ("GB", 4)])
async def test_given_country_when_listing_states_then_whole_catalog_over_pages(
    client: httpx.AsyncClient, country: str, count: int
) -> None:
    rows, _ = await pull_all(client, f"/states/?country={country}")
    assert len(rows) == count
    assert {r["country"] for r in rows} == {country}
    assert all(isinstance(r["id"], int) for r in rows)


async def test_given_state_name_when_filtering_states_then_its_stable_id(
    client: httpx.AsyncClient,
) -> None:
    page = (await client.get("/states/?country=CL&name=valparaíso")).json()
    assert page["results"] == [{"id": 6, "name": "Valparaíso", "country": "CL"}]
    assert SANTIAGO == 7
    assert STATES[7]["name"] == "Región Metropolitana de Santiago"
    assert state_id("MX", "Nuevo Leon") == state_id("MX", "Nuevo León") is not None


# -- faults, admin, seeding ---------------------------------------------------


async def test_given_error_after_fault_when_creating_then_500_but_record_stored(
    emu: PiriodEmulator, client: httpx.AsyncClient
) -> None:
    emu.faults.add("error_after", method="POST", path="/customers/")
    response = await client.post("/customers/", json=a_body())
    assert response.status_code == 500
    assert len(emu.records) == 1
    assert emu.write_count == 1


async def test_given_rate_limit_fault_when_listing_then_429_with_retry_after(
    emu: PiriodEmulator, client: httpx.AsyncClient
) -> None:
    emu.faults.add("rate_limit", retry_after=7)
    response = await client.get("/customers/")
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"
    assert (await client.get("/customers/")).status_code == 200


async def test_given_admin_routes_when_seeding_by_names_and_editing_then_updated_bumps(
    emu: PiriodEmulator, client: httpx.AsyncClient
) -> None:
    body = {
        "name": "Ana",
        "address": "Calle 1",
        "country": "Chile",
        "state": "Valparaiso",
        "tax_id": "1-9",
        "updated": "2020-01-01T00:00:00Z",
    }
    seeded = (await client.post("/_admin/customers", json=body)).json()
    assert seeded["country"]["id"] == "CL"
    assert seeded["state"]["name"] == "Valparaíso"
    assert seeded["test_mode"] is True
    edited = await client.patch(f"/_admin/customers/{seeded['id']}", json={"name": "Ana B"})
    assert edited.json()["name"] == "Ana B"
    assert edited.json()["updated"] > "2020-01-01T00:00:00Z"
    await client.get("/customers/?page_size=5")
    log = (await client.get("/_admin/requests")).json()
    assert [(r["method"], r["path"], r["query"], r["status"]) for r in log] == [
        ("GET", "/customers/", "page_size=5", 200)
    ]
    assert emu.write_count == 0  # admin edits are not API writes


async def test_given_fake_customers_when_seeding_then_piriod_shaped_and_in_limits(
    emu: PiriodEmulator,
) -> None:
    records = emu.seed_fake(40)
    assert len(records) == 40
    assert {r["country"]["id"] for r in records} == {"US", "MX", "CL", "GB"}
    assert all(len(r["address"]) <= 64 and r["state"] is not None for r in records)
    assert all(r["tax_id"] for r in records if r["country"]["id"] == "CL")
    assert {r["status"] for r in records} == {"active", "archived"}
    assert emu.seed_fake(3, seed=1)[0]["name"] == PiriodEmulator().seed_fake(3, seed=1)[0]["name"]
