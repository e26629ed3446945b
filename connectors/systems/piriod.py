"""Piriod as a plug-in."""

from __future__ import annotations

from datetime import datetime

from connectors.model import Customer
from connectors.piriod import PiriodConnector
from connectors.plugin import DemoEdit, System


def rut(body: int) -> str:
    """A Chilean RUT with its check digit (Piriod validates it)."""
    total, factor = 0, 2
    for digit in reversed(str(body)):
        total += int(digit) * factor
        factor = 2 if factor == 7 else factor + 1
    rest = 11 - total % 11
    return f"{body}-" + {11: "0", 10: "K"}.get(rest, str(rest))


def _probe_tax_id(now: datetime, _unique: str) -> str:
    return rut(70_000_000 + int(now.timestamp()) % 9_000_000)


SYSTEM = System(
    name="piriod",
    order=2,
    title="Piriod",
    connector=PiriodConnector,
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
    demo_edit=DemoEdit("phone", {"status": "archived"}),
    init_block="""\
[connections.piriod]
system = "piriod"
base_url = "https://api.piriod.com"
api_token = "${PIRIOD_API_TOKEN}"        # Settings → API tokens; a new token cancels the old one
workspace = "TODO"                       # the account id, acc_..., sent as x-simple-workspace
test_mode = true                         # the test data set; set false for live data
""",
    # A Chilean customer: a Piriod state of Chile and a valid RUT.
    probe_values={
        "address_line1": "Avenida Providencia 1000",
        "address_line2": "Oficina 5",
        "city": "Santiago",
        "state": "Región Metropolitana de Santiago",
        "postal_code": "7500000",
        "country": "CL",
        "phone": "+56912345678",
        "mobile": "+56987654321",
        "currency": "CLP",
    },
    probe_tax_id=_probe_tax_id,
)
