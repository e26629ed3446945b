"""Thredfi connector: mapping rules, then real HTTP against the in-process emulator."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import stamina
from structlog.testing import capture_logs

from connectors.base import Connector
from connectors.errors import AuthError, NotFoundError, RejectedError
from connectors.model import Customer, RemoteCustomer
from connectors.thredfi import ThredfiConnector, ThredfiSettings
from sandbox.thredfi import (
    FOREIGN_BUSINESS_ID,
    SANDBOX_API_KEY,
    SANDBOX_BUSINESS_ID,
    SANDBOX_PARTNER_UUID,
    ThredfiEmulator,
)

BASE_URL = "http://thredfi.test"
TOKEN_PATH = "/v1/platform/oauth2/token/"
BUSINESS_TOKEN_PATH = f"/v1/platform/{SANDBOX_BUSINESS_ID}/oauth2/token/"
CUSTOMERS = f"/v1/platform/businesses/{SANDBOX_BUSINESS_ID}/customers/"


def settings(**changes: Any) -> ThredfiSettings:
    values: dict[str, Any] = {
        "system": "thredfi",
        "base_url": BASE_URL,
        "partner_uuid": SANDBOX_PARTNER_UUID,
        "api_key": SANDBOX_API_KEY,
        "business_id": SANDBOX_BUSINESS_ID,
        **changes,
    }
    return ThredfiSettings(**values)


def a_customer(**changes: Any) -> Customer:
    values: dict[str, Any] = {
        "kind": "company",
        "name": "Ñandú Logística SpA",
        "company_name": "Ñandú Logística",
        "email": "pagos@nandu.example.cl",
        "phone": "+56221234567",
        "mobile": "+56912345678",
        "website": "https://nandu.example.cl",
        "address_line1": "Calle Moneda 975",
        "address_line2": "Of. 12",
        "city": "Santiago",
        "state": "Región Metropolitana de Santiago",
        "postal_code": "8320000",
        "country": "CL",
        "tax_id": "76.543.210-K",
        "tax_system": "601",
        "invoice_use": "G03",
        "currency": "CLP",
        "notes": "Cliente desde 2019 ☕",
        **changes,
    }
    return Customer(**values)


def a_person(**changes: Any) -> Customer:
    return a_customer(kind="individual", name="María José García", company_name=None, **changes)


def a_record(**changes: Any) -> dict[str, Any]:
    """A customer as Thredfi returns it."""
    return {
        "type": "CustomerData",
        "id": "0f8b3c1e-5d6a-4b7c-8d9e-0a1b2c3d4e5f",
        "external_id": "bigcapital:org:7",
        "reference_number": "",
        "individual_name": "",
        "company_name": " Stark Ltd ",
        "display_name": "Stark Ltd",
        "email": "ap@stark.example.co.uk",
        "mobile_phone": "",
        "office_phone": "+442071234567",
        "address_line1": "1 High Street",
        "address_line2": "",
        "city": "London",
        "state_county": "England",
        "postal_code": "EC1A 1BB",
        "country": "GB",
        "vat_number": "GB123456789",
        "notes": "",
        "status": "ACTIVE",
        "is_active": True,
        "is_archived": False,
        "created_at": "2024-01-02T03:04:05Z",
        "updated_at": "2024-02-03T04:05:06Z",
        **changes,
    }


class FakeClock:
    """Monotonic seconds the test moves by hand, shared by emulator and connector."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Recorder(httpx.AsyncBaseTransport):
    """The emulator's transport, keeping every request the connector sent."""

    def __init__(self, emu: ThredfiEmulator) -> None:
        self.inner = httpx.ASGITransport(app=emu.app)
        self.sent: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        return await self.inner.handle_async_request(request)


@pytest.fixture(autouse=True)
def fast_retries() -> Iterator[None]:
    with stamina.set_testing(True, attempts=3):
        yield


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def emu(clock: FakeClock) -> ThredfiEmulator:
    return ThredfiEmulator(token_ttl_s=100, clock=clock)


@pytest.fixture
def recorder(emu: ThredfiEmulator) -> Recorder:
    return Recorder(emu)


