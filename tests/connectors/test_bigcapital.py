"""Bigcapital connector: mapping rules, then real HTTP against the in-process emulator."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import date
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import stamina
from structlog.testing import capture_logs

from connectors.base import Connector, CreateResult
from connectors.bigcapital import BigcapitalConnector, BigcapitalSettings
from connectors.errors import AuthError, NotFoundError, RejectedError, RetriableError
from connectors.model import Customer, RemoteCustomer
from sandbox.bigcapital import SANDBOX_API_KEY, SANDBOX_ORGANIZATION_ID, BigcapitalEmulator

BASE_URL = "http://bigcapital.test"


def settings(**changes: Any) -> BigcapitalSettings:
    values: dict[str, Any] = {
        "system": "bigcapital",
        "base_url": BASE_URL,
        "api_key": SANDBOX_API_KEY,
        **changes,
    }
    return BigcapitalSettings(**values)


def a_customer(**changes: Any) -> Customer:
    values: dict[str, Any] = {
        "kind": "company",
        "name": "Zürich Tools Ltd",
        "company_name": "Zürich Tools",
        "first_name": "Siobhán",
        "last_name": "O'Brien",
        "email": "accounts@zurich-tools.example.co.uk",
        "phone": "+442071234567",
        "mobile": "+447700900123",
        "website": "https://zurich-tools.example.co.uk",
        "address_line1": "1 High Street",
        "address_line2": "Suite 4",
        "city": "Leeds",
        "state": "England",
        "postal_code": "LS1 4AP",
        "country": "GB",
        "tax_id": "GB123456789",
        "tax_system": "601",
        "invoice_use": "G03",
        "currency": "GBP",
        "notes": "Pays by transfer ✓",
        **changes,
    }
    return Customer(**values)


def a_record(**changes: Any) -> dict[str, Any]:
    """A customer as Bigcapital returns it (snake_case)."""
    return {
        "id": 7,
        "contact_type": "customer",
        "customer_type": "business",
        "display_name": " Señor Café S.A. de C.V. ",
        "company_name": "Señor Café",
        "first_name": "",
        "last_name": None,
        "email": "pagos@senorcafe.mx",
        "work_phone": "+523312345678",
        "personal_phone": "+523398765432",
        "website": "https://senorcafe.mx",
        "billing_address1": "Av. Vallarta 3000",
        "billing_address2": "Col. Centro",
        "billing_address_city": "Guadalajara",
        "billing_address_state": "Jalisco",
        "billing_address_postcode": "44100",
        "billing_address_country": "Mexico",
        "currency_code": "MXN",
        "note": "VIP",
        "active": True,
        "created_at": "2024-01-02T03:04:05Z",
        "updated_at": "2024-02-03T04:05:06Z",
        **changes,
    }


class Recorder(httpx.AsyncBaseTransport):
    """The emulator's transport, keeping every request the connector sent."""

    def __init__(self, emu: BigcapitalEmulator) -> None:
        self.inner = httpx.ASGITransport(app=emu.app)
        self.sent: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        return await self.inner.handle_async_request(request)

    def bodies(self, method: str) -> list[dict[str, Any]]:
        return [json.loads(r.content) for r in self.sent if r.method == method]


@pytest.fixture(autouse=True)
def fast_retries() -> Iterator[None]:
    with stamina.set_testing(True, attempts=3):
        yield


@pytest.fixture
def emu() -> BigcapitalEmulator:
    return BigcapitalEmulator()


@pytest.fixture
def recorder(emu: BigcapitalEmulator) -> Recorder:
    return Recorder(emu)


@pytest.fixture
async def books(recorder: Recorder) -> AsyncIterator[BigcapitalConnector]:
    async with BigcapitalConnector("books", settings(), transport=recorder) as connector:
        assert isinstance(connector, BigcapitalConnector)
        yield connector


async def pull_all(connector: Connector) -> list[RemoteCustomer]:
    return [remote async for page in connector.pages() for remote in page]


# -- mapping, no HTTP ----------------------------------------------------------


