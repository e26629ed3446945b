"""Bigcapital as a plug-in."""

from __future__ import annotations

from connectors.bigcapital import BigcapitalConnector
from connectors.model import Customer
from connectors.plugin import DemoEdit, System

SYSTEM = System(
    name="bigcapital",
    order=0,
    title="Bigcapital",
    connector=BigcapitalConnector,
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
    # Bigcapital fixes the currency at creation: the edit keeps it.
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
    demo_edit=DemoEdit("work_phone", {"active": False}),
    demo_next=("thredfi",),
    init_block="""\
[connections.bigcapital]
system = "bigcapital"
base_url = "https://api.bigcapital.com"  # self-hosted: https://YOUR-HOST (custsync appends /api/...)
# Preferences → API Keys in the web app; the key is shown once and acts as the user who made it.
api_key = "${BIGCAPITAL_API_KEY}"
# organization_id = "TODO"               # leave out: custsync asks GET /api/organization/current
""",
    init_pipeline_note='# defaults = { currency = "USD" }      # Bigcapital requires a currency on create',
)