@pytest.fixture
async def ledger(recorder: Recorder, clock: FakeClock) -> AsyncIterator[ThredfiConnector]:
    connector = ThredfiConnector("ledger", settings(), transport=recorder, clock=clock)
    async with connector:
        yield connector


@pytest.fixture
async def partner_ledger(emu: ThredfiEmulator, recorder: Recorder, clock: FakeClock) -> AsyncIterator[ThredfiConnector]:
    """The partner-token mode, against a server that takes the endpoint pages' reading."""
    emu.require_business_token = False
    connector = ThredfiConnector("ledger", settings(use_business_token=False), transport=recorder, clock=clock)
    async with connector:
        yield connector


async def pull_all(connector: Connector) -> list[RemoteCustomer]:
    return [remote async for page in connector.pages() for remote in page]


def token_requests(emu: ThredfiEmulator) -> list[str]:
    return [r.path for r in emu.requests if r.path.endswith("/oauth2/token/")]


def customer_statuses(emu: ThredfiEmulator) -> list[int]:
    return [r.status for r in emu.requests if "/customers/" in r.path]


# -- mapping, no HTTP ----------------------------------------------------------


def test_given_company_record_when_mapped_then_every_field_lands_in_canonical() -> None:
    connector = ThredfiConnector("ledger", settings())

    remote = connector.read(a_record())

    assert remote.id == "0f8b3c1e-5d6a-4b7c-8d9e-0a1b2c3d4e5f"
    assert remote.external_id == "bigcapital:org:7"
    assert remote.updated_at is not None
    assert remote.customer == Customer(
        kind="company",
        name="Stark Ltd",
        company_name="Stark Ltd",
        email="ap@stark.example.co.uk",
        phone="+442071234567",
        address_line1="1 High Street",
        city="London",
        state="England",
        postal_code="EC1A 1BB",
        country="GB",
        tax_id="GB123456789",
        active=True,
    )


def test_given_person_record_when_mapped_then_individual_with_derived_name_parts() -> None:
    raw = a_record(company_name="", individual_name="María José García", mobile_phone="+569123")

    customer = ThredfiConnector("ledger", settings()).to_canonical(raw)

    assert customer.kind == "individual"
    assert customer.name == "María José García"
    assert (customer.first_name, customer.last_name) == ("María", "José García")
    assert customer.company_name is None
    assert customer.mobile == "+569123"


@pytest.mark.parametrize(
    ("changes", "active"),
    [
        ({"status": "ARCHIVED", "is_archived": True}, False),
        ({"status": "archived"}, False),
        ({"status": None, "is_archived": True}, False),
        ({"status": None, "is_archived": False}, True),
        ({"status": "ACTIVE"}, True),
    ],
)
def test_given_status_when_mapped_then_archived_is_inactive(changes: dict[str, Any], active: bool) -> None:
    assert ThredfiConnector("ledger", settings()).to_canonical(a_record(**changes)).active is active


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"country": "Narnia"}, "country"),
        ({"company_name": "", "individual_name": None, "display_name": ""}, "name"),
    ],
)
def test_given_unmappable_record_when_read_then_problem_names_canonical_field(
    changes: dict[str, Any], field: str
) -> None:
    remote = ThredfiConnector("ledger", settings()).read(a_record(**changes))

    assert remote.customer is None
    assert remote.problem is not None
    assert remote.problem.field == field


def test_given_lowercase_country_when_read_then_normalised() -> None:
    customer = ThredfiConnector("ledger", settings()).to_canonical(a_record(country="gb"))

    assert customer.country == "GB"


def test_given_company_when_create_payload_then_identity_and_no_status_or_nulls() -> None:
    body = ThredfiConnector("ledger", settings()).to_payload(
        a_customer(address_line2=None), "bigcapital:org:7", create=True
    )

    assert body == {
        "external_id": "bigcapital:org:7",
        "company_name": "Ñandú Logística SpA",
        "email": "pagos@nandu.example.cl",
        "office_phone": "+56221234567",
        "mobile_phone": "+56912345678",
        "address_line1": "Calle Moneda 975",
        "city": "Santiago",
        "state_county": "Región Metropolitana de Santiago",
        "postal_code": "8320000",
        "country": "CL",
        "vat_number": "76.543.210-K",
        "notes": "Cliente desde 2019 ☕",
    }