def test_given_read_shape_when_mapped_then_every_field_lands_in_canonical() -> None:
    connector = BigcapitalConnector("books", settings())

    remote = connector.read(a_record())

    assert remote.id == "7"
    assert remote.external_id is None  # no identity slot
    assert remote.updated_at is not None
    assert remote.customer == Customer(
        kind="company",
        name="Señor Café S.A. de C.V.",
        company_name="Señor Café",
        email="pagos@senorcafe.mx",
        phone="+523312345678",
        mobile="+523398765432",
        website="https://senorcafe.mx",
        address_line1="Av. Vallarta 3000",
        address_line2="Col. Centro",
        city="Guadalajara",
        state="Jalisco",
        postal_code="44100",
        country="MX",
        currency="MXN",
        notes="VIP",
        active=True,
    )


@pytest.mark.parametrize(
    ("changes", "field", "value"),
    [
        ({"customer_type": "individual"}, "kind", "individual"),
        ({"active": False}, "active", False),
        ({"billing_address_country": "United States"}, "country", "US"),
        ({"billing_address_country": "UK"}, "country", "GB"),
        ({"billing_address_country": "CHL"}, "country", "CL"),
        ({"billing_address_country": ""}, "country", None),
        ({"billing_address_postcode": None}, "postal_code", None),
    ],
)
def test_given_vendor_value_when_mapped_then_canonical_value(
    changes: dict[str, Any], field: str, value: object
) -> None:
    customer = BigcapitalConnector("books", settings()).to_canonical(a_record(**changes))

    assert getattr(customer, field) == value


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"billing_address_country": "Atlantis"}, "country"),
        ({"customer_type": "reseller"}, "kind"),
        ({"customer_type": None}, "kind"),
        ({"display_name": "  "}, "name"),
    ],
)
def test_given_unmappable_record_when_read_then_problem_names_canonical_field(
    changes: dict[str, Any], field: str
) -> None:
    remote = BigcapitalConnector("books", settings()).read(a_record(**changes))

    assert remote.customer is None
    assert remote.problem is not None
    assert remote.problem.field == field
    assert remote.id == "7"


def test_given_customer_when_create_payload_then_camel_case_zipcode_and_country_name() -> None:
    body = BigcapitalConnector("books", settings()).to_payload(a_customer(), "x:1", create=True)

    assert body == {
        "customerType": "business",
        "displayName": "Zürich Tools Ltd",
        "companyName": "Zürich Tools",
        "firstName": "Siobhán",
        "lastName": "O'Brien",
        "email": "accounts@zurich-tools.example.co.uk",
        "workPhone": "+442071234567",
        "personalPhone": "+447700900123",
        "website": "https://zurich-tools.example.co.uk",
        "billingAddress1": "1 High Street",
        "billingAddress2": "Suite 4",
        "billingAddressCity": "Leeds",
        "billingAddressState": "England",
        "billingAddressZipcode": "LS1 4AP",
        "billingAddressCountry": "United Kingdom",
        "currencyCode": "GBP",
        "note": "Pays by transfer ✓",
    }


def test_given_update_when_payload_then_type_and_name_sent_and_empty_fields_cleared() -> None:
    customer = a_customer(kind="individual", email=None, country=None, currency="USD")

    body = BigcapitalConnector("books", settings()).to_payload(customer, "x:1", create=False)

    assert body["customerType"] == "individual"
    assert body["displayName"] == "Zürich Tools Ltd"
    assert body["email"] is None  # a PUT keeps what it is not sent: null clears
    assert body["billingAddressCountry"] is None
    assert "currencyCode" not in body  # fixed at creation
    assert "active" not in body
    assert not any(key.endswith("Postcode") for key in body)


def test_given_customer_when_shaped_then_tax_fields_dropped_and_limits_checked() -> None:
    connector = BigcapitalConnector("books", settings())

    shaped = connector.shape(a_customer(city="x" * 300, notes="n" * 1000), truncate=True)

    assert (shaped.tax_id, shaped.tax_system, shaped.invoice_use) == (None, None, None)
    assert shaped.city == "x" * 255
    assert shaped.notes == "n" * 1000  # a text column, no limit
    assert connector.problems(shaped) == []
    assert connector.spec.identity_slot is False
    assert {"tax_id", "tax_system", "invoice_use"}.isdisjoint(connector.spec.fields)


