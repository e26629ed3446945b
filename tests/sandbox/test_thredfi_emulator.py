"""Scenario tests of the Thredfi emulator, driven over HTTP in process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from sandbox.thredfi import (
    FOREIGN_BUSINESS_ID,
    MAX_PAGE_SIZE,
    SANDBOX_API_KEY,
    SANDBOX_BUSINESS_ID,
    SANDBOX_PARTNER_UUID,
    ThredfiEmulator,
)

TOKEN_PATH = "/v1/platform/oauth2/token/"
CUSTOMERS = f"/v1/platform/businesses/{SANDBOX_BUSINESS_ID}/customers/"
GRANT = {"grant_type": "client_credentials"}


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def emu(clock: FakeClock) -> ThredfiEmulator:
    return ThredfiEmulator(token_ttl_s=60, clock=clock)


@pytest.fixture
async def anon(emu: ThredfiEmulator) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=emu.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


@pytest.fixture
async def partner(anon: httpx.AsyncClient) -> httpx.AsyncClient:
    """A client holding a partner token."""
    anon.headers["Authorization"] = f"Bearer {await _partner_token(anon)}"
    return anon


@pytest.fixture
async def client(partner: httpx.AsyncClient) -> httpx.AsyncClient:
    """A client holding a business token (customer routes need one, by default)."""
    issued = await partner.post(f"/v1/platform/{SANDBOX_BUSINESS_ID}/oauth2/token/")
    assert issued.status_code == 200
    partner.headers["Authorization"] = f"Bearer {issued.json()['access_token']}"
    return partner


async def _partner_token(http: httpx.AsyncClient) -> str:
    response = await http.post(TOKEN_PATH, auth=(SANDBOX_PARTNER_UUID, SANDBOX_API_KEY), data=GRANT)
    assert response.status_code == 200
    return str(response.json()["access_token"])


def _seed(emu: ThredfiEmulator, count: int, **extra: Any) -> list[dict[str, Any]]:
    return emu.seed([{"company_name": f"Company {i:02d}", **extra} for i in range(count)])


async def _pull_all(client: httpx.AsyncClient, size: int, **params: Any) -> list[str]:
    ids: list[str] = []
    page = 1
    while True:
        response = await client.get(CUSTOMERS, params={"page": page, "page_size": size, **params})
        assert response.status_code == 200
        body = response.json()
        ids += [c["id"] for c in body["results"]]
        if page == body["page_info"]["total_pages"]:
            return ids
        page += 1


# -- auth -------------------------------------------------------------------


async def test_given_bad_credentials_when_requesting_token_then_401_invalid_client(
    anon: httpx.AsyncClient,
) -> None:
    response = await anon.post(TOKEN_PATH, auth=(SANDBOX_PARTNER_UUID, "wrong"), data=GRANT)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.json()["error_code"] == "authentication_required"


async def test_given_good_credentials_when_requesting_token_with_json_then_bearer_token(
    anon: httpx.AsyncClient, emu: ThredfiEmulator
) -> None:
    response = await anon.post(TOKEN_PATH, auth=(SANDBOX_PARTNER_UUID, SANDBOX_API_KEY), json=GRANT)
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 60
    business = await anon.post(
        f"/v1/platform/{SANDBOX_BUSINESS_ID}/oauth2/token/", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    listed = await anon.get(CUSTOMERS, headers={"Authorization": f"Bearer {business.json()['access_token']}"})
    assert listed.status_code == 200
    assert emu.writes() == []  # token POSTs are not record writes


async def test_given_partner_token_on_a_customer_route_then_403_unless_the_lenient_reading(
    partner: httpx.AsyncClient, emu: ThredfiEmulator
) -> None:
    """The docs disagree (auth guide: a business token; endpoint pages: a partner token works).

    Strict by default: the auth guide's reading."""
    strict = await partner.get(CUSTOMERS)
    emu.require_business_token = False
    lenient = await partner.get(CUSTOMERS)
    assert (strict.status_code, strict.json()["error_code"]) == (403, "permission_denied")
    assert lenient.status_code == 200