def test_given_person_when_update_payload_then_every_kept_field_sent_nulls_clear() -> None:
    body = ThredfiConnector("ledger", settings()).to_payload(a_person(email=None), "bigcapital:org:7", create=False)

    assert body["individual_name"] == "María José García"
    assert body["company_name"] is None
    assert body["email"] is None
    assert "external_id" not in body
    assert "status" not in body
    assert set(body) == {
        "company_name", "individual_name", "email", "office_phone", "mobile_phone",
        "address_line1", "address_line2", "city", "state_county", "postal_code",
        "country", "vat_number", "notes",
    }  # fmt: skip


def test_given_customers_when_shaped_then_one_name_field_and_unkept_fields_dropped() -> None:
    connector = ThredfiConnector("ledger", settings())

    company = connector.shape(a_customer(first_name="Ana", last_name="Núñez"))
    person = connector.shape(a_person(first_name="Ana", last_name="Núñez"))

    assert (company.company_name, company.first_name, company.last_name) == (
        "Ñandú Logística SpA", None, None,
    )  # fmt: skip
    assert (person.company_name, person.first_name, person.last_name) == (
        None, "María", "José García",
    )  # fmt: skip
    for shaped in (company, person):
        assert (shaped.website, shaped.currency, shaped.tax_system, shaped.invoice_use) == (
            None, None, None, None,
        )  # fmt: skip
    assert {"first_name", "last_name", "website", "currency"}.isdisjoint(connector.spec.fields)
    assert connector.spec.identity_slot is True


def test_given_long_or_malformed_values_when_checked_then_problems_name_fields() -> None:
    connector = ThredfiConnector("ledger", settings())

    problems = connector.problems(connector.shape(a_customer(city="c" * 256, country="Chile")))
    truncated = connector.shape(a_customer(name="n" * 300, notes="x" * 5000), truncate=True)

    assert [p.field for p in problems] == ["city", "country"]
    assert truncated.name == truncated.company_name == "n" * 255
    assert connector.problems(truncated) == []


def test_given_settings_when_identity_asked_then_business_is_tenant() -> None:
    connector = ThredfiConnector("ledger", settings())

    assert connector.tenant == SANDBOX_BUSINESS_ID
    assert connector.external_id_for("abc") == f"thredfi:{SANDBOX_BUSINESS_ID}:abc"
    assert connector.record_path("abc") == f"{CUSTOMERS}abc/"
    assert connector.vendor_fields["vat_number"] == "tax_id"
    assert connector.vendor_fields["state_county"] == "state"
    assert connector.vendor_fields["company_name"] == "name"
    assert SANDBOX_API_KEY not in repr(settings())


# -- real HTTP against the emulator ----------------------------------------------


async def test_given_250_customers_some_archived_when_paged_then_all_read_once(
    emu: ThredfiEmulator, ledger: ThredfiConnector
) -> None:
    seeded = emu.seed_fake(250)
    archived = {r["id"] for r in seeded if r["is_archived"]}

    pulled = await pull_all(ledger)

    assert sorted(r.id for r in pulled) == sorted(r["id"] for r in seeded)
    assert len({r.id for r in pulled}) == 250
    assert all(r.problem is None for r in pulled)
    assert {r.id for r in pulled if r.customer and not r.customer.active} == archived
    assert archived
    lists = [r for r in emu.requests if r.path == CUSTOMERS]
    assert len(lists) == 3
    assert all("include_archived=true" in r.query and "page_size=100" in r.query for r in lists)
    assert token_requests(emu) == [TOKEN_PATH, BUSINESS_TOKEN_PATH]  # one of each for the whole pull


@pytest.mark.parametrize("original", [a_customer(), a_person()], ids=["company", "individual"])
async def test_given_customer_when_created_and_read_back_then_round_trip_equals_shape(
    ledger: ThredfiConnector, original: Customer
) -> None:
    created = await ledger.create(original, "bigcapital:org:1")
    fetched = await ledger.get(created.remote.id)

    assert created.existed is False
    assert created.remote.external_id == "bigcapital:org:1"
    assert created.remote.customer == ledger.shape(original)
    assert fetched.customer == ledger.shape(original)