def test_given_missing_currency_or_long_name_when_checked_then_problems_name_fields() -> None:
    connector = BigcapitalConnector("books", settings())

    problems = connector.problems(connector.shape(a_customer(currency=None, name="n" * 256)))

    assert [p.field for p in problems] == ["name", "currency"]  # canonical order
    bad = connector.problems(connector.shape(a_customer(currency="pounds")))
    assert [p.field for p in bad] == ["currency"]


def test_given_settings_when_tenant_asked_then_organization_or_host() -> None:
    assert BigcapitalConnector("books", settings()).tenant == "bigcapital.test"
    with_org = BigcapitalConnector("books", settings(organization_id="org-9"))
    assert with_org.tenant == "org-9"
    assert with_org.external_id_for("12") == "bigcapital:org-9:12"


def test_given_vendor_field_names_when_looked_up_then_both_spellings_are_canonical() -> None:
    names = BigcapitalConnector.vendor_fields

    assert names["billingAddressZipcode"] == names["billing_address_postcode"] == "postal_code"
    assert names["displayName"] == "name"
    assert names["workPhone"] == names["work_phone"] == "phone"
    assert names["billingAddressCountry"] == "country"
    assert names["currencyCode"] == "currency"
    assert names["note"] == "notes"


# -- real HTTP against the emulator ----------------------------------------------


async def test_given_250_customers_some_inactive_when_paged_then_all_read_once(
    emu: BigcapitalEmulator, books: BigcapitalConnector
) -> None:
    seeded = emu.seed_fake(250)
    inactive = {str(r["id"]) for r in seeded if not r["active"]}

    pulled = await pull_all(books)

    assert sorted(int(r.id) for r in pulled) == sorted(r["id"] for r in seeded)
    assert all(r.problem is None for r in pulled)
    assert {r.id for r in pulled if r.customer and not r.customer.active} == inactive
    assert 0 < len(inactive) < 250
    lists = [r for r in emu.requests if r.method == "GET"]
    assert len(lists) == 3 + 1  # 225 active at 100 a page, then 25 inactive
    assert all("pageSize=100" in r.query and "sortOrder=asc" in r.query for r in lists)


async def test_given_no_customers_when_paged_then_empty_pages_end(
    books: BigcapitalConnector,
) -> None:
    assert await pull_all(books) == []


@pytest.mark.parametrize("kind", ["company", "individual"])
async def test_given_customer_when_created_and_read_back_then_round_trip_equals_shape(
    emu: BigcapitalEmulator, books: BigcapitalConnector, kind: str
) -> None:
    original = a_customer(kind=kind)

    created = await books.create(original, "thredfi:biz:1")
    fetched = await books.get(created.remote.id)

    assert created.existed is False
    assert created.remote.customer == books.shape(original)
    assert fetched.customer == books.shape(original)
    stored = emu.records[created.remote.id]
    assert stored["billing_address_postcode"] == "LS1 4AP"  # written as ...Zipcode
    assert stored["billing_address_country"] == "United Kingdom"
    assert stored["customer_type"] == ("business" if kind == "company" else "individual")


async def test_given_existing_customer_when_updated_then_put_carries_type_and_name(
    emu: BigcapitalEmulator, books: BigcapitalConnector, recorder: Recorder
) -> None:
    created = await books.create(a_customer(), "x:1")
    changed = a_customer(name="Zürich Tools Group", postal_code="LS2 7EY", email=None)

    await books.update(created.remote.id, changed, "x:1")

    (put,) = recorder.bodies("PUT")
    assert put["customerType"] == "business"
    assert put["displayName"] == "Zürich Tools Group"
    assert put["billingAddressZipcode"] == "LS2 7EY"
    fetched = await books.get(created.remote.id)
    assert fetched.customer == books.shape(changed)
    assert emu.records[created.remote.id]["email"] is None


