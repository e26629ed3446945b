"""Per-system fixtures of the contract suite, keyed by system name.

A connector registered in :data:`connectors.REGISTRY` is tested by
``test_connector_contract.py`` as soon as it has one entry in :data:`CASES`:
how to start its emulator, its connection table for that emulator, a
canonical customer it can hold (every field it keeps set), a second one for
updates (other values, other natural keys) and how to seed many records. A
registered connector without an entry fails every contract test, loudly.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from connectors import REGISTRY
from connectors.base import Connector
from connectors.model import Customer
from sandbox import bigcapital, piriod, thredfi, timbrix
from sandbox._core import Emulator

BASE_URL = "http://contract.test"


@dataclass(frozen=True)
class ContractCase:
    """What the contract suite needs to know about one system.

    Attributes:
        emulator: makes a fresh emulator of the system.
        connection: the connection table (as in the config file) for an
            emulator served at the given base URL.
        customer: a canonical customer the system can hold, with every field
            of ``spec.fields`` set.
        edited: another one, with different values and natural keys.
        seed: stores at least ``n`` vendor records through the emulator's
            own seeding; returns their vendor ids.
    """

    emulator: Callable[[], Emulator]
    connection: Callable[[str], dict[str, Any]]
    customer: Customer
    edited: Customer
    seed: Callable[[Any, int], list[str]]


def _seed_fake(emu: Any, n: int) -> list[str]:
    return [str(record["id"]) for record in emu.seed_fake(n)]


def _seed_timbrix(emu: Any, n: int) -> list[str]:
    # seed_fake keeps only the Mexican fakes CFDI can hold: ask until there are n.
    ids: list[str] = []
    seed = 1
    while len(ids) < n:
        ids += [str(record["id"]) for record in emu.seed_fake(n - len(ids), seed=seed)]
        seed += 1
    return ids


CASES: dict[str, ContractCase] = {
    "bigcapital": ContractCase(
        emulator=bigcapital.BigcapitalEmulator,
        connection=lambda base: {"system": "bigcapital", "base_url": base, "api_key": bigcapital.SANDBOX_API_KEY},
        customer=Customer(
            kind="individual",
            name="Dr. Zoë O'Brien-Núñez",
            company_name="Zürich Tools Ltd",
            first_name="Zoë",
            last_name="O'Brien-Núñez",
            email="zoe@zurich-tools.example",
            phone="+44 20 7946 0958",
            mobile="+44 7700 900123",
            website="https://zurich-tools.example",
            address_line1="1 Poultry",
            address_line2="Floor 3",
            city="London",
            state="England",
            postal_code="EC2R 8EJ",
            country="GB",
            currency="GBP",
            notes="Prefers e-mail ✉",
        ),
        edited=Customer(
            kind="company",
            name="Pingüino Café Inc.",
            company_name="Pingüino Café Inc.",
            first_name="Renée",
            last_name="Dubois",
            email="ap@pinguino.example",
            phone="+1 512 555 0100",
            mobile="+1 512 555 0199",
            website="https://pinguino.example",
            address_line1="500 Main St",
            address_line2="Suite 200",
            city="Austin",
            state="Texas",
            postal_code="78701",
            country="US",
            currency="GBP",
            notes="Net 30",
        ),
        seed=_seed_fake,
    ),
    "thredfi": ContractCase(
        emulator=thredfi.ThredfiEmulator,
        connection=lambda base: {
            "system": "thredfi",
            "base_url": base,
            "partner_uuid": thredfi.SANDBOX_PARTNER_UUID,
            "api_key": thredfi.SANDBOX_API_KEY,
            "business_id": thredfi.SANDBOX_BUSINESS_ID,
        },
        customer=Customer(
            kind="company",
            name="Señor Café SpA",
            company_name="Señor Café SpA",
            email="pagos@senorcafe.example",
            phone="+56 2 2345 6789",
            mobile="+56 9 8765 4321",
            address_line1="Av. Providencia 1234",
            address_line2="Of. 501",
            city="Santiago",
            state="Región Metropolitana de Santiago",
            postal_code="7500000",
            country="CL",
            tax_id="76.123.456-7",
            notes="Cliente desde 2019 ☕",
        ),
        edited=Customer(
            kind="company",
            name="Ñandú Logística S.A. de C.V.",
            company_name="Ñandú Logística S.A. de C.V.",
            email="cxp@nandu.example",
            phone="+52 33 1234 5678",
            mobile="+52 33 8765 4321",
            address_line1="Av. Vallarta 3000",
            address_line2="Col. Americana",
            city="Guadalajara",
            state="Jalisco",
            postal_code="44100",
            country="MX",
            tax_id="NLO190312AB1",
            notes="Factura mensual",
        ),
        seed=_seed_fake,
    ),
    "piriod": ContractCase(
        emulator=piriod.PiriodEmulator,
        connection=lambda base: {
            "system": "piriod",
            "base_url": base,
            "api_token": piriod.SANDBOX_API_TOKEN,
            "workspace": piriod.SANDBOX_WORKSPACE,
            "test_mode": True,
        },
        customer=Customer(
            kind="company",
            name="Señor Café SpA",
            email="pagos@senorcafe.example",
            phone="+56223456789",
            website="https://senorcafe.example",
            address_line1="Av. Providencia 1234, Of. 501",
            state="Región Metropolitana de Santiago",
            postal_code="7500000",
            country="CL",
            tax_id="76.123.456-7",
            currency="CLP",
            notes="Cliente desde 2019 ☕",
        ),
        edited=Customer(
            kind="company",
            name="Ñandú Logística S.A. de C.V.",
            email="cxp@nandu.example",
            phone="+523312345678",
            website="https://nandu.example",
            address_line1="Av. Vallarta 3000, Col. Americana",
            state="Jalisco",
            postal_code="44100",
            country="MX",
            tax_id="NLO190312AB1",
            currency="MXN",
            notes="Factura mensual",
        ),
        seed=_seed_fake,
    ),
    "timbrix": ContractCase(
        emulator=timbrix.TimbrixEmulator,
        connection=lambda base: {
            "system": "timbrix",
            "base_url": f"{base}/api",
            "api_key": timbrix.SANDBOX_API_KEY,
            "organization_id": timbrix.SANDBOX_ORGANIZATION_ID,
        },
        customer=Customer(
            kind="company",
            name="Ñandú Logística S.A. de C.V.",
            company_name="Ñandú Logística S.A. de C.V.",
            email="cxp@nandu.example",
            phone="+52 33 1234 5678",
            address_line1="Av. Vallarta 3000 Int. 4",
            address_line2="Col. Americana",
            city="Guadalajara",
            state="Jalisco",
            postal_code="44100",
            country="MX",
            tax_id="NLO190312AB1",
            tax_system="601",
            invoice_use="G03",
        ),
        edited=Customer(
            kind="individual",
            name="José Hernández Núñez",
            email="jose@hernandez.example",
            phone="+52 55 5555 0101",
            address_line1="Calle Moneda S/N",
            address_line2="Col. Centro",
            city="Ciudad de México",
            state="Ciudad de México",
            postal_code="06000",
            country="MX",
            tax_id="HENJ800101AB2",
            tax_system="612",
            invoice_use="G01",
        ),
        seed=_seed_timbrix,
    ),
}


@pytest.fixture
def case(system: str) -> ContractCase:
    """The contract fixtures of ``system``; a registered system without them fails."""
    try:
        return CASES[system]
    except KeyError:
        pytest.fail(
            f"connector {system!r} is registered in connectors.REGISTRY but has no contract "
            f"fixtures: add CASES[{system!r}] to tests/contract/conftest.py",
            pytrace=False,
        )


@pytest.fixture
def emulator(case: ContractCase) -> Any:
    """A fresh emulator of the system."""
    return case.emulator()


ConnectorFactory = Callable[[], Connector]


@pytest.fixture
def make_connector(system: str, case: ContractCase, emulator: Any) -> ConnectorFactory:
    """Builds the system's connector against its emulator (not yet opened)."""
    cls = REGISTRY[system]

    def make() -> Connector:
        settings = cls.settings_model.model_validate(case.connection(BASE_URL))
        return cls(f"contract_{system}", settings, transport=httpx.ASGITransport(app=emulator.app))

    return make


@pytest.fixture
async def connector(make_connector: ConnectorFactory) -> AsyncIterator[Connector]:
    """The system's connector, opened, against its emulator."""
    async with make_connector() as opened:
        yield opened
