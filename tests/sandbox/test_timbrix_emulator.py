"""The Timbrix emulator behaves like docs.timbrix.mx describes, quirks included."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from sandbox.timbrix import (
    SANDBOX_API_KEY,
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    SANDBOX_ORGANIZATION_ID,
    TimbrixEmulator,
)

CUSTOMERS = f"/api/organizations/{SANDBOX_ORGANIZATION_ID}/customers"
UNAUTHORIZED = {"statusCode": 401, "message": "Unauthorized", "error": "Unauthorized"}
TOKEN_BODY = {
    "clientId": SANDBOX_CLIENT_ID,
    "clientSecret": SANDBOX_CLIENT_SECRET,
    "scopes": ["customers:read", "customers:write"],
}


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
def emu(clock: FakeClock) -> TimbrixEmulator:
    return TimbrixEmulator(clock=clock)


@pytest.fixture
async def client(emu: TimbrixEmulator) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=emu.app)
    headers = {"X-API-Key": SANDBOX_API_KEY}
    async with httpx.AsyncClient(transport=transport, base_url="http://test", headers=headers) as c:
        yield c


@pytest.fixture
async def anonymous(emu: TimbrixEmulator) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=emu.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


def a_body(**changes: Any) -> dict[str, Any]:
    body = {
        "legalName": "Dunder Mifflin",
        "taxId": "DUM901231AB3",
        "taxSystem": "601",
        "email": "billing@dundermifflin.com",
        "defaultInvoiceUse": "G01",
        "phone": "6474010101",
        "addressStreet": "Blvd. Atardecer",
        "addressExterior": "142",
        "addressNeighborhood": "Centro",
        "addressCity": "Huatabampo",
        "addressMunicipality": "Huatabampo",
        "addressZip": "86500",
        "addressState": "Sonora",
    }
    body.update(changes)
    return body


# -- authentication -----------------------------------------------------------


async def test_given_no_credentials_when_listing_then_401_nest_body(
    anonymous: httpx.AsyncClient,
) -> None:
    response = await anonymous.get(CUSTOMERS)
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED


async def test_given_wrong_api_key_when_listing_then_401(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get(CUSTOMERS, headers={"X-API-Key": "sk_test_wrong"})
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED


async def test_given_oauth_token_when_listing_then_200_until_it_expires(
    anonymous: httpx.AsyncClient, clock: FakeClock
) -> None:
    issued = await anonymous.post("/api/oauth/token", json=TOKEN_BODY)
    assert issued.status_code == 200
    token = issued.json()
    assert token["token_type"] == "Bearer"
    assert token["expires_in"] == 3600
    assert token["scope"] == "customers:read customers:write"
    bearer = {"Authorization": f"Bearer {token['access_token']}"}
    clock.now += 3599
    assert (await anonymous.get(CUSTOMERS, headers=bearer)).status_code == 200
    clock.now += 1
    expired = await anonymous.get(CUSTOMERS, headers=bearer)
    assert expired.status_code == 401
    assert expired.json() == UNAUTHORIZED


async def test_given_wrong_client_secret_when_requesting_token_then_401(
    anonymous: httpx.AsyncClient,
) -> None:
    response = await anonymous.post("/api/oauth/token", json={**TOKEN_BODY, "clientSecret": "x"})
    assert response.status_code == 401
    assert response.json()["error"] == "Unauthorized"


async def test_given_unconfigured_scope_when_requesting_token_then_400(
    anonymous: httpx.AsyncClient,
) -> None:
    response = await anonymous.post("/api/oauth/token", json={**TOKEN_BODY, "scopes": ["admin"]})
    assert response.status_code == 400


async def test_given_read_only_token_when_creating_then_403(anonymous: httpx.AsyncClient) -> None:
    issued = await anonymous.post("/api/oauth/token", json={**TOKEN_BODY, "scopes": ["customers:read"]})
    bearer = {"Authorization": f"Bearer {issued.json()['access_token']}"}
    assert (await anonymous.get(CUSTOMERS, headers=bearer)).status_code == 200
    response = await anonymous.post(CUSTOMERS, json=a_body(), headers=bearer)
    assert response.status_code == 403
    assert response.json()["statusCode"] == 403


async def test_given_ten_token_requests_in_a_minute_when_eleventh_then_429_until_window_ends(
    emu: TimbrixEmulator, anonymous: httpx.AsyncClient, clock: FakeClock
) -> None:
    for _ in range(10):
        assert (await anonymous.post("/api/oauth/token", json=TOKEN_BODY)).status_code == 200
        clock.now += 2
    limited = await anonymous.post("/api/oauth/token", json=TOKEN_BODY)
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "40"
    assert limited.json() == {"statusCode": 429, "message": "ThrottlerException: Too Many Requests"}
    clock.now += 40
    assert (await anonymous.post("/api/oauth/token", json=TOKEN_BODY)).status_code == 200
    assert emu.writes() == []  # token requests are not record writes


async def test_given_foreign_organization_when_listing_then_403(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/api/organizations/11111111-2222-3333-4444-555555555555/customers")
    assert response.status_code == 403
    assert response.json()["error"] == "Forbidden"


async def test_given_api_key_when_validating_then_valid_and_bad_key_401(
    anonymous: httpx.AsyncClient,
) -> None:
    good = await anonymous.post("/api/api-keys/validate", json={"apiKey": SANDBOX_API_KEY})
    assert good.json()["valid"] is True
    assert good.json()["organizationId"] == SANDBOX_ORGANIZATION_ID
    bad = await anonymous.post("/api/api-keys/validate", json={"apiKey": "sk_test_x"})
    assert bad.status_code == 401


# -- listing and reading ------------------------------------------------------


async def test_given_many_customers_when_listing_then_bare_array_of_all_ignoring_params(
    emu: TimbrixEmulator, client: httpx.AsyncClient
) -> None:
    emu.seed_fake(150)
    response = await client.get(CUSTOMERS, params={"page": 2, "limit": 10, "taxId": "nope"})
    assert response.status_code == 200
    body = response.json()
    assert isinstance(body, list)
    assert [r["id"] for r in body] == list(emu.records)


async def test_given_trailing_slash_or_unknown_route_then_express_routing(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.get(CUSTOMERS + "/")).status_code == 200
    response = await client.patch(CUSTOMERS + "/abc")
    assert response.status_code == 404
    assert response.json() == {"statusCode": 404, "message": f"Cannot PATCH {CUSTOMERS}/abc", "error": "Not Found"}


async def test_given_missing_id_when_getting_then_404(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{CUSTOMERS}/{'0' * 24}")
    assert response.status_code == 404
    assert response.json() == {"statusCode": 404, "message": "Customer not found", "error": "Not Found"}


# -- creating -------------------------------------------------------------------


async def test_given_flat_body_when_creating_then_201_nested_address_read(
    emu: TimbrixEmulator, client: httpx.AsyncClient
) -> None:
    response = await client.post(CUSTOMERS, json=a_body())
    assert response.status_code == 201
    record = response.json()
    assert len(record["id"]) == 24
    int(record["id"], 16)
    assert record["organizationId"] == SANDBOX_ORGANIZATION_ID
    assert record["address"] == {
        "street": "Blvd. Atardecer",
        "exterior": "142",
        "interior": None,
        "neighborhood": "Centro",
        "city": "Huatabampo",
        "municipality": "Huatabampo",
        "zip": "86500",
        "state": "Sonora",
        "country": "MEX",
    }
    assert "addressZip" not in record
    assert record["createdAt"] == record["updatedAt"]
    assert emu.write_count == 1
    assert (await client.get(f"{CUSTOMERS}/{record['id']}")).json() == record


async def test_given_four_digit_zip_when_creating_then_400_names_address_zip(
    emu: TimbrixEmulator, client: httpx.AsyncClient
) -> None:
    response = await client.post(CUSTOMERS, json=a_body(addressZip="8650"))
    assert response.status_code == 400
    assert response.json() == {
        "statusCode": 400,
        "message": ["addressZip must be a 5-digit postal code"],
        "error": "Bad Request",
    }
    assert emu.records == {}


async def test_given_nested_address_when_creating_then_400_flat_fields_missing(
    client: httpx.AsyncClient,
) -> None:
    body = {k: v for k, v in a_body().items() if not k.startswith("address")}
    body["address"] = {"street": "Blvd. Atardecer", "exterior": "142", "zip": "86500"}
    response = await client.post(CUSTOMERS, json=body)
    assert response.status_code == 400
    assert "property address should not exist" in response.json()["message"]
    assert "addressStreet should not be empty" in response.json()["message"]
    assert "addressZip should not be empty" in response.json()["message"]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"taxId": "dum901231ab3"}, "taxId must be a valid RFC (12 characters for companies, 13 for individuals)"),
        ({"taxSystem": "999"}, "taxSystem must be one of the following values: "),
        ({"defaultInvoiceUse": "P01"}, "defaultInvoiceUse must be one of the following values: "),
        ({"email": "not-an-email"}, "email must be an email"),
        ({"addressExterior": 142}, "addressExterior must be a string"),
        ({"addressCountry": "MX"}, "addressCountry must be a valid ISO31661 Alpha3 code"),
        ({"legalName": ""}, "legalName should not be empty"),
    ],
)
async def test_given_invalid_field_when_creating_then_400_class_validator_message(
    client: httpx.AsyncClient, changes: dict[str, Any], message: str
) -> None:
    response = await client.post(CUSTOMERS, json=a_body(**changes))
    assert response.status_code == 400
    [found] = response.json()["message"]
    assert found.startswith(message)


async def test_given_unknown_keys_when_creating_then_400_naming_each_and_nothing_stored(
    client: httpx.AsyncClient, emu: TimbrixEmulator
) -> None:
    """Not documented: the strict reading is NestJS's ``forbidNonWhitelisted``."""
    response = await client.post(CUSTOMERS, json=a_body(notes="vip", status="active"))
    assert response.status_code == 400
    assert response.json()["message"] == ["property notes should not exist", "property status should not exist"]
    assert emu.records == {}


