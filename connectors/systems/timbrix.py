"""Timbrix as a plug-in."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from connectors.model import Customer
from connectors.plugin import DemoEdit, System
from connectors.timbrix import TimbrixConnector


def _seed(emulator: Any, n: int) -> list[str]:
    # seed_fake keeps only the Mexican fakes CFDI can hold: ask until there are n.
    ids: list[str] = []
    seed = 1
    while len(ids) < n:
        ids += [str(record["id"]) for record in emulator.seed_fake(n - len(ids), seed=seed)]
        seed += 1
    return ids


def _probe_tax_id(now: datetime, unique: str) -> str:
    return f"CPR{now:%y%m%d}{unique[-3:]}"  # a company RFC: 3 letters, a date, a 3-character homoclave


SYSTEM = System(
    name="timbrix",
    order=3,
    title="Timbrix",
    connector=TimbrixConnector,
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
    seed=_seed,
    demo_edit=DemoEdit("phone", None),  # Timbrix has no archived state
    demo_next=("piriod",),
    # Why a pair cannot land most customers, where a system lacks what Timbrix requires (connector-apis.md §5).
    demo_notes={
        "piriod": (
            "Piriod keeps an address as one line, with no city and no colonia field (connector-apis.md §5), "
            "while a Timbrix (CFDI 4.0) customer needs both: piriod → timbrix cannot land them. "
            "Try `custsync demo --source thredfi --target timbrix`."
        ),
        "bigcapital": (
            "Bigcapital keeps no postcode that its API can write or custsync can carry (docs/fidelity.md), "
            "while a Timbrix (CFDI 4.0) customer needs a 5-digit zip: bigcapital → timbrix cannot land them. "
            "Try `custsync demo --source thredfi --target timbrix`."
        ),
    },
    # Timbrix's own customers are all Mexican (the mix of sandbox.fake.TIMBRIX_COUNTRIES).
    demo_seed_countries=("MX", "MX", "US", "MX"),
    demo_seed_note=" (three in four Mexican: Timbrix invoices Mexican CFDI)",
    init_block="""\
[connections.timbrix]
system = "timbrix"
base_url = "https://api.timbrix.com/api" # TODO: confirm the host with Timbrix; keep the /api suffix
api_key = "${TIMBRIX_API_KEY}"           # Settings → API Keys (sk_test_... stamps nothing fiscal)
organization_id = "TODO"                 # the organization's UUID (the /organizations/{id}/ part of its URLs)
""",
    init_pipeline_note=(
        '# defaults = { tax_system = "601", invoice_use = "G03" }   # CFDI needs both; few sources hold them'
    ),
    # A CFDI customer: a Mexican address, an RFC, régimen fiscal and uso CFDI.
    probe_values={
        "address_line1": "Avenida Juárez 100",
        "address_line2": "Col. Centro",
        "city": "Guadalajara",
        "state": "Jalisco",
        "postal_code": "44100",
        "country": "MX",
        "phone": "+523312345678",
        "mobile": "+523398765432",
        "currency": "MXN",
    },
    probe_tax_id=_probe_tax_id,
)