async def test_given_same_external_id_when_created_twice_then_existing_returned(
    emu: ThredfiEmulator, ledger: ThredfiConnector
) -> None:
    first = await ledger.create(a_customer(), "bigcapital:org:1")
    again = await ledger.create(a_customer(name="Changed SpA"), "bigcapital:org:1")

    assert again.existed is True
    assert again.remote.id == first.remote.id
    assert len(emu.records) == 1


async def test_given_duplicate_conflict_when_created_then_holder_adopted(
    emu: ThredfiEmulator, ledger: ThredfiConnector
) -> None:
    (holder,) = emu.seed([{"company_name": "Stark Ltd", "external_id": "bigcapital:org:1"}])
    emu.faults.add("error_before", method="POST", path="/customers/$", status=409)

    result = await ledger.create(a_customer(), "bigcapital:org:1")

    assert result.existed is True
    assert result.remote.id == holder["id"]
    assert len(emu.records) == 1


async def test_given_conflict_without_holder_when_created_then_rejected(
    emu: ThredfiEmulator, ledger: ThredfiConnector
) -> None:
    emu.faults.add("error_before", method="POST", path="/customers/$", status=409)

    with pytest.raises(RejectedError, match="HTTP 409"):
        await ledger.create(a_customer(), "bigcapital:org:1")


async def test_given_server_error_after_create_applied_then_retry_finds_same_record(
    emu: ThredfiEmulator, ledger: ThredfiConnector
) -> None:
    emu.faults.add("error_after", method="POST", path="/customers/$")

    result = await ledger.create(a_customer(), "bigcapital:org:1")

    # external_id makes the create idempotent, so it is retried safely.
    assert result.existed is True
    assert len(emu.records) == 1
    assert [w.status for w in emu.writes()] == [500, 200]


async def test_given_customer_when_updated_then_patch_sends_every_field_and_clears(
    emu: ThredfiEmulator, ledger: ThredfiConnector, recorder: Recorder
) -> None:
    created = await ledger.create(a_customer(), "bigcapital:org:1")
    changed = a_person(email=None, notes=None, postal_code="7500000")

    await ledger.update(created.remote.id, changed, "bigcapital:org:1")

    (patch,) = [r for r in recorder.sent if r.method == "PATCH"]
    assert json.loads(patch.content)["company_name"] is None
    fetched = await ledger.get(created.remote.id)
    assert fetched.customer == ledger.shape(changed)
    assert fetched.external_id == "bigcapital:org:1"  # untouched by the update


async def test_given_customer_when_archived_and_unarchived_then_state_follows(
    emu: ThredfiEmulator, ledger: ThredfiConnector
) -> None:
    created = await ledger.create(a_customer(), "bigcapital:org:1")
    remote_id = created.remote.id

    await ledger.set_active(remote_id, False)
    await ledger.set_active(remote_id, False)  # archiving twice is harmless
    archived = await ledger.get(remote_id)
    found = await ledger.find_by_external_id("bigcapital:org:1")
    await ledger.set_active(remote_id, True)
    restored = await ledger.get(remote_id)

    assert archived.customer is not None
    assert archived.customer.active is False
    assert found is not None
    assert [r.id for r in found] == [remote_id]  # archived ones are found too
    assert restored.customer is not None
    assert restored.customer.active is True
    assert emu.records[remote_id]["status"] == "ACTIVE"


async def test_given_external_ids_when_searched_then_exact_matches_only(
    emu: ThredfiEmulator, ledger: ThredfiConnector
) -> None:
    emu.seed(
        [
            {"company_name": "A", "external_id": "b:1:1"},
            {"company_name": "B", "external_id": "b:1:10"},
        ]
    )

    found = await ledger.find_by_external_id("b:1:1")
    missing = await ledger.find_by_external_id("b:1:2")

    assert found is not None
    assert [r.external_id for r in found] == ["b:1:1"]
    assert missing == []


async def test_given_invalid_country_when_created_then_refusal_names_country(
    emu: ThredfiEmulator, ledger: ThredfiConnector
) -> None:
    with pytest.raises(RejectedError) as caught:
        await ledger.create(a_customer(country="XX"), "bigcapital:org:1")

    assert caught.value.field == "country"
    assert emu.records == {}


