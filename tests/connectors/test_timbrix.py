"""Timbrix connector: mapping rules, then real HTTP against the in-process emulator."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import stamina
from pydantic import ValidationError
from structlog.testing import capture_logs

from connectors.errors import (
    AuthError,
    NotFoundError,
    NotSupportedError,
    RejectedError,
    RetriableError,
)
from connectors.model import Customer
from connectors.timbrix import TimbrixConnector, TimbrixSettings
from sandbox.timbrix import (
    SANDBOX_API_KEY,
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    SANDBOX_ORGANIZATION_ID,
    TimbrixEmulator,
)

BASE_URL = "http://timbrix.test/api"


def settings(**changes: Any) -> TimbrixSettings:
    values: dict[str, Any] = {
        "system": "timbrix",
        "base_url": BASE_URL,
        "api_key": SANDBOX_API_KEY,
        "organization_id": SANDBOX_ORGANIZATION_ID,
        **changes,
    }
    return TimbrixSettings(**values)


def a_customer(**changes: Any) -> Customer:
    values: dict[str, Any] = {
        "kind": "company",
        "name": "Pingüino Logística S.A. de C.V.",
        "company_name": "Pingüino Logística S.A. de C.V.",
        "email": "facturas@pinguino.mx",
        "phone": "+523312345678",
        "address_line1": "Av. Vallarta 3000",
        "address_line2": "Col. Juárez",
        "city": "Guadalajara",
        "state": "Jalisco",
        "postal_code": "44100",
        "country": "MX",
        "tax_id": "PLO950101AB1",
        "tax_system": "601",
        "invoice_use": "G03",
        **changes,
    }
    return Customer(**values)


@pytest.fixture(autouse=True)
def fast_retries() -> Iterator[None]:
    with stamina.set_testing(True, attempts=3):
        yield


@pytest.fixture
def emu() -> TimbrixEmulator:
    return TimbrixEmulator()


@pytest.fixture
async def timbrix(emu: TimbrixEmulator) -> AsyncIterator[TimbrixConnector]:
    connector = TimbrixConnector("cfdi", settings(), transport=httpx.ASGITransport(app=emu.app))
    async with connector:
        yield connector


# -- settings and mapping, no HTTP -----------------------------------------------


@pytest.mark.parametrize(
    "credentials",
    [{}, {"api_key": "sk_test_a", "token": "tok_b"}, {"api_key": "", "token": None}],
    ids=["neither", "both", "blank"],
)
def test_given_not_exactly_one_credential_when_loaded_then_clear_error(
    credentials: dict[str, str],
) -> None:
    values = {"system": "timbrix", "base_url": BASE_URL, "organization_id": "org", **credentials}

    with pytest.raises(ValidationError, match="exactly one of api_key"):
        TimbrixSettings(**values)


def test_given_settings_when_printed_then_secrets_hidden() -> None:
    assert SANDBOX_API_KEY not in repr(settings())
    assert "tok_secret" not in repr(settings(api_key=None, token="tok_secret"))


def test_given_nested_read_when_mapped_then_canonical_address_conventions() -> None:
    raw = {
        "id": "590ce6c56d04f840aa8438af",
        "legalName": "Dunder Mifflin",
        "taxId": "DUM901231AB3",
        "taxSystem": "601",
        "email": "billing@dundermifflin.com",
        "phone": "6474010101",
        "defaultInvoiceUse": "G01",
        "address": {
            "street": "Blvd. Atardecer",
            "exterior": "142",
            "interior": "4",
            "neighborhood": "Centro",
            "city": "Huatabampo",
            "municipality": "Huatabampo",
            "zip": "86500",
            "state": "Sonora",
            "country": "MEX",
        },
        "createdAt": "2025-01-26T10:00:00Z",
        "updatedAt": "2025-01-26T10:00:00Z",
    }
    connector = TimbrixConnector("cfdi", settings())

    remote = connector.read(raw)

    assert remote.customer == Customer(
        kind="company",
        name="Dunder Mifflin",
        company_name="Dunder Mifflin",
        email="billing@dundermifflin.com",
        phone="6474010101",
        address_line1="Blvd. Atardecer 142 Int. 4",
        address_line2="Col. Centro",
        city="Huatabampo",
        state="Sonora",
        postal_code="86500",
        country="MX",
        tax_id="DUM901231AB3",
        tax_system="601",
        invoice_use="G01",
    )
    assert remote.updated_at is not None
    assert remote.external_id is None  # no identity slot
    assert connector.shape(remote.customer) == remote.customer


def test_given_person_rfc_when_read_then_individual_without_company_name() -> None:
    raw = {
        "id": "1",
        "legalName": "María José García",
        "taxId": "GAMJ800101AB1",
        "address": {"street": "Calle Moneda", "exterior": "S/N", "country": "MEX"},
    }

    customer = TimbrixConnector("cfdi", settings()).to_canonical(raw)

    assert (customer.kind, customer.company_name) == ("individual", None)
    assert customer.address_line1 == "Calle Moneda S/N"


@pytest.mark.parametrize("colonia", ["Juárez", "Col. Juárez", "Colonia Juárez", "col.Juárez"])
def test_given_any_colonia_spelling_when_shaped_then_one_value(colonia: str) -> None:
    shaped = TimbrixConnector("cfdi", settings()).shape(a_customer(address_line2=colonia))

    assert shaped.address_line2 == "Col. Juárez"


@pytest.mark.parametrize(
    ("line1", "street", "exterior", "interior"),
    [
        ("Av. Vallarta 3000", "Av. Vallarta", "3000", None),
        ("Av.  Vallarta   3000-B", "Av. Vallarta", "3000-B", None),
        ("Calle Moneda", "Calle Moneda", "S/N", None),
        ("Calle Moneda s/n", "Calle Moneda", "s/n", None),
        ("Av. Vallarta 3000 Int. 4", "Av. Vallarta", "3000", "4"),
        ("Calle Interior 5", "Calle Interior", "5", None),
        ("Colima", "Colima", "S/N", None),
    ],
)
def test_given_address_line1_when_written_then_street_exterior_interior(
    line1: str, street: str, exterior: str, interior: str | None
) -> None:
    connector = TimbrixConnector("cfdi", settings())

    body = connector.to_payload(a_customer(address_line1=line1), "e:1", create=True)

    assert (body["addressStreet"], body["addressExterior"]) == (street, exterior)
    assert body.get("addressInterior") == interior
    assert connector.shape(connector.shape(a_customer(address_line1=line1))) == connector.shape(
        a_customer(address_line1=line1)
    )


def test_given_canonical_when_written_then_flat_body_with_alpha3_and_municipality() -> None:
    body = TimbrixConnector("cfdi", settings()).to_payload(a_customer(), "e:1", create=True)

    assert body == {
        "legalName": "Pingüino Logística S.A. de C.V.",
        "taxId": "PLO950101AB1",
        "taxSystem": "601",
        "email": "facturas@pinguino.mx",
        "defaultInvoiceUse": "G03",
        "phone": "+523312345678",
        "addressStreet": "Av. Vallarta",
        "addressExterior": "3000",
        "addressNeighborhood": "Juárez",
        "addressCity": "Guadalajara",
        "addressMunicipality": "Guadalajara",
        "addressZip": "44100",
        "addressState": "Jalisco",
        "addressCountry": "MEX",
    }


def test_given_update_when_optional_fields_empty_then_nulls_clear_them() -> None:
    body = TimbrixConnector("cfdi", settings()).to_payload(a_customer(phone=None), "e:1", create=False)

    assert body["phone"] is None
    assert body["addressInterior"] is None
    assert "notes" not in body


def test_given_source_fields_timbrix_cannot_hold_when_shaped_then_dropped() -> None:
    customer = a_customer(
        kind="individual",
        first_name="Ana",
        mobile="+5255",
        website="https://x.mx",
        currency="MXN",
        notes="nota",
        country=None,
    )

    shaped = TimbrixConnector("cfdi", settings()).shape(customer)

    assert (shaped.first_name, shaped.mobile, shaped.website) == (None, None, None)
    assert (shaped.currency, shaped.notes) == (None, None)
    assert shaped.kind == "company"  # a 12-character RFC is a company's
    assert shaped.country == "MX"  # Timbrix files customers without a country under Mexico


def test_given_missing_cfdi_fields_when_checked_then_each_named_for_timbrix() -> None:
    connector = TimbrixConnector("cfdi", settings())
    customer = Customer(name="Sin Datos", address_line1="Av. Juárez 10")

    problems = connector.problems(connector.shape(customer))

    assert sorted(p.field for p in problems) == [
        "address_line2",
        "city",
        "email",
        "invoice_use",
        "postal_code",
        "state",
        "tax_id",
        "tax_system",
    ]
    assert all("timbrix" in p.reason for p in problems)


@pytest.mark.parametrize(
    ("changes", "field", "meaning"),
    [
        ({"postal_code": "4410"}, "postal_code", "a 5-digit postal code"),
        ({"postal_code": "C.P. 44100"}, "postal_code", "a 5-digit postal code"),
        ({"tax_id": "76.123.456-7"}, "tax_id", "an RFC of 12 or 13 characters"),
        ({"tax_id": "plo950101ab1"}, "tax_id", "an RFC of 12 or 13 characters"),
        ({"tax_system": "General"}, "tax_system", "a 3-digit SAT régimen fiscal code"),
    ],
)
def test_given_malformed_value_when_checked_then_format_problem(
    changes: dict[str, str], field: str, meaning: str
) -> None:
    connector = TimbrixConnector("cfdi", settings())

    problems = connector.problems(connector.shape(a_customer(**changes)))

    assert [(p.field, p.reason) for p in problems] == [(field, f"timbrix needs {meaning}")]


# -- against the emulator ------------------------------------------------------


async def test_given_bare_array_when_pulled_then_one_request_returns_everything(
    emu: TimbrixEmulator, timbrix: TimbrixConnector
) -> None:
    seeded = emu.seed_fake(60)

    pages = [page async for page in timbrix.pages()]

    assert len(pages) == 1
    assert len(pages[0]) == len(seeded) > 0
    assert all(r.problem is None for r in pages[0])
    assert [r.path for r in emu.requests] == [f"/api/organizations/{SANDBOX_ORGANIZATION_ID}/customers"]
    assert {r.customer.kind for r in pages[0] if r.customer} == {"company", "individual"}


@pytest.mark.parametrize(
    "customer",
    [
        a_customer(),
        a_customer(
            kind="individual",
            name="Ōta Núñez Muñoz",
            company_name=None,
            tax_id="NUMO800101AB1",
            tax_system="612",
        ),
        a_customer(address_line1="Calle Sin Número", address_line2="Juárez"),
        a_customer(address_line1="Av. Vallarta 3000 Int. 4"),
        a_customer(phone=None, country=None),
    ],
    ids=["company", "individual-unicode", "s/n-bare-colonia", "interior", "optional-missing"],
)
async def test_given_canonical_when_created_then_read_back_as_shaped(
    emu: TimbrixEmulator, timbrix: TimbrixConnector, customer: Customer
) -> None:
    created = await timbrix.create(customer, "piriod:acc:cus_1")
    fetched = await timbrix.get(created.remote.id)

    assert fetched.customer == timbrix.shape(customer)
    assert created.remote.customer == timbrix.shape(customer)
    stored = emu.records[created.remote.id]
    assert stored["address"]["municipality"] == customer.city
    assert stored["address"]["country"] == "MEX"


async def test_given_existing_record_when_updated_then_put_changes_and_clears(
    emu: TimbrixEmulator, timbrix: TimbrixConnector
) -> None:
    created = await timbrix.create(a_customer(address_line1="Av. Vallarta 3000 Int. 4"), "e:1")
    changed = a_customer(
        phone=None,
        address_line1="Av. Chapultepec 15",
        address_line2="Americana",
        city="Zapopan",
        postal_code="45010",
    )

    await timbrix.update(created.remote.id, changed, "e:1")
    fetched = await timbrix.get(created.remote.id)

    assert fetched.customer == timbrix.shape(changed)
    assert emu.writes()[-1].method == "PUT"
    address = emu.records[created.remote.id]["address"]
    assert (address["interior"], address["municipality"]) == (None, "Zapopan")


async def test_given_taken_rfc_when_created_then_rejected_naming_tax_id(
    emu: TimbrixEmulator, timbrix: TimbrixConnector
) -> None:
    await timbrix.create(a_customer(), "e:1")

    with pytest.raises(RejectedError) as caught:
        await timbrix.create(a_customer(name="Otra Empresa"), "e:2")

    assert caught.value.field == "tax_id"
    assert "HTTP 409" in str(caught.value)
    assert "PLO950101AB1" not in str(caught.value)
    assert len(emu.records) == 1


async def test_given_invalid_zip_when_timbrix_refuses_then_canonical_field_named(
    timbrix: TimbrixConnector,
) -> None:
    with pytest.raises(RejectedError) as caught:
        await timbrix.create(a_customer(postal_code="ABCDE"), "e:1")

    assert caught.value.field == "postal_code"
    assert "HTTP 400" in str(caught.value)


async def test_given_record_when_deleted_then_gone(emu: TimbrixEmulator, timbrix: TimbrixConnector) -> None:
    created = await timbrix.create(a_customer(), "e:1")

    await timbrix.delete(created.remote.id)

    assert emu.records == {}
    with pytest.raises(NotFoundError):
        await timbrix.get(created.remote.id)
    with pytest.raises(NotFoundError):
        await timbrix.delete(created.remote.id)


async def test_given_no_archive_state_when_archiving_then_not_supported(
    emu: TimbrixEmulator, timbrix: TimbrixConnector
) -> None:
    created = await timbrix.create(a_customer(), "e:1")

    with pytest.raises(NotSupportedError):
        await timbrix.set_active(created.remote.id, False)
    assert await timbrix.find_by_external_id("e:1") is None


async def test_given_bearer_token_when_listing_then_authorised(emu: TimbrixEmulator) -> None:
    emu.seed_fake(3)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=emu.app)) as client:
        issued = await client.post(
            f"{BASE_URL}/oauth/token",
            json={
                "clientId": SANDBOX_CLIENT_ID,
                "clientSecret": SANDBOX_CLIENT_SECRET,
                "scopes": ["customers:read"],
            },
        )
    token = issued.json()["access_token"]
    connector = TimbrixConnector(
        "cfdi", settings(api_key=None, token=token), transport=httpx.ASGITransport(app=emu.app)
    )

    async with connector:
        records = [r async for page in connector.pages() for r in page]

    assert len(records) == 3


@pytest.mark.parametrize(
    "changes",
    [{"api_key": "sk_test_not_the_key"}, {"api_key": None, "token": "tok_forged_bearer"}],
    ids=["api-key", "bearer"],
)
async def test_given_wrong_credentials_when_listing_then_auth_error_without_secret(
    emu: TimbrixEmulator, changes: dict[str, Any]
) -> None:
    secret = changes.get("token") or changes["api_key"]
    connector = TimbrixConnector("cfdi", settings(**changes), transport=httpx.ASGITransport(app=emu.app))
    with capture_logs() as logs:
        async with connector:
            with pytest.raises(AuthError) as caught:
                await connector.check()

    assert "HTTP 401" in str(caught.value)
    assert secret not in str(caught.value)
    assert secret not in str(logs)


async def test_given_foreign_organization_when_listing_then_auth_error(
    emu: TimbrixEmulator,
) -> None:
    connector = TimbrixConnector(
        "cfdi",
        settings(organization_id="00000000-0000-0000-0000-000000000000"),
        transport=httpx.ASGITransport(app=emu.app),
    )
    async with connector:
        with pytest.raises(AuthError, match="HTTP 403"):
            await connector.check()


async def test_given_rate_limit_when_creating_then_retry_after_honoured(
    emu: TimbrixEmulator, timbrix: TimbrixConnector
) -> None:
    rule = emu.faults.add("rate_limit", method="POST", path="/customers$", retry_after=2, times=1)

    with capture_logs() as logs:
        created = await timbrix.create(a_customer(), "e:1")

    assert rule.fired == 1
    assert [r.status for r in emu.requests] == [429, 201]
    assert list(emu.records) == [created.remote.id]
    assert SANDBOX_API_KEY not in str(logs)


async def test_given_lost_create_response_when_server_errors_then_not_blindly_retried(
    emu: TimbrixEmulator, timbrix: TimbrixConnector
) -> None:
    emu.faults.add("error_after", method="POST", status=500, times=1)

    with pytest.raises(RetriableError, match="server error"):
        await timbrix.create(a_customer(), "e:1")

    # No identity slot: a second POST could duplicate the customer; the engine recovers it.
    assert len(emu.writes()) == 1
