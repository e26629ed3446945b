"""Thredfi as a plug-in."""

from __future__ import annotations

from connectors.model import Customer
from connectors.plugin import DemoEdit, System
from connectors.thredfi import ThredfiConnector

SYSTEM = System(
    name="thredfi",
    order=1,
    title="Thredfi",
    connector=ThredfiConnector,
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
    demo_edit=DemoEdit("office_phone", {"status": "ARCHIVED"}),
    demo_next=("timbrix",),
    init_block="""\
[connections.thredfi]
system = "thredfi"
base_url = "https://sandbox.thredfi.com" # TODO: confirm the production host with Thredfi
partner_uuid = "${THREDFI_PARTNER_UUID}" # issued by Thredfi with the partner API key
api_key = "${THREDFI_API_KEY}"
business_id = "TODO"                     # the business's UUID (the /businesses/{id}/ part of its URLs)
""",
)