async def test_given_wrong_grant_type_when_requesting_token_then_400(
    anon: httpx.AsyncClient,
) -> None:
    response = await anon.post(
        TOKEN_PATH, auth=(SANDBOX_PARTNER_UUID, SANDBOX_API_KEY), data={"grant_type": "password"}
    )
    assert response.status_code == 400
    assert "grant_type" in response.json()["details"]


async def test_given_no_token_when_listing_then_401_authentication_required(
    anon: httpx.AsyncClient,
) -> None:
    response = await anon.get(CUSTOMERS)
    assert response.status_code == 401
    assert response.json()["error_code"] == "authentication_required"


async def test_given_token_past_its_ttl_when_listing_then_401_invalid_token(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    assert (await client.get(CUSTOMERS)).status_code == 200
    clock.now += 60
    response = await client.get(CUSTOMERS)
    assert response.status_code == 401
    body = response.json()
    assert body["error_code"] == "invalid_token"
    assert set(body) == {"error_code", "message", "detail", "request_id"}


async def test_given_business_token_when_used_on_its_business_then_ok_elsewhere_403(
    partner: httpx.AsyncClient,
) -> None:
    issued = await partner.post(f"/v1/platform/{SANDBOX_BUSINESS_ID}/oauth2/token/")
    assert issued.status_code == 200
    business = {"Authorization": f"Bearer {issued.json()['access_token']}"}
    assert (await partner.get(CUSTOMERS, headers=business)).status_code == 200
    foreign = f"/v1/platform/businesses/{FOREIGN_BUSINESS_ID}/customers/"
    assert (await partner.get(foreign, headers=business)).json()["error_code"] == "permission_denied"


async def test_given_partner_token_when_business_is_unknown_or_foreign_then_404_or_403(
    partner: httpx.AsyncClient,
) -> None:
    client = partner
    unknown = await client.get("/v1/platform/businesses/00000000-0000-4000-8000-000000000000/customers/")
    foreign = await client.get(f"/v1/platform/businesses/{FOREIGN_BUSINESS_ID}/customers/")
    assert (unknown.status_code, unknown.json()["error_code"]) == (404, "business_not_found")
    assert (foreign.status_code, foreign.json()["error_code"]) == (403, "permission_denied")


# -- listing ----------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 7, 20, 36, 37, 100])
async def test_given_37_customers_when_paging_to_the_end_then_no_gaps_or_repeats(
    emu: ThredfiEmulator, client: httpx.AsyncClient, size: int
) -> None:
    expected = [c["id"] for c in _seed(emu, 37)]
    ids = await _pull_all(client, size)
    assert ids == expected  # creation order, each exactly once


async def test_given_page_past_the_end_when_listing_then_404_invalid_page(
    emu: ThredfiEmulator, client: httpx.AsyncClient
) -> None:
    _seed(emu, 3)
    response = await client.get(CUSTOMERS, params={"page": 2})
    assert response.status_code == 404
    assert response.json()["error_code"] == "invalid_page"


async def test_given_no_customers_when_listing_first_page_then_empty_single_page(
    client: httpx.AsyncClient,
) -> None:
    body = (await client.get(CUSTOMERS)).json()
    assert body == {
        "count": 0,
        "page_info": {"total_count": 0, "current_page": 1, "total_pages": 1, "page_size": 20},
        "results": [],
    }


async def test_given_oversize_or_bad_page_size_then_clamped_or_defaulted(
    emu: ThredfiEmulator, client: httpx.AsyncClient
) -> None:
    _seed(emu, 1)
    big = (await client.get(CUSTOMERS, params={"page_size": 500})).json()
    bad = (await client.get(CUSTOMERS, params={"page_size": "abc"})).json()
    assert big["page_info"]["page_size"] == MAX_PAGE_SIZE
    assert bad["page_info"]["page_size"] == 20


async def test_given_a_smaller_page_cap_then_every_size_is_clamped_to_it(
    emu: ThredfiEmulator, client: httpx.AsyncClient
) -> None:
    emu.max_page_size = 5  # the maximum is not documented: tests can take a stricter one
    _seed(emu, 12)
    body = (await client.get(CUSTOMERS, params={"page_size": 100})).json()
    assert (len(body["results"]), body["page_info"]["page_size"], body["page_info"]["total_pages"]) == (5, 5, 3)


async def test_given_conflict_reading_when_creating_a_repeated_external_id_then_409_and_nothing_written(
    emu: ThredfiEmulator, client: httpx.AsyncClient
) -> None:
    """The error guide lists a 409 for a duplicate external id (the guide shows a 200 replay)."""
    emu.duplicate_external_id = "conflict"
    emu.seed([{"company_name": "A", "external_id": "x-1"}])
    response = await client.post(CUSTOMERS, json={"company_name": "B", "external_id": "x-1"})
    assert response.status_code == 409
    assert response.json()["error_code"] == "duplicate_external_id"
    assert [r["company_name"] for r in emu.records.values()] == ["A"]


async def test_given_archived_customer_when_listing_then_only_with_include_archived(
    emu: ThredfiEmulator, client: httpx.AsyncClient
) -> None:
    _seed(emu, 1)
    _seed(emu, 1, status="archived", external_id="old-1")
    default = (await client.get(CUSTOMERS)).json()
    everything = (await client.get(CUSTOMERS, params={"include_archived": "true"})).json()
    assert default["count"] == 1
    assert everything["count"] == 2
    by_ext = await client.get(CUSTOMERS, params={"external_id": "old-1"})
    assert by_ext.json()["count"] == 0  # archived stays hidden under the filter too
    params = {"external_id": "old-1", "include_archived": "true"}
    assert (await client.get(CUSTOMERS, params=params)).json()["results"][0]["is_archived"]


async def test_given_external_id_filter_then_exact_match_only(emu: ThredfiEmulator, client: httpx.AsyncClient) -> None:
    emu.seed(
        [
            {"company_name": "A", "external_id": "bc-1"},
            {"company_name": "B", "external_id": "bc-10"},
        ]
    )
    body = (await client.get(CUSTOMERS, params={"external_id": "bc-1"})).json()
    assert [c["company_name"] for c in body["results"]] == ["A"]


async def test_given_missing_trailing_slash_then_404(emu: ThredfiEmulator, client: httpx.AsyncClient) -> None:
    customer = _seed(emu, 1)[0]
    assert (await client.get(CUSTOMERS.rstrip("/"))).status_code == 404
    assert (await client.get(f"{CUSTOMERS}{customer['id']}")).status_code == 404
    assert (await client.post(TOKEN_PATH.rstrip("/"), data=GRANT)).status_code == 404


async def test_given_list_and_detail_then_documents_only_on_detail(
    emu: ThredfiEmulator, client: httpx.AsyncClient
) -> None:
    customer = _seed(emu, 1)[0]
    listed = (await client.get(CUSTOMERS)).json()["results"][0]
    detail = (await client.get(f"{CUSTOMERS}{customer['id']}/")).json()
    assert "documents" not in listed
    assert detail["documents"] == []
    assert (await client.get(f"{CUSTOMERS}nope/")).status_code == 404


# -- create -----------------------------------------------------------------


async def test_given_valid_body_when_creating_then_201_with_derived_fields(
    client: httpx.AsyncClient, emu: ThredfiEmulator
) -> None:
    body = {
        "individual_name": "Ana García",
        "email": "ana@example.mx",
        "city": "Guadalajara",
        "country": "MX",
        "credit_limit_cents": 150000,
        "unknown_key": "ignored",
    }
    response = await client.post(CUSTOMERS, json=body)
    assert response.status_code == 201
    customer = response.json()
    assert customer["display_name"] == "Ana García"
    assert customer["address_string"] == "Guadalajara, MX"
    assert customer["status"] == "ACTIVE"
    assert (customer["is_active"], customer["is_archived"]) == (True, False)
    assert customer["credit_limit"] == 1500
    assert "unknown_key" not in customer
    assert emu.write_count == 1


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"company_name": "A", "country": "XX"}, "country", '"XX" is not a valid choice.'),
        ({"company_name": "A", "country": "mx"}, "country", '"mx" is not a valid choice.'),
        ({"company_name": "A", "email": "nope"}, "email", "Enter a valid email address."),
        ({"company_name": "A", "payment_terms_days": "x"}, "payment_terms_days",
         "A valid integer is required."),
        ({"email": "a@example.com"}, "non_field_errors",
         "Either individual_name or company_name is required."),
        # Lengths are not documented: the strict reading is DRF's CharField default, 255.
        ({"company_name": "A" * 256}, "company_name", "Ensure this field has no more than 255 characters."),
        ({"company_name": "A", "city": "C" * 256}, "city", "Ensure this field has no more than 255 characters."),
    ],
)  # fmt: skip
async def test_given_invalid_body_when_creating_then_400_validation_error(
    client: httpx.AsyncClient, body: dict[str, Any], field: str, message: str
) -> None:
    response = await client.post(CUSTOMERS, json=body)
    assert response.status_code == 400
    error = response.json()
    assert error["error"] == error["error_code"] == "validation_error"
    assert error["details"][field] == [message]