async def test_given_unknown_keys_when_the_lenient_reading_then_dropped(
    client: httpx.AsyncClient, emu: TimbrixEmulator
) -> None:
    emu.forbid_unknown_keys = False  # plain ``whitelist: true``
    response = await client.post(CUSTOMERS, json=a_body(notes="vip", status="active"))
    assert response.status_code == 201
    assert "notes" not in response.json()
    assert "status" not in response.json()


@pytest.mark.parametrize(("field", "limit"), [("legalName", 254), ("addressStreet", 255), ("email", 255)])
async def test_given_text_over_its_limit_when_creating_then_400_names_it(
    client: httpx.AsyncClient, field: str, limit: int
) -> None:
    """Lengths are not documented: CFDI 4.0's 254 for the legal name, 255 for other text."""
    value = ("a" * (limit - 11) + "@example.com") if field == "email" else "A" * (limit + 1)
    response = await client.post(CUSTOMERS, json=a_body(**{field: value}))
    assert response.status_code == 400
    assert response.json()["message"] == [f"{field} must be shorter than or equal to {limit} characters"]


async def test_given_existing_tax_id_when_creating_then_409_conflict(
    emu: TimbrixEmulator, client: httpx.AsyncClient
) -> None:
    assert (await client.post(CUSTOMERS, json=a_body())).status_code == 201
    response = await client.post(CUSTOMERS, json=a_body(legalName="Other"))
    assert response.status_code == 409
    assert response.json() == {
        "statusCode": 409,
        "message": "Customer with this taxId already exists",
        "error": "Conflict",
    }
    assert len(emu.records) == 1