async def test_given_active_customer_when_inactivated_twice_and_activated_twice_then_idempotent(
    emu: BigcapitalEmulator, books: BigcapitalConnector
) -> None:
    (record,) = emu.seed([{"displayName": "Hooli Inc."}])
    remote_id = str(record["id"])

    await books.set_active(remote_id, False)
    await books.set_active(remote_id, False)  # 400 CONTACT_ALREADY_INACTIVE: success
    assert emu.records[remote_id]["active"] is False
    assert [r.id for r in await pull_all(books) if r.customer and not r.customer.active] == [remote_id]

    await books.set_active(remote_id, True)
    await books.set_active(remote_id, True)  # 400 CONTACT_ALREADY_ACTIVE: success
    assert emu.records[remote_id]["active"] is True
    statuses = [r.status for r in emu.requests if r.method == "PATCH"]
    assert statuses == [200, 400, 200, 400]


async def test_given_lost_answer_when_inactivate_retried_then_already_inactive_is_success(
    emu: BigcapitalEmulator, books: BigcapitalConnector
) -> None:
    (record,) = emu.seed([{"displayName": "Hooli Inc."}])
    emu.faults.add("error_after", method="PATCH", path="/inactivate")

    await books.set_active(str(record["id"]), False)

    assert record["active"] is False
    assert [r.status for r in emu.requests if r.method == "PATCH"] == [500, 400]


async def test_given_missing_customer_when_activated_then_not_found(
    books: BigcapitalConnector,
) -> None:
    with pytest.raises(NotFoundError):
        await books.set_active("999", True)


async def test_given_invalid_id_when_activated_then_rejected_not_swallowed(
    books: BigcapitalConnector,
) -> None:
    with pytest.raises(RejectedError):
        await books.set_active("abc", True)


async def test_given_missing_customer_when_fetched_then_not_found(
    books: BigcapitalConnector,
) -> None:
    with pytest.raises(NotFoundError, match="HTTP 404"):
        await books.get("424242")


async def test_given_invalid_email_when_created_then_rejected_naming_canonical_field(
    emu: BigcapitalEmulator, books: BigcapitalConnector
) -> None:
    with pytest.raises(RejectedError) as caught:
        await books.create(a_customer(email="not-an-email"), "x:1")

    assert caught.value.field == "email"
    assert emu.records == {}


async def test_given_over_long_postcode_when_created_then_refusal_names_postal_code(
    books: BigcapitalConnector,
) -> None:
    with pytest.raises(RejectedError) as caught:
        await books.create(a_customer(postal_code="9" * 300), "x:1")

    assert caught.value.field == "postal_code"


async def test_given_wrong_key_when_listing_then_auth_error_without_the_key(
    emu: BigcapitalEmulator,
) -> None:
    wrong = "bc_" + "0" * 96
    transport = httpx.ASGITransport(app=emu.app)
    async with BigcapitalConnector("books", settings(api_key=wrong), transport=transport) as bad:
        with pytest.raises(AuthError) as caught:
            await bad.check()

    assert wrong not in str(caught.value)
    assert len(emu.requests) == 1  # a refusal of credentials is not retried


async def test_given_organization_header_when_matching_then_accepted_else_refused(
    emu: BigcapitalEmulator, recorder: Recorder
) -> None:
    emu.seed([{"displayName": "Hooli Inc."}])
    good = settings(organization_id=SANDBOX_ORGANIZATION_ID)
    async with BigcapitalConnector("books", good, transport=recorder) as connector:
        assert len(await pull_all(connector)) == 1
    assert recorder.sent[0].headers["organization-id"] == SANDBOX_ORGANIZATION_ID

    wrong = settings(organization_id="someone-else")
    async with BigcapitalConnector("books", wrong, transport=recorder) as connector:
        with pytest.raises(AuthError):
            await connector.check()


async def test_given_rate_limit_with_retry_after_when_listing_then_retried(
    emu: BigcapitalEmulator, books: BigcapitalConnector
) -> None:
    emu.seed([{"displayName": "Hooli Inc."}])
    rule = emu.faults.add("rate_limit", method="GET", retry_after=1, times=2)

    pulled = await pull_all(books)

    assert len(pulled) == 1
    assert rule.fired == 2
    assert [r.status for r in emu.requests][:3] == [429, 429, 200]


