"""Piriod connector: mapping rules, then real HTTP against the in-process emulator."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import date
from typing import Any

import httpx
import pytest
import stamina
from structlog.testing import capture_logs

from connectors.base import FieldMappingError
from connectors.errors import AuthError, NotFoundError, RejectedError, RetriableError
from connectors.model import Customer
from connectors.pagination import NextLinkPaginator
from connectors.piriod import PiriodConnector, PiriodSettings
from sandbox.piriod import SANDBOX_API_TOKEN, SANDBOX_WORKSPACE, STATES, PiriodEmulator

BASE_URL = "http://piriod.test"


def settings(**changes: Any) -> PiriodSettings:
    values: dict[str, Any] = {
        "system": "piriod",
        "base_url": BASE_URL,
        "api_token": SANDBOX_API_TOKEN,
        "workspace": SANDBOX_WORKSPACE,
        "test_mode": True,
        **changes,
    }
    return PiriodSettings(**values)


def a_customer(**changes: Any) -> Customer:
    values: dict[str, Any] = {
        "name": "Señor Café SpA",
        "email": "pagos@senorcafe.cl",
        "phone": "+56912345678",
        "website": "https://senorcafe.cl",
        "address_line1": "Av. Providencia 1234",
        "state": "Región Metropolitana de Santiago",
        "postal_code": "7500000",
        "country": "CL",
        "tax_id": "76.123.456-7",
        "currency": "CLP",
        "notes": "Cliente desde 2019 ☕",
        **changes,
    }
    return Customer(**values)


@pytest.fixture(autouse=True)
def fast_retries() -> Iterator[None]:
    with stamina.set_testing(True, attempts=3):
        yield


@pytest.fixture
def emu() -> PiriodEmulator:
    return PiriodEmulator()


@pytest.fixture
async def piriod(emu: PiriodEmulator) -> AsyncIterator[PiriodConnector]:
    connector = PiriodConnector("billing", settings(), transport=httpx.ASGITransport(app=emu.app))
    async with connector:
        yield connector


# -- mapping, no HTTP ----------------------------------------------------------


def test_given_read_shape_when_mapped_then_objects_become_codes_and_names() -> None:
    raw = {
        "id": "cus_1",
        "name": " Ñandú Logística SpA ",
        "address": "Calle Moneda 975, Of. 12",
        "country": {"id": "CL", "name": "Chile", "code": "+56", "has_regulation": True},
        "state": {"id": 7, "name": "Región Metropolitana de Santiago", "country": "CL"},
        "zip_code": "8320000",
        "email": "",
        "currency": "CLP",
        "tax_id": "76.543.210-K",
        "status": "pending",
        "metadata": {"external_id": "thredfi:biz:42", "notes": "VIP"},
        "reference": "thredfi:biz:42",
    }
    connector = PiriodConnector("billing", settings())

    customer = connector.to_canonical(raw)

    assert customer == Customer(
        kind="company",
        name="Ñandú Logística SpA",
        address_line1="Calle Moneda 975, Of. 12",
        state="Región Metropolitana de Santiago",
        postal_code="8320000",
        country="CL",
        currency="CLP",
        tax_id="76.543.210-K",
        notes="VIP",
        active=True,  # pending still counts as active
    )
    assert connector.external_id_of(raw) == "thredfi:biz:42"
    assert connector.to_canonical({**raw, "status": "archived"}).active is False


def test_given_only_a_reference_when_identity_read_then_reference_is_used() -> None:
    connector = PiriodConnector("billing", settings())

    assert connector.external_id_of({"reference": "bigcapital:org:2", "metadata": {}}) == "bigcapital:org:2"
    assert connector.external_id_of({"reference": None, "metadata": None}) is None


def test_given_a_users_own_reference_when_identity_read_then_it_is_not_an_identity() -> None:
    connector = PiriodConnector("billing", settings())

    assert connector.external_id_of({"reference": "PO-2024-118", "metadata": {}}) is None
    assert connector.external_id_of({"reference": "b:1:2", "metadata": {}}) is None


def test_given_record_without_name_when_read_then_problem_names_name() -> None:
    remote = PiriodConnector("billing", settings()).read({"id": "cus_1", "name": " "})

    assert remote.customer is None
    assert remote.problem is not None
    assert remote.problem.field == "name"


def test_given_two_address_lines_when_shaped_then_folded_into_one_and_city_dropped() -> None:
    connector = PiriodConnector("billing", settings())
    customer = a_customer(kind="individual", first_name="Ana", address_line2="Depto 5", city="Santiago")

    shaped = connector.shape(customer)

    assert shaped.address_line1 == "Av. Providencia 1234, Depto 5"
    assert (shaped.address_line2, shaped.city, shaped.first_name) == (None, None, None)
    assert shaped.kind == "individual"  # the base keeps kind; Piriod reads it back as company
    assert connector.shape(shaped) == shaped


def test_given_no_country_when_shaped_then_account_country_applies() -> None:
    shaped = PiriodConnector("billing", settings()).shape(a_customer(country=None))

    assert shaped.country == "CL"


def test_given_folded_address_over_64_when_checked_then_problem_names_address_line1() -> None:
    connector = PiriodConnector("billing", settings())
    customer = a_customer(
        address_line1="Avenida Libertador Bernardo O'Higgins 1449",
        address_line2="Torre B, Oficina 1203",
    )

    problems = connector.problems(connector.shape(customer))
    truncated = connector.shape(customer, truncate=True)

    assert [p.field for p in problems] == ["address_line1"]
    assert "64" in problems[0].reason
    assert truncated.address_line1 is not None
    assert len(truncated.address_line1) <= 64
    assert connector.problems(truncated) == []


def test_given_cl_account_when_cl_customer_lacks_tax_id_then_problem_names_tax_id() -> None:
    connector = PiriodConnector("billing", settings())

    problems = connector.problems(connector.shape(a_customer(tax_id=None)))

    assert [(p.field, p.reason) for p in problems] == [
        ("tax_id", "required by piriod for CL customers, missing in the source record")
    ]


@pytest.mark.parametrize(("account", "country"), [("CL", "US"), ("CL", "MX"), ("MX", "CL"), ("US", "US")])
def test_given_other_country_when_tax_id_missing_then_no_problem(account: str, country: str) -> None:
    connector = PiriodConnector("billing", settings(account_country=account))

    shaped = connector.shape(a_customer(tax_id=None, country=country, state=None))

    assert connector.problems(shaped) == []


def test_given_missing_name_and_address_when_checked_then_both_named() -> None:
    connector = PiriodConnector("billing", settings())

    problems = connector.problems(connector.shape(a_customer(name="", address_line1=None)))

    assert sorted(p.field for p in problems) == ["address_line1", "name"]
    assert all("piriod" in p.reason for p in problems)


def test_given_test_mode_when_tenant_asked_then_test_data_set_is_its_own_tenant() -> None:
    assert PiriodConnector("b", settings()).tenant == f"{SANDBOX_WORKSPACE}:test"
    assert PiriodConnector("b", settings(test_mode=False)).tenant == SANDBOX_WORKSPACE


def test_given_settings_when_printed_then_token_hidden() -> None:
    assert SANDBOX_API_TOKEN not in repr(settings())
    assert SANDBOX_API_TOKEN not in str(settings().model_dump())


# -- against the emulator ------------------------------------------------------


async def test_given_237_customers_when_pulled_then_every_page_followed(
    emu: PiriodEmulator, piriod: PiriodConnector
) -> None:
    emu.seed_fake(237)

    pages = [page async for page in piriod.pages()]

    records = [r for page in pages for r in page]
    assert [len(p) for p in pages] == [100, 100, 37]
    assert len({r.id for r in records}) == 237
    assert all(r.problem is None for r in records)
    assert sum(not r.customer.active for r in records if r.customer) > 0
    first = emu.requests[0]
    assert "ordering=created" in first.query
    assert "page_size=100" in first.query


async def test_given_since_when_pulled_then_only_records_created_on_or_after(
    emu: PiriodEmulator, piriod: PiriodConnector
) -> None:
    old, new = emu.seed(
        [
            {
                "name": "Old SpA",
                "address": "Calle 1",
                "tax_id": "1-9",
                "created": "2025-12-31T23:59:59Z",
            },
            {
                "name": "New SpA",
                "address": "Calle 2",
                "tax_id": "2-7",
                "created": "2026-01-01T00:00:00Z",
            },
        ]
    )
    piriod.since = date(2026, 1, 1)

    records = [r async for page in piriod.pages() for r in page]

    assert [r.id for r in records] == [new["id"]]
    assert "created__gte=2026-01-01" in emu.requests[0].query
    assert old["id"] in emu.records


@pytest.mark.parametrize(
    "customer",
    [
        a_customer(),
        a_customer(
            name="Zoë Müller-Łukasz 株式会社",
            country="GB",
            state="Wales",
            tax_id=None,
            currency="GBP",
        ),
        a_customer(email=None, phone=None, website=None, postal_code=None, state=None, notes=None),
        a_customer(country="MX", state="nuevo leon", tax_id=None, currency="MXN"),
    ],
    ids=["full", "unicode-foreign", "optional-missing", "state-accent-insensitive"],
)
async def test_given_canonical_when_created_then_read_back_as_shaped(
    piriod: PiriodConnector, customer: Customer
) -> None:
    created = await piriod.create(customer, "bigcapital:org:17")
    fetched = await piriod.get(created.remote.id)

    expected = piriod.shape(customer)
    if customer.state == "nuevo leon":  # matched by folded name, read back as Piriod spells it
        expected = expected.model_copy(update={"state": "Nuevo León"})
    assert fetched.customer == expected
    assert created.remote.customer == expected
    assert fetched.external_id == "bigcapital:org:17"
    assert created.existed is False


async def test_given_missing_currency_when_created_then_piriod_defaults_it_from_country(
    piriod: PiriodConnector,
) -> None:
    customer = a_customer(currency=None, country="MX", state="Jalisco", tax_id=None)
    created = await piriod.create(customer, "e:1")

    assert created.remote.customer is not None
    assert created.remote.customer.currency == "MXN"


async def test_given_existing_record_when_updated_then_fields_change_and_clear(
    emu: PiriodEmulator, piriod: PiriodConnector
) -> None:
    created = await piriod.create(a_customer(), "bigcapital:org:17")
    changed = a_customer(
        name="Señor Café Limitada",
        email=None,
        notes=None,
        state="Valparaíso",
        address_line1="Calle Esmeralda 1",
        address_line2="Local 3",
    )

    await piriod.update(created.remote.id, changed, "bigcapital:org:17")
    fetched = await piriod.get(created.remote.id)

    assert fetched.customer == piriod.shape(changed)
    assert emu.writes()[-1].method == "PATCH"
    assert emu.records[created.remote.id]["metadata"] == {"external_id": "bigcapital:org:17"}


async def test_given_states_of_a_country_when_writing_twice_then_catalog_fetched_once(
    emu: PiriodEmulator, piriod: PiriodConnector
) -> None:
    await piriod.create(a_customer(), "e:1")
    await piriod.create(a_customer(state="VALPARAISO"), "e:2")

    state_calls = [r for r in emu.requests if r.path == "/states/"]
    assert len(state_calls) == 1
    assert "country=CL" in state_calls[0].query
    ids = {r["state"]["id"] for r in emu.records.values()}
    assert ids == {s["id"] for s in STATES.values() if s["name"] in {"Región Metropolitana de Santiago", "Valparaíso"}}


async def test_given_paged_states_catalog_when_resolving_then_followed_to_the_end(
    emu: PiriodEmulator,
) -> None:
    class SmallPages(PiriodConnector):
        paginator = NextLinkPaginator(page_size=10)

    connector = SmallPages("billing", settings(), transport=httpx.ASGITransport(app=emu.app))
    async with connector:
        created = await connector.create(a_customer(country="MX", state="Zacatecas", tax_id=None), "e:1")

    assert created.remote.customer is not None
    assert created.remote.customer.state == "Zacatecas"  # the last of 32 MX states
    assert len([r for r in emu.requests if r.path == "/states/"]) == 4


async def test_given_unknown_state_when_created_then_mapping_error_names_state(
    emu: PiriodEmulator, piriod: PiriodConnector
) -> None:
    with pytest.raises(FieldMappingError) as caught:
        await piriod.create(a_customer(state="Atlántida"), "e:1")

    assert caught.value.field == "state"
    assert "is not a piriod state of CL" in caught.value.reason
    assert emu.writes() == []


async def test_given_long_external_id_when_created_then_kept_in_metadata_only(
    emu: PiriodEmulator, piriod: PiriodConnector
) -> None:
    long_id = "thredfi:964f4325-3efb-400d-a1bd-8b1f29e828cf:" + "c" * 36
    assert len(long_id) > 64

    created = await piriod.create(a_customer(), long_id)

    stored = emu.records[created.remote.id]
    assert stored["reference"] is None
    assert stored["metadata"]["external_id"] == long_id
    assert created.remote.external_id == long_id


async def test_given_short_external_id_when_created_then_reference_and_metadata_hold_it(
    emu: PiriodEmulator, piriod: PiriodConnector
) -> None:
    created = await piriod.create(a_customer(), "bigcapital:org:17")

    stored = emu.records[created.remote.id]
    assert stored["reference"] == "bigcapital:org:17"
    assert stored["metadata"]["external_id"] == "bigcapital:org:17"


async def test_given_created_record_when_found_by_external_id_then_only_it_matches(
    emu: PiriodEmulator, piriod: PiriodConnector
) -> None:
    emu.seed_fake(5)
    long_id = "x" * 80
    created = await piriod.create(a_customer(), long_id)

    found = await piriod.find_by_external_id(long_id)
    missing = await piriod.find_by_external_id("nobody")

    assert found is not None
    assert [r.id for r in found] == [created.remote.id]
    assert missing == []


async def test_given_active_record_when_archived_then_status_round_trips(
    emu: PiriodEmulator, piriod: PiriodConnector
) -> None:
    created = await piriod.create(a_customer(), "e:1")

    await piriod.set_active(created.remote.id, False)
    archived = await piriod.get(created.remote.id)
    await piriod.set_active(created.remote.id, True)
    restored = await piriod.get(created.remote.id)

    assert emu.records[created.remote.id]["status"] == "active"
    assert archived.customer is not None
    assert archived.customer.active is False
    assert restored.customer is not None
    assert restored.customer.active is True


async def test_given_live_mode_when_listing_then_test_records_are_invisible(
    emu: PiriodEmulator,
) -> None:
    emu.seed_fake(3, test_mode=True)
    live = PiriodConnector("billing", settings(test_mode=False), transport=httpx.ASGITransport(app=emu.app))
    async with live:
        records = [r async for page in live.pages() for r in page]

    assert records == []


async def test_given_over_long_address_when_piriod_refuses_then_canonical_field_named(
    piriod: PiriodConnector,
) -> None:
    with pytest.raises(RejectedError) as caught:
        await piriod.create(a_customer(address_line1="A" * 70), "e:1")

    assert caught.value.field == "address_line1"
    assert "HTTP 400" in str(caught.value)


async def test_given_unknown_id_when_fetched_then_not_found(piriod: PiriodConnector) -> None:
    with pytest.raises(NotFoundError):
        await piriod.get("cus_missing")


async def test_given_wrong_token_when_listing_then_auth_error_without_secret(
    emu: PiriodEmulator,
) -> None:
    secret = "sk_live_wrong_secret_value"
    connector = PiriodConnector("billing", settings(api_token=secret), transport=httpx.ASGITransport(app=emu.app))
    with capture_logs() as logs:
        async with connector:
            with pytest.raises(AuthError) as caught:
                await connector.check()

    assert "HTTP 401" in str(caught.value)
    assert secret not in str(caught.value)
    assert secret not in repr(caught.value.args)
    assert secret not in str(logs)


async def test_given_rate_limit_when_listing_then_retry_after_honoured(
    emu: PiriodEmulator, piriod: PiriodConnector
) -> None:
    emu.seed_fake(3)
    rule = emu.faults.add("rate_limit", method="GET", path="^/customers/$", retry_after=1, times=2)

    with capture_logs() as logs:
        records = [r async for page in piriod.pages() for r in page]

    assert rule.fired == 2
    assert len(records) == 3
    assert [r.status for r in emu.requests] == [429, 429, 200]
    assert SANDBOX_API_TOKEN not in str(logs)


async def test_given_server_error_on_patch_when_updating_then_retried(
    emu: PiriodEmulator, piriod: PiriodConnector
) -> None:
    created = await piriod.create(a_customer(), "e:1")
    emu.faults.add("error_before", method="PATCH", status=503, times=1)

    await piriod.update(created.remote.id, a_customer(name="Nuevo nombre"), "e:1")

    assert emu.records[created.remote.id]["name"] == "Nuevo nombre"


async def test_given_lost_create_response_when_server_errors_then_identity_recovered(
    emu: PiriodEmulator, piriod: PiriodConnector
) -> None:
    emu.faults.add("error_after", method="POST", path="^/customers/$", status=502, times=1)

    with pytest.raises(RetriableError):
        await piriod.create(a_customer(), "bigcapital:org:17")
    found = await piriod.find_by_external_id("bigcapital:org:17")

    # Piriod does not deduplicate: a blind second POST would make a copy.
    assert len(emu.writes()) == 1
    assert found is not None
    assert [r.id for r in found] == list(emu.records)


async def test_given_no_state_when_created_then_catalog_not_fetched(
    emu: PiriodEmulator, piriod: PiriodConnector
) -> None:
    await piriod.create(a_customer(state=None), "e:1")

    assert [r.path for r in emu.requests] == ["/customers/"]
    assert emu.writes()[0].method == "POST"