async def test_given_missing_customer_when_fetched_then_not_found(
    ledger: ThredfiConnector,
) -> None:
    with pytest.raises(NotFoundError, match="HTTP 404"):
        await ledger.get("00000000-0000-4000-8000-000000000000")


async def test_given_token_when_it_nears_expiry_then_renewed_before_it_fails(
    emu: ThredfiEmulator, partner_ledger: ThredfiConnector, clock: FakeClock
) -> None:
    ledger = partner_ledger
    await pull_all(ledger)
    await pull_all(ledger)
    assert len(token_requests(emu)) == 1

    clock.now += 80  # past the renewal margin, before the server's expiry
    await pull_all(ledger)
    clock.now += 40  # past the first token's expiry: the second one is still good
    await pull_all(ledger)

    assert len(token_requests(emu)) == 2
    assert 401 not in customer_statuses(emu)


async def test_given_token_forgotten_by_server_when_requesting_then_renewed_once(
    emu: ThredfiEmulator, partner_ledger: ThredfiConnector
) -> None:
    ledger = partner_ledger
    await pull_all(ledger)
    emu.tokens.clear()  # a restart or revocation on the server side

    await pull_all(ledger)

    assert len(token_requests(emu)) == 2
    assert customer_statuses(emu) == [200, 401, 200]


async def test_given_wrong_partner_key_when_listing_then_auth_error_without_secret(
    emu: ThredfiEmulator, clock: FakeClock
) -> None:
    wrong = "thred_sk_wrong_0123456789abcdef"
    transport = httpx.ASGITransport(app=emu.app)
    connector = ThredfiConnector("ledger", settings(api_key=wrong), transport=transport)
    async with connector:
        with pytest.raises(AuthError) as caught:
            await connector.check()

    assert wrong not in str(caught.value)
    assert customer_statuses(emu) == []


async def test_given_foreign_business_when_listing_then_auth_error(emu: ThredfiEmulator) -> None:
    transport = httpx.ASGITransport(app=emu.app)
    foreign = settings(business_id=FOREIGN_BUSINESS_ID)
    async with ThredfiConnector("ledger", foreign, transport=transport) as connector:
        with pytest.raises(AuthError, match="403"):  # the business token is refused
            await connector.check()


async def test_given_partner_token_mode_when_the_server_needs_a_business_token_then_auth_error(
    emu: ThredfiEmulator,
) -> None:
    """The strict reading of the auth guide: why ``use_business_token`` defaults to true."""
    transport = httpx.ASGITransport(app=emu.app)
    async with ThredfiConnector("ledger", settings(use_business_token=False), transport=transport) as connector:
        with pytest.raises(AuthError, match="HTTP 403"):
            await connector.check()
    assert customer_statuses(emu) == [403]


async def test_given_server_answers_409_for_a_repeated_external_id_when_created_twice_then_holder_adopted(
    emu: ThredfiEmulator, ledger: ThredfiConnector
) -> None:
    emu.duplicate_external_id = "conflict"  # the error guide's reading, instead of the 200 replay
    first = await ledger.create(a_customer(), "bigcapital:org:9")

    again = await ledger.create(a_customer(name="Renamed SpA"), "bigcapital:org:9")

    assert (again.existed, again.remote.id) == (True, first.remote.id)
    assert len(emu.records) == 1


async def test_given_server_capping_pages_below_what_we_ask_when_paged_then_every_record_once(
    emu: ThredfiEmulator, ledger: ThredfiConnector
) -> None:
    emu.max_page_size = 7  # the maximum is not documented: a smaller cap must not lose records
    seeded = emu.seed_fake(30)

    pulled = await pull_all(ledger)

    assert sorted(r.id for r in pulled) == sorted(r["id"] for r in seeded)
    assert ledger.scan.complete