async def test_given_generic_foreign_rfc_when_creating_twice_then_both_201(
    client: httpx.AsyncClient,
) -> None:
    for name in ("Foreign A", "Foreign B"):
        body = a_body(legalName=name, taxId="XEXX010101000", taxSystem="616")
        assert (await client.post(CUSTOMERS, json=body)).status_code == 201


# -- updating and deleting --------------------------------------------------------


async def test_given_flat_partial_body_when_putting_then_only_those_fields_change(
    emu: TimbrixEmulator, client: httpx.AsyncClient
) -> None:
    [seeded] = emu.seed([{**a_body(), "updatedAt": "2020-01-01T00:00:00Z"}])
    before = {**seeded, "address": dict(seeded["address"])}
    response = await client.put(f"{CUSTOMERS}/{seeded['id']}", json={"addressZip": "86501", "addressInterior": "4"})
    assert response.status_code == 200
    after = response.json()
    assert after["address"] == {**before["address"], "zip": "86501", "interior": "4"}
    assert after["legalName"] == before["legalName"]
    assert after["updatedAt"] > before["updatedAt"]
    assert emu.write_count == 1


async def test_given_bad_zip_or_taken_tax_id_when_putting_then_400_or_409(
    emu: TimbrixEmulator, client: httpx.AsyncClient
) -> None:
    first, second = emu.seed([a_body(), a_body(taxId="ABC101010111")])
    bad = await client.put(f"{CUSTOMERS}/{second['id']}", json={"addressZip": "1"})
    assert bad.status_code == 400
    taken = await client.put(f"{CUSTOMERS}/{second['id']}", json={"taxId": first["taxId"]})
    assert taken.status_code == 409
    same = await client.put(f"{CUSTOMERS}/{first['id']}", json={"taxId": first["taxId"]})
    assert same.status_code == 200