async def test_given_server_error_when_fetching_then_retried(
    emu: BigcapitalEmulator, books: BigcapitalConnector
) -> None:
    (record,) = emu.seed([{"displayName": "Hooli Inc."}])
    emu.faults.add("error_before", method="GET", status=503)

    fetched = await books.get(str(record["id"]))

    assert fetched.customer is not None
    assert [r.status for r in emu.requests] == [503, 200]


async def test_given_server_error_after_create_applied_then_not_retried(
    emu: BigcapitalEmulator, books: BigcapitalConnector
) -> None:
    emu.faults.add("error_after", method="POST", path="/api/customers")

    with pytest.raises(RetriableError):
        await books.create(a_customer(), "x:1")

    # No identity slot: a second POST could make a duplicate, so the engine
    # must recover the identity (by e-mail) instead.
    assert len(emu.writes()) == 1
    assert len(emu.records) == 1


async def test_given_create_answer_without_record_when_created_then_record_read_back(
    emu: BigcapitalEmulator,
) -> None:
    inner = httpx.ASGITransport(app=emu.app)

    async def envelope_only(request: httpx.Request) -> httpx.Response:
        response = await inner.handle_async_request(request)
        await response.aread()
        if request.method == "POST":  # older servers answer {id, message}
            created = json.loads(response.content)
            return httpx.Response(201, json={"id": created["id"], "message": "created"})
        return response

    transport = httpx.MockTransport(envelope_only)
    async with BigcapitalConnector("books", settings(), transport=transport) as connector:
        result = await connector.create(a_customer(), "x:1")

    assert isinstance(result, CreateResult)
    assert result.remote.customer == connector.shape(a_customer())
    assert [r.method for r in emu.requests] == ["POST", "GET"]


async def test_given_delete_when_called_then_record_gone(emu: BigcapitalEmulator, books: BigcapitalConnector) -> None:
    (record,) = emu.seed([{"displayName": "Hooli Inc."}])

    await books.delete(str(record["id"]))

    assert emu.records == {}
    assert await books.find_by_external_id("x:1") is None  # no identity slot


async def test_given_a_run_with_failures_when_logs_captured_then_no_secret_appears(
    emu: BigcapitalEmulator, recorder: Recorder
) -> None:
    emu.seed_fake(5)
    emu.faults.add("error_before", method="GET", times=1)
    emu.faults.add("rate_limit", method="GET", retry_after=1, times=1)
    errors: list[str] = []
    with capture_logs() as logs:
        async with BigcapitalConnector("books", settings(), transport=recorder) as connector:
            await pull_all(connector)
            try:
                await connector.create(a_customer(email="bad"), "x:1")
            except RejectedError as exc:
                errors.append(str(exc))
        async with BigcapitalConnector("books", settings(api_key="bc_" + "1" * 96), transport=recorder) as connector:
            try:
                await connector.check()
            except AuthError as exc:
                errors.append(str(exc))

    text = repr(logs) + repr(errors) + repr(settings())
    assert len(errors) == 2
    assert SANDBOX_API_KEY not in text
    assert "1" * 96 not in text
    assert recorder.sent[0].headers["Authorization"] == f"Bearer {SANDBOX_API_KEY}"


async def test_given_since_when_listing_then_both_listings_filter_created_at(
    emu: BigcapitalEmulator, books: BigcapitalConnector
) -> None:
    emu.seed([{"displayName": "Hooli Inc."}, {"displayName": "Initech", "active": False}])
    books.since = date(2024, 3, 1)

    pulled = await pull_all(books)

    # The sandbox ignores the filter (a superset is harmless); the server applies it.
    assert books.can_filter_since is True
    assert len(pulled) == 2
    sent = [parse_qs(r.query) for r in emu.requests]
    assert [q["inactiveMode"] for q in sent] == [["false"], ["true"]]
    for query in sent:
        (roles,) = query["stringifiedFilterRoles"]
        assert json.loads(roles) == [
            {
                "fieldKey": "created_at",
                "comparator": "after",
                "value": "2024-02-29",
                "condition": "and",
            }
        ]