async def test_given_business_token_mode_when_listing_then_business_token_used_and_renewed(
    emu: ThredfiEmulator, recorder: Recorder, clock: FakeClock
) -> None:
    emu.seed_fake(3)
    connector = ThredfiConnector("ledger", settings(use_business_token=True), transport=recorder, clock=clock)
    async with connector:
        assert len(await pull_all(connector)) == 3
        assert token_requests(emu) == [TOKEN_PATH, BUSINESS_TOKEN_PATH]
        (business,) = [t for t in emu.tokens.values() if t.business_id]
        clock.now += 90  # both tokens near expiry
        await pull_all(connector)
        emu.tokens.clear()  # the server forgets both: each 401 renews its own token
        await pull_all(connector)

    assert token_requests(emu) == [TOKEN_PATH, BUSINESS_TOKEN_PATH] * 2 + [
        BUSINESS_TOKEN_PATH, TOKEN_PATH, BUSINESS_TOKEN_PATH,
    ]  # fmt: skip
    business_calls = [r.status for r in emu.requests if r.path == BUSINESS_TOKEN_PATH]
    assert business_calls == [200, 200, 401, 200]
    assert business.business_id == SANDBOX_BUSINESS_ID
    assert customer_statuses(emu) == [200, 200, 401, 200]
    customer_calls = [r for r in recorder.sent if "/customers/" in r.url.path]
    partner_tokens = {r.headers.get("Authorization") for r in recorder.sent if
                      r.url.path == BUSINESS_TOKEN_PATH}  # fmt: skip
    assert not partner_tokens & {r.headers["Authorization"] for r in customer_calls}


async def test_given_rate_limit_with_retry_after_when_listing_then_retried(
    emu: ThredfiEmulator, ledger: ThredfiConnector
) -> None:
    emu.seed_fake(2)
    rule = emu.faults.add("rate_limit", method="GET", path="/customers/", retry_after=2, times=2)

    assert len(await pull_all(ledger)) == 2
    assert rule.fired == 2
    assert customer_statuses(emu) == [429, 429, 200]


async def test_given_server_error_when_listing_then_retried(emu: ThredfiEmulator, ledger: ThredfiConnector) -> None:
    emu.seed_fake(2)
    emu.faults.add("error_before", method="GET", path="/customers/", status=502)

    assert len(await pull_all(ledger)) == 2
    assert customer_statuses(emu) == [502, 200]


async def test_given_a_run_with_failures_when_logs_captured_then_no_secret_appears(
    emu: ThredfiEmulator, recorder: Recorder, clock: FakeClock
) -> None:
    emu.seed_fake(3)
    emu.faults.add("error_before", method="GET", path="/customers/", times=1)
    errors: list[str] = []
    with capture_logs() as logs:
        connector = ThredfiConnector("ledger", settings(), transport=recorder, clock=clock)
        async with connector:
            await pull_all(connector)
            emu.tokens.clear()
            await pull_all(connector)
            try:
                await connector.create(a_customer(country="XX"), "b:1:1")
            except RejectedError as exc:
                errors.append(str(exc))
        bad = ThredfiConnector("ledger", settings(api_key="thred_sk_nope"), transport=recorder)
        async with bad:
            try:
                await bad.check()
            except AuthError as exc:
                errors.append(str(exc))

    issued = [r.headers["Authorization"].removeprefix("Bearer ") for r in recorder.sent
              if r.headers.get("Authorization", "").startswith("Bearer ")]  # fmt: skip
    text = repr(logs) + repr(errors)
    assert len(errors) == 2
    assert issued
    assert not [token for token in issued if token in text]
    assert SANDBOX_API_KEY not in text
    assert "thred_sk_nope" not in text


async def test_given_business_token_request_dropped_when_listing_then_retried_not_locked(
    emu: ThredfiEmulator, recorder: Recorder, clock: FakeClock
) -> None:
    emu.seed_fake(2)
    emu.faults.add("drop", method="POST", path=BUSINESS_TOKEN_PATH)
    connector = ThredfiConnector(
        "ledger", settings(use_business_token=True, timeout_s=7), transport=recorder, clock=clock
    )
    async with connector:
        pulled = await asyncio.wait_for(pull_all(connector), timeout=5)

    assert len(pulled) == 2
    assert customer_statuses(emu) == [200]
    token_calls = [r for r in recorder.sent if r.url.path.endswith("/oauth2/token/")]
    assert all(r.extensions["timeout"]["read"] == 7 for r in token_calls)


def test_given_identity_slot_when_declared_then_create_answers_existing_records() -> None:
    assert ThredfiConnector.create_is_idempotent is True
    assert ThredfiConnector.update_method == "PATCH"