async def test_given_customer_when_deleting_then_204_and_gone_for_good(
    emu: TimbrixEmulator, client: httpx.AsyncClient
) -> None:
    [seeded] = emu.seed([a_body()])
    response = await client.delete(f"{CUSTOMERS}/{seeded['id']}")
    assert response.status_code == 204
    assert (await client.get(f"{CUSTOMERS}/{seeded['id']}")).status_code == 404
    assert (await client.delete(f"{CUSTOMERS}/{seeded['id']}")).status_code == 404
    assert (await client.get(CUSTOMERS)).json() == []
    assert emu.write_count == 1


# -- faults, admin, seeding -----------------------------------------------------


async def test_given_error_after_fault_when_creating_then_500_but_record_stored(
    emu: TimbrixEmulator, client: httpx.AsyncClient
) -> None:
    emu.faults.add("error_after", method="POST", path="/customers$")
    response = await client.post(CUSTOMERS, json=a_body())
    assert response.status_code == 500
    assert len(emu.records) == 1
    retried = await client.post(CUSTOMERS, json=a_body())
    assert retried.status_code == 409  # the lost create is visible to a retry


async def test_given_rate_limit_fault_when_listing_then_429_with_retry_after(
    emu: TimbrixEmulator, client: httpx.AsyncClient
) -> None:
    emu.faults.add("rate_limit", retry_after=2.5)
    response = await client.get(CUSTOMERS)
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "2.5"


async def test_given_admin_routes_when_seeding_nested_and_editing_then_updated_at_bumps(
    emu: TimbrixEmulator, client: httpx.AsyncClient
) -> None:
    body = {k: v for k, v in a_body().items() if not k.startswith("address")}
    body.update(
        address={
            "street": "Calle 5",
            "exterior": "9",
            "neighborhood": "Juárez",
            "city": "CDMX",
            "municipality": "Cuauhtémoc",
            "zip": "06600",
            "state": "Ciudad de México",
        },
        updatedAt="2020-01-01T00:00:00Z",
    )
    seeded = (await client.post("/_admin/customers", json=body)).json()
    assert seeded["address"]["municipality"] == "Cuauhtémoc"
    assert seeded["address"]["country"] == "MEX"
    edited = await client.patch(f"/_admin/customers/{seeded['id']}", json={"address": {"zip": "06700"}})
    assert edited.json()["address"]["zip"] == "06700"
    assert edited.json()["address"]["street"] == "Calle 5"
    assert edited.json()["updatedAt"] > "2020-01-01T00:00:00Z"
    await client.get(CUSTOMERS)
    log = (await client.get("/_admin/requests")).json()
    assert [(r["method"], r["path"], r["status"]) for r in log] == [("GET", CUSTOMERS, 200)]


async def test_given_fake_customers_when_seeding_then_mexican_cfdi_complete(
    emu: TimbrixEmulator,
) -> None:
    records = emu.seed_fake(30)
    assert len(records) == 30
    for record in records:
        address = record["address"]
        assert address["country"] == "MEX"
        assert address["exterior"].isdigit()
        assert address["neighborhood"] == "Centro"
        assert address["municipality"] == address["city"]
        assert len(address["zip"]) == 5
        assert len(record["taxId"]) in (12, 13)
        assert not address["street"][-1].isdigit()