async def test_given_existing_external_id_when_creating_then_200_with_existing_record(
    client: httpx.AsyncClient, emu: ThredfiEmulator
) -> None:
    first = await client.post(CUSTOMERS, json={"company_name": "Acme", "external_id": "bc-7"})
    again = await client.post(CUSTOMERS, json={"company_name": "Changed", "external_id": "bc-7"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert len(emu.records) == 1
    assert emu.write_count == 1


async def test_given_idempotency_key_replay_when_creating_then_cached_200(
    client: httpx.AsyncClient, emu: ThredfiEmulator
) -> None:
    headers = {"Idempotency-Key": "k-1"}
    first = await client.post(CUSTOMERS, json={"company_name": "Acme"}, headers=headers)
    again = await client.post(CUSTOMERS, json={"company_name": "Acme"}, headers=headers)
    other = await client.post(CUSTOMERS, json={"company_name": "Acme"})
    assert (first.status_code, again.status_code, other.status_code) == (201, 200, 201)
    assert again.json()["id"] == first.json()["id"] != other.json()["id"]
    assert len(emu.records) == 2


# -- update / archive ---------------------------------------------------------


async def test_given_put_then_the_record_is_replaced_and_fields_not_sent_are_cleared(
    client: httpx.AsyncClient, emu: ThredfiEmulator
) -> None:
    """Whether updates are PUT or PATCH is not documented: PUT takes the strict (replace) reading."""
    customer = emu.seed(
        [
            {
                "company_name": "Acme",
                "email": "old@example.com",
                "city": "Leeds",
                "external_id": "x-1",
                "metadata": {"k": "v"},
            }
        ]
    )[0]
    response = await client.put(
        f"{CUSTOMERS}{customer['id']}/", json={"company_name": "Acme", "email": "new@example.com"}
    )
    assert response.status_code == 200
    updated = response.json()
    assert (updated["email"], updated["company_name"]) == ("new@example.com", "Acme")
    assert (updated["city"], updated["external_id"], updated["metadata"]) == ("", None, {})
    assert updated["status"] == "ACTIVE"


async def test_given_put_without_a_name_then_400_like_a_create(client: httpx.AsyncClient, emu: ThredfiEmulator) -> None:
    customer = _seed(emu, 1)[0]
    response = await client.put(f"{CUSTOMERS}{customer['id']}/", json={"email": "new@example.com"})
    assert response.status_code == 400
    assert "non_field_errors" in response.json()["details"]


async def test_given_patch_then_only_sent_fields_change(client: httpx.AsyncClient, emu: ThredfiEmulator) -> None:
    customer = emu.seed([{"company_name": "Acme", "email": "old@example.com", "city": "Leeds"}])[0]
    response = await client.patch(f"{CUSTOMERS}{customer['id']}/", json={"email": "new@example.com"})
    assert response.status_code == 200
    updated = response.json()
    assert (updated["email"], updated["city"], updated["company_name"]) == (
        "new@example.com",
        "Leeds",
        "Acme",
    )
    assert updated["updated_at"] > customer["created_at"]


async def test_given_update_that_blanks_both_names_then_400(client: httpx.AsyncClient, emu: ThredfiEmulator) -> None:
    customer = _seed(emu, 1)[0]
    response = await client.patch(f"{CUSTOMERS}{customer['id']}/", json={"company_name": ""})
    assert response.status_code == 400
    assert "non_field_errors" in response.json()["details"]


async def test_given_update_to_another_customers_external_id_then_409(
    client: httpx.AsyncClient, emu: ThredfiEmulator
) -> None:
    _, second = emu.seed([{"company_name": "A", "external_id": "x-1"}, {"company_name": "B", "external_id": "x-2"}])
    response = await client.patch(f"{CUSTOMERS}{second['id']}/", json={"external_id": "x-1"})
    assert response.status_code == 409
    assert response.json()["error_code"] == "duplicate_external_id"


async def test_given_customer_when_archiving_twice_then_archived_and_second_unchanged(
    client: httpx.AsyncClient, emu: ThredfiEmulator
) -> None:
    customer = _seed(emu, 1)[0]
    path = f"{CUSTOMERS}{customer['id']}/archive/"
    first = await client.post(path)
    second = await client.post(path)
    assert first.status_code == second.status_code == 200
    assert first.json()["status"] == "ARCHIVED"
    assert first.json()["archived_at"] is not None
    assert second.json() == first.json()
    assert emu.write_count == 1


async def test_given_archived_customer_when_updating_status_active_then_unarchived(
    client: httpx.AsyncClient, emu: ThredfiEmulator
) -> None:
    customer = _seed(emu, 1, status="archived")[0]
    assert customer["status"] == "ARCHIVED"
    response = await client.patch(f"{CUSTOMERS}{customer['id']}/", json={"status": "active"})
    body = response.json()
    assert (body["status"], body["is_active"], body["archived_at"]) == ("ACTIVE", True, None)


async def test_given_delete_when_authenticated_then_405_and_record_kept(
    client: httpx.AsyncClient, emu: ThredfiEmulator
) -> None:
    customer = _seed(emu, 1)[0]
    response = await client.delete(f"{CUSTOMERS}{customer['id']}/")
    assert response.status_code == 405
    assert customer["id"] in emu.records


# -- faults and admin -------------------------------------------------------


async def test_given_error_after_fault_when_creating_then_500_and_retry_is_idempotent(
    client: httpx.AsyncClient, emu: ThredfiEmulator
) -> None:
    emu.faults.add("error_after", method="POST", path="/customers/$")
    body = {"company_name": "Acme", "external_id": "bc-1"}
    assert (await client.post(CUSTOMERS, json=body)).status_code == 500
    retry = await client.post(CUSTOMERS, json=body)
    assert retry.status_code == 200
    assert len(emu.records) == 1


async def test_given_rate_limit_fault_when_listing_then_429_with_retry_after(
    client: httpx.AsyncClient, emu: ThredfiEmulator
) -> None:
    emu.faults.add("rate_limit", method="GET", retry_after=1.5)
    response = await client.get(CUSTOMERS)
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "1.5"


async def test_given_admin_seed_and_edit_then_updated_at_bumps_and_log_shows_writes(
    client: httpx.AsyncClient, emu: ThredfiEmulator
) -> None:
    seeded = (await client.post("/_admin/customers", json={"individual_name": "Zoë"})).json()
    edited = await client.patch(
        f"/_admin/customers/{seeded['id']}", json={"company_name": "Zoë Ltd", "status": "ARCHIVED"}
    )
    record = edited.json()
    assert record["display_name"] == "Zoë Ltd"
    assert record["is_archived"] is True
    assert record["updated_at"] > seeded["updated_at"]
    await client.post(f"{CUSTOMERS}{seeded['id']}/archive/")
    log = (await client.get("/_admin/requests")).json()
    # The partner and business token requests, then the archive: only the last is a record write.
    assert [(r["method"], r["is_write"]) for r in log] == [("POST", True)] * 3
    assert [w.path for w in emu.writes()] == [f"{CUSTOMERS}{seeded['id']}/archive/"]


def test_given_fake_seed_then_alpha2_countries_and_inactive_ones_archived() -> None:
    emu = ThredfiEmulator()
    records = emu.seed_fake(20)
    assert {r["country"] for r in records} == {"US", "MX", "CL", "GB"}
    assert [r["status"] for r in records].count("ARCHIVED") == 2
    assert all(r["display_name"] for r in records)
    assert emu.write_count == 0
