"""Bigcapital connector: mapping rules, then real HTTP against the in-process emulator."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import stamina
from structlog.testing import capture_logs

from connectors.base import Connector
from connectors.bigcapital import BigcapitalConnector, BigcapitalSettings
from connectors.errors import AuthError, FatalError, NotFoundError, RejectedError, RetriableError
from connectors.model import Customer, RemoteCustomer
from sandbox.bigcapital import (
    ROW_KEYS,
    SANDBOX_API_KEY,
    SANDBOX_JWT,
    SANDBOX_ORGANIZATION_ID,
    BigcapitalEmulator,
)

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
    """A customer as GET answers it: the transformed customer (recordings, "Get one")."""
    return {
        "id": 7,
        "balance": 0,
        "salutation": None,
        "email": "pagos@senorcafe.mx",
        "website": "https://senorcafe.mx",
        "note": "VIP",
        "active": 1,
        "contact_service": "customer",
        "contact_type": "business",
        "currency_code": "MXN",
        "first_name": "",
        "last_name": None,
        "company_name": "Señor Café",
        "display_name": " Señor Café S.A. de C.V. ",
        "work_phone": "+523312345678",
        "personal_phone": "+523398765432",
        "billing_address1": "Av. Vallarta 3000",
        "billing_address2": "Col. Centro",
        "billing_address_city": "Guadalajara",
        "billing_address_country": "Mexico",
        "billing_address_postcode": "44100",  # only an import can set it
        "billing_address_state": "Jalisco",
        "created_at": None,
        "updated_at": None,
        "formatted_balance": "0.00",
        "customer_type": "business",
        "formatted_customer_type": "Business",
        **changes,
    }


def a_raw_row(**changes: Any) -> dict[str, Any]:
    """The same customer as create and edit answer it: the raw row, no customer_type."""
    row = {key: value for key, value in a_record().items() if key not in ("customer_type", "formatted_balance",
                                                                            "formatted_customer_type")}  # fmt: skip
    return {**row, **changes}


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


def test_given_get_shape_when_mapped_then_every_kept_field_lands_and_the_postcode_is_not_read() -> None:
    connector = BigcapitalConnector("books", settings())

    remote = connector.read(a_record())

    assert remote.id == "7"
    assert remote.external_id is None  # no identity slot
    assert remote.updated_at is None  # never set through the API
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
        postal_code=None,  # no request can write it: not a field Bigcapital keeps
        country="MX",
        currency="MXN",
        notes="VIP",
        active=True,
    )


def test_given_raw_row_as_create_answers_when_mapped_then_same_customer_as_get() -> None:
    connector = BigcapitalConnector("books", settings())

    assert "customer_type" not in a_raw_row()
    assert connector.read(a_raw_row()).customer == connector.read(a_record()).customer
    person = connector.read(a_raw_row(contact_type="individual")).customer
    assert person is not None
    assert person.kind == "individual"


@pytest.mark.parametrize(
    ("changes", "field", "value"),
    [
        ({"customer_type": "individual", "contact_type": "individual"}, "kind", "individual"),
        ({"active": 0}, "active", False),
        ({"active": 1}, "active", True),
        ({"active": "0"}, "active", False),
        ({"active": "1"}, "active", True),
        ({"active": False}, "active", False),
        ({"billing_address_country": "United States"}, "country", "US"),
        ({"billing_address_country": "UK"}, "country", "GB"),
        ({"billing_address_country": "CHL"}, "country", "CL"),
        ({"billing_address_country": ""}, "country", None),
        ({"billing_address_postcode": "62701"}, "postal_code", None),
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
        ({"customer_type": "company"}, "kind"),  # the server stores any customerType (recorded)
        ({"customer_type": None}, "kind"),
        ({"display_name": "  "}, "name"),
        ({"active": "yes"}, "active"),
        ({"active": None}, "active"),
        ({"active": 2}, "active"),
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


def test_given_customer_when_create_payload_then_camel_case_country_name_and_no_postcode_key() -> None:
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
        "billingAddressCountry": "United Kingdom",
        "currencyCode": "GBP",
        "note": "Pays by transfer ✓",
    }


def test_given_sparse_customer_when_create_payload_then_empty_fields_left_out() -> None:
    body = BigcapitalConnector("books", settings()).to_payload(
        Customer(name="Globex", currency="USD"), "x:1", create=True
    )

    assert body == {"customerType": "business", "displayName": "Globex", "currencyCode": "USD"}


def test_given_update_when_payload_then_type_and_name_sent_and_empty_fields_cleared_with_null() -> None:
    customer = a_customer(kind="individual", email=None, country=None, currency="USD")

    body = BigcapitalConnector("books", settings()).to_payload(customer, "x:1", create=False)

    assert body["customerType"] == "individual"
    assert body["displayName"] == "Zürich Tools Ltd"
    assert body["email"] is None  # a PUT keeps what it is not sent; null clears, "" is a 400
    assert "" not in body.values()
    assert body["billingAddressCountry"] is None
    assert "currencyCode" not in body  # fixed at creation
    assert "active" not in body
    assert not any(key.lower().endswith(("zipcode", "postcode")) for key in body)


def test_given_customer_when_shaped_then_tax_fields_and_postcode_dropped_and_limits_checked() -> None:
    connector = BigcapitalConnector("books", settings())

    shaped = connector.shape(a_customer(city="x" * 300, notes="n" * 1000), truncate=True)

    assert (shaped.tax_id, shaped.tax_system, shaped.invoice_use, shaped.postal_code) == (None, None, None, None)
    assert shaped.city == "x" * 255
    assert shaped.notes == "n" * 255  # the strict reading: a note over 255 characters is a 500 too
    assert connector.problems(shaped) == []
    assert connector.spec.identity_slot is False
    assert {"tax_id", "tax_system", "invoice_use", "postal_code"}.isdisjoint(connector.spec.fields)


def test_given_missing_currency_or_long_name_when_checked_then_problems_name_fields() -> None:
    connector = BigcapitalConnector("books", settings())

    problems = connector.problems(connector.shape(a_customer(currency=None, name="n" * 256)))

    assert [p.field for p in problems] == ["name", "currency"]  # canonical order
    bad = connector.problems(connector.shape(a_customer(currency="pounds")))
    assert [p.field for p in bad] == ["currency"]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": "Café 😀 Ltd"}, "name"),  # recorded: 500
        ({"company_name": "𝔄𝔠𝔪𝔢"}, "company_name"),  # mathematical letters, beyond U+FFFF
        ({"notes": "thanks 🙏"}, "notes"),
        ({"city": "x" * 256}, "city"),  # recorded: displayName of 256 is a 500
        ({"notes": "n" * 256}, "notes"),
        ({"website": "https://" + "w" * 250 + ".example"}, "website"),
        ({"currency": "USDX"}, "currency"),  # recorded: 500
        ({"currency": "usd"}, "currency"),  # the server keeps it as typed; ours is ISO 4217
        ({"currency": "US"}, "currency"),
    ],
)
def test_given_value_the_server_answers_500_on_when_checked_then_problem_names_canonical_field(
    changes: dict[str, Any], field: str
) -> None:
    connector = BigcapitalConnector("books", settings())

    problems = connector.problems(connector.shape(a_customer(**changes)))

    assert [p.field for p in problems] == [field]
    assert "😀" not in problems[0].reason  # no customer data in reasons
    assert "🙏" not in problems[0].reason


def test_given_bmp_characters_when_checked_then_accepted() -> None:
    connector = BigcapitalConnector("books", settings())

    customer = a_customer(name="Ñandú ✓ Logística — “Zürich” 東京", notes="☕ ✉ ★")

    assert connector.problems(connector.shape(customer)) == []


def test_given_settings_with_organization_when_tenant_asked_then_it_without_aliases() -> None:
    with_org = BigcapitalConnector("books", settings(organization_id="org-9"))

    assert with_org.tenant == "org-9"
    assert with_org.external_id_for("12") == "bigcapital:org-9:12"
    assert with_org.external_id_aliases("12") == ()


def test_given_no_organization_and_not_opened_when_tenant_asked_then_refused_rather_than_guessed() -> None:
    with pytest.raises(RuntimeError, match="organization"):
        _ = BigcapitalConnector("books", settings()).tenant


def test_given_vendor_field_names_when_looked_up_then_both_spellings_are_canonical() -> None:
    names = BigcapitalConnector.vendor_fields

    assert names["displayName"] == names["display_name"] == "name"
    assert names["workPhone"] == names["work_phone"] == "phone"
    assert names["customerType"] == names["contact_type"] == "kind"
    assert names["billingAddressCountry"] == "country"
    assert names["currencyCode"] == "currency"
    assert names["note"] == "notes"
    assert not any("zipcode" in name.lower() or "postcode" in name.lower() for name in names)


def test_given_since_when_asked_then_refused_with_the_reason() -> None:
    assert BigcapitalConnector.can_filter_since is False
    assert "created_at" in BigcapitalConnector.since_refusal


# -- real HTTP against the emulator ----------------------------------------------


async def test_given_open_connection_when_tenant_asked_then_organization_from_server_asked_once(
    emu: BigcapitalEmulator, recorder: Recorder
) -> None:
    emu.seed_fake(3)
    async with BigcapitalConnector("books", settings(), transport=recorder) as connector:
        await pull_all(connector)
        await pull_all(connector)
        assert connector.tenant == SANDBOX_ORGANIZATION_ID
        assert connector.external_id_for("12") == f"bigcapital:{SANDBOX_ORGANIZATION_ID}:12"
        # Links made before the organization was asked named the host: they are the same records.
        assert connector.external_id_aliases("12") == ("bigcapital:bigcapital.test:12",)

    asked = [r for r in recorder.sent if r.url.path == "/api/organization/current"]
    assert len(asked) == 1
    assert recorder.sent[0].url.path == "/api/organization/current"  # before any other request


async def test_given_other_base_url_when_opened_then_same_external_ids(emu: BigcapitalEmulator) -> None:
    ids = []
    for base in ("http://bigcapital.test", "http://10.0.0.5:3000"):
        connection = settings(base_url=base)
        async with BigcapitalConnector("books", connection, transport=httpx.ASGITransport(app=emu.app)) as books:
            ids.append(books.external_id_for("5"))

    assert ids[0] == ids[1] == f"bigcapital:{SANDBOX_ORGANIZATION_ID}:5"


@pytest.mark.parametrize(
    ("status", "error", "text"),
    [(404, FatalError, "answered 404"), (401, AuthError, "HTTP 401"), (400, FatalError, "refused")],
)
async def test_given_organization_call_fails_when_opened_then_one_line_fatal_error(
    emu: BigcapitalEmulator, status: int, error: type[Exception], text: str
) -> None:
    emu.faults.add("error_before", path="/api/organization/current", status=status, times=None)
    transport = httpx.ASGITransport(app=emu.app)

    with pytest.raises(error) as caught:
        async with BigcapitalConnector("books", settings(), transport=transport):
            pass

    assert type(caught.value) is error
    assert text in str(caught.value)
    assert "\n" not in str(caught.value)
    assert SANDBOX_API_KEY not in str(caught.value)


async def test_given_organization_answer_without_id_when_opened_then_fatal(emu: BigcapitalEmulator) -> None:
    inner = httpx.ASGITransport(app=emu.app)

    async def no_org(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/organization/current"):
            return httpx.Response(200, json={"id": 1, "organization_id": "a:b"})  # would split external ids
        return await inner.handle_async_request(request)

    with pytest.raises(FatalError, match="no usable organization_id"):
        async with BigcapitalConnector("books", settings(), transport=httpx.MockTransport(no_org)):
            pass


async def test_given_250_customers_some_inactive_when_paged_then_all_read_once_in_one_page_per_listing(
    emu: BigcapitalEmulator, books: BigcapitalConnector
) -> None:
    seeded = emu.seed_fake(250)
    inactive = {str(r["id"]) for r in seeded if not r["active"]}

    pulled = await pull_all(books)

    assert sorted(int(r.id) for r in pulled) == sorted(r["id"] for r in seeded)
    assert all(r.problem is None for r in pulled)
    assert {r.id for r in pulled if r.customer and not r.customer.active} == inactive
    assert 0 < len(inactive) < 250
    assert all(r.customer is not None and r.customer.postal_code is None for r in pulled)
    lists = [r for r in emu.requests if r.path == "/api/customers"]
    assert len(lists) == 2  # one page per listing: 10 calls a minute per route go far
    assert all("pageSize=1000" in r.query and "stringifiedFilterRoles" not in r.query for r in lists)
    assert [parse_qs(r.query)["inactiveMode"] for r in lists] == [["false"], ["true"]]


async def test_given_no_customers_when_paged_then_empty_pages_end(
    books: BigcapitalConnector,
) -> None:
    assert await pull_all(books) == []


@pytest.mark.parametrize("kind", ["company", "individual"])
async def test_given_customer_when_created_then_the_raw_answer_maps_without_a_read_back(
    emu: BigcapitalEmulator, books: BigcapitalConnector, recorder: Recorder, kind: str
) -> None:
    original = a_customer(kind=kind)

    created = await books.create(books.shape(original), "thredfi:biz:1")

    assert created.existed is False
    assert created.remote.customer == books.shape(original)
    assert [(r.method, r.url.path) for r in recorder.sent[1:]] == [("POST", "/api/customers")]
    fetched = await books.get(created.remote.id)
    assert fetched.customer == books.shape(original)
    stored = emu.records[created.remote.id]
    assert stored["billing_address_postcode"] is None
    assert stored["billing_address_country"] == "United Kingdom"
    assert stored["contact_type"] == ("business" if kind == "company" else "individual")
    assert stored["created_at"] is None
    assert emu.server_errors() == []


async def test_given_existing_customer_when_updated_then_put_carries_type_and_name_and_answer_maps(
    emu: BigcapitalEmulator, books: BigcapitalConnector, recorder: Recorder
) -> None:
    created = await books.create(books.shape(a_customer()), "x:1")
    changed = books.shape(a_customer(name="Zürich Tools Group", postal_code="LS2 7EY", email=None, website=None))

    answered = await books.update(created.remote.id, changed, "x:1")

    (put,) = recorder.bodies("PUT")
    assert put["customerType"] == "business"
    assert put["displayName"] == "Zürich Tools Group"
    assert put["email"] is None
    assert put["website"] is None
    assert not any(key.lower().endswith(("zipcode", "postcode")) for key in put)
    assert answered is not None
    assert answered.customer == changed  # the raw row the PUT answers
    fetched = await books.get(created.remote.id)
    assert fetched.customer == changed
    assert emu.records[created.remote.id]["email"] is None
    assert emu.server_errors() == []


async def test_given_active_customer_when_inactivated_twice_and_activated_twice_then_idempotent(
    emu: BigcapitalEmulator, books: BigcapitalConnector
) -> None:
    (record,) = emu.seed([{"displayName": "Hooli Inc."}])
    remote_id = str(record["id"])

    await books.set_active(remote_id, False)
    await books.set_active(remote_id, False)  # 400 CONTACT_ALREADY_INACTIVE: success
    assert emu.records[remote_id]["active"] == 0
    assert [r.id for r in await pull_all(books) if r.customer and not r.customer.active] == [remote_id]

    await books.set_active(remote_id, True)
    await books.set_active(remote_id, True)  # 400 CONTACT_ALREADY_ACTIVE: success
    assert emu.records[remote_id]["active"] == 1
    statuses = [r.status for r in emu.requests if r.method == "PATCH"]
    assert statuses == [200, 400, 200, 400]


async def test_given_lost_answer_when_inactivate_retried_then_already_inactive_is_success(
    emu: BigcapitalEmulator, books: BigcapitalConnector
) -> None:
    (record,) = emu.seed([{"displayName": "Hooli Inc."}])
    emu.faults.add("error_after", method="PATCH", path="/inactivate")

    await books.set_active(str(record["id"]), False)

    assert record["active"] == 0
    assert [r.status for r in emu.requests if r.method == "PATCH"] == [500, 400]


async def test_given_other_business_error_when_activated_then_rejected(
    emu: BigcapitalEmulator, books: BigcapitalConnector
) -> None:
    inner = httpx.ASGITransport(app=emu.app)

    async def refuse(request: httpx.Request) -> httpx.Response:
        if request.method == "PATCH":
            error = {"statusCode": 400, "type": "CONTACT_LOCKED", "message": None}
            return httpx.Response(400, json={"errors": [error]})
        return await inner.handle_async_request(request)

    async with BigcapitalConnector("books", settings(), transport=httpx.MockTransport(refuse)) as connector:
        with pytest.raises(RejectedError, match="CONTACT_LOCKED"):
            await connector.set_active("1", False)


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
    assert "not-an-email" not in str(caught.value)  # class-validator echoes the body: never copied
    assert emu.records == {}


async def test_given_emoji_name_sent_anyway_when_created_then_the_emulator_answers_500_as_recorded(
    emu: BigcapitalEmulator, books: BigcapitalConnector
) -> None:
    # What problems() exists to prevent: the engine never sends this.
    with pytest.raises(RetriableError, match="HTTP 500"):
        await books.create(a_customer(name="Café 😀 Ltd"), "x:1")

    assert emu.server_errors() == [500]  # a create that may have reached the server is not resent
    assert emu.records == {}


async def test_given_wrong_key_when_opened_then_auth_error_without_the_key(
    emu: BigcapitalEmulator,
) -> None:
    wrong = "bc_" + "0" * 96
    transport = httpx.ASGITransport(app=emu.app)
    with pytest.raises(AuthError) as caught:
        async with BigcapitalConnector("books", settings(api_key=wrong), transport=transport):
            pass

    assert wrong not in str(caught.value)
    assert len(emu.requests) == 1  # a refusal of credentials is not retried


async def test_given_api_key_with_any_organization_header_then_accepted_as_recorded(
    emu: BigcapitalEmulator, recorder: Recorder
) -> None:
    emu.seed([{"displayName": "Hooli Inc."}])
    other = settings(organization_id="someone-else")  # the key fixes the tenant; the header is ignored
    async with BigcapitalConnector("books", other, transport=recorder) as connector:
        assert len(await pull_all(connector)) == 1
        assert connector.tenant == "someone-else"  # what the config says, never asked
    assert recorder.sent[0].headers["organization-id"] == "someone-else"
    assert all(r.url.path != "/api/organization/current" for r in recorder.sent)


async def test_given_jwt_when_organization_configured_then_accepted_else_auth_error(
    emu: BigcapitalEmulator, recorder: Recorder
) -> None:
    emu.seed([{"displayName": "Hooli Inc."}])
    session = settings(api_key=SANDBOX_JWT, organization_id=SANDBOX_ORGANIZATION_ID)
    async with BigcapitalConnector("books", session, transport=recorder) as connector:
        assert len(await pull_all(connector)) == 1

    with pytest.raises(AuthError, match="HTTP 401"):
        async with BigcapitalConnector("books", settings(api_key=SANDBOX_JWT), transport=recorder):
            pass  # 401 "Organization ID is required." from the organization call


async def test_given_rate_limit_with_retry_after_when_listing_then_retried(
    emu: BigcapitalEmulator, books: BigcapitalConnector
) -> None:
    emu.seed([{"displayName": "Hooli Inc."}])
    rule = emu.faults.add("rate_limit", method="GET", path="/api/customers$", retry_after=1, times=2)

    pulled = await pull_all(books)

    assert len(pulled) == 1
    assert rule.fired == 2
    assert [r.status for r in emu.requests if r.path == "/api/customers"][:3] == [429, 429, 200]


async def test_given_server_error_when_fetching_then_retried(
    emu: BigcapitalEmulator, books: BigcapitalConnector
) -> None:
    (record,) = emu.seed([{"displayName": "Hooli Inc."}])
    emu.faults.add("error_before", method="GET", status=503)

    fetched = await books.get(str(record["id"]))

    assert fetched.customer is not None
    assert [r.status for r in emu.requests][1:] == [503, 200]


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


async def test_given_delete_when_called_then_record_gone(emu: BigcapitalEmulator, books: BigcapitalConnector) -> None:
    (record,) = emu.seed([{"displayName": "Hooli Inc."}])

    await books.delete(str(record["id"]))

    assert emu.records == {}
    assert await books.find_by_external_id("x:1") is None  # no identity slot


async def test_given_customer_with_transactions_when_deleted_then_rejected(
    emu: BigcapitalEmulator, books: BigcapitalConnector
) -> None:
    (record,) = emu.seed([{"displayName": "Hooli Inc."}])
    emu.undeletable.add(str(record["id"]))

    with pytest.raises(RejectedError, match="CUSTOMER_HAS_TRANSACTIONS"):
        await books.delete(str(record["id"]))

    assert str(record["id"]) in emu.records


async def test_given_a_run_with_failures_when_logs_captured_then_no_secret_appears(
    emu: BigcapitalEmulator, recorder: Recorder
) -> None:
    emu.seed_fake(5)
    emu.faults.add("error_before", method="GET", path="/api/customers$", times=1)
    emu.faults.add("rate_limit", method="GET", path="/api/customers$", retry_after=1, times=1)
    errors: list[str] = []
    with capture_logs() as logs:
        async with BigcapitalConnector("books", settings(), transport=recorder) as connector:
            await pull_all(connector)
            try:
                await connector.create(a_customer(email="bad"), "x:1")
            except RejectedError as exc:
                errors.append(str(exc))
        try:
            async with BigcapitalConnector("books", settings(api_key="bc_" + "1" * 96), transport=recorder):
                pass
        except AuthError as exc:
            errors.append(str(exc))

    text = repr(logs) + repr(errors) + repr(settings())
    assert len(errors) == 2
    assert SANDBOX_API_KEY not in text
    assert "1" * 96 not in text
    assert recorder.sent[0].headers["Authorization"] == f"Bearer {SANDBOX_API_KEY}"


def test_given_raw_row_keys_then_the_fixture_row_matches_the_emulator_row() -> None:
    # The mapping tests above use rows of the recorded shape, not an invented one.
    assert set(a_raw_row()) <= set(ROW_KEYS)
