"""One shared set of customers for the pairs test, and how each system stores them.

Twelve canonical customers: people and companies in the US, Mexico, Chile
and Great Britain, unicode names, optional fields missing, an archived one
per country mix, a name too long for Piriod and a state Piriod's catalog
does not know. ``seed(system, emulator, customers)`` writes them in that
system's own vendor shape through the emulator's ``seed`` (the way a user of
that system would have entered them) and returns vendor id → fixture key.

Written by hand, independently of the connectors' code:

- ``HELD_BY``: which fixtures each system can hold at all, hence seed as a source;
- ``EXPECTED_REFUSALS``: why a target must turn some of them away,
  (fixture key, target) → the start of one quarantine reason.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import pycountry

from connectors.model import Customer

FIXTURES: dict[str, Customer] = {
    "mx_company": Customer(
        kind="company",
        name="Ñandú Logística S.A. de C.V.",
        company_name="Ñandú Logística S.A. de C.V.",
        email="cxp@nandu.example",
        phone="+523312345678",
        website="https://nandu.example",
        address_line1="Av. Vallarta 3000",
        address_line2="Col. Americana",
        city="Guadalajara",
        state="Jalisco",
        postal_code="44100",
        country="MX",
        tax_id="NLO190312AB1",
        tax_system="601",
        invoice_use="G03",
        currency="MXN",
        notes="Factura mensual",
    ),
    "mx_person": Customer(
        kind="individual",
        name="José Hernández Núñez",
        first_name="José",
        last_name="Hernández Núñez",
        email="jose@hernandez.example",
        phone="+525555550101",
        mobile="+525512345678",
        address_line1="Calle Moneda 12 Int. 4",
        address_line2="Col. Centro",
        city="Ciudad de México",
        state="Ciudad de México",
        postal_code="06000",
        country="MX",
        tax_id="HENJ800101AB2",
        tax_system="612",
        invoice_use="G01",
        currency="MXN",
    ),
    "mx_no_number": Customer(  # no exterior number, "Colonia" spelled out, archived
        kind="company",
        name="Pingüino Distribuciones S.A.",
        company_name="Pingüino Distribuciones S.A.",
        email="pagos@pinguino.example",
        address_line1="Camino Real",
        address_line2="Colonia San Pedro",
        city="Monterrey",
        state="Nuevo León",
        postal_code="64000",
        country="MX",
        tax_id="PDI050505XY9",
        tax_system="601",
        invoice_use="G03",
        currency="MXN",
        active=False,
    ),
    "mx_no_zip": Customer(
        kind="company",
        name="Café Tacuba S. de R.L.",
        company_name="Café Tacuba S. de R.L.",
        email="hola@tacuba.example",
        address_line1="Av. Juárez 55",
        address_line2="Col. Centro",
        city="Puebla",
        state="Puebla",
        country="MX",
        tax_id="CTA101010QQ1",
        currency="MXN",
    ),
    "us_company": Customer(
        kind="company",
        name="Acme Widgets Inc.",
        company_name="Acme Widgets Inc.",
        email="ap@acme.example",
        phone="+15125550100",
        website="https://acme.example",
        address_line1="500 Main St",
        address_line2="Suite 200",
        city="Austin",
        state="Texas",
        postal_code="78701",
        country="US",
        currency="USD",
        notes="Net 30",
    ),
    "us_person": Customer(  # no phone, no second line
        kind="individual",
        name="Zoë O'Brien",
        first_name="Zoë",
        last_name="O'Brien",
        email="zoe@obrien.example",
        address_line1="1600 Elm Road",
        city="Denver",
        state="Colorado",
        postal_code="80202",
        country="US",
        currency="USD",
    ),
    "us_minimal": Customer(  # a name, an e-mail and a country: nothing else
        kind="company",
        name="Globex Corporation",
        company_name="Globex Corporation",
        email="billing@globex.example",
        country="US",
        currency="USD",
    ),
    "cl_company": Customer(
        kind="company",
        name="Señor Café SpA",
        company_name="Señor Café SpA",
        email="pagos@senorcafe.example",
        phone="+56223456789",
        website="https://senorcafe.example",
        address_line1="Av. Providencia 1234",
        address_line2="Of. 501",
        city="Santiago",
        state="Región Metropolitana de Santiago",
        postal_code="7500000",
        country="CL",
        tax_id="76.123.456-7",
        currency="CLP",
        notes="Cliente desde 2019 ☕",
    ),
    "cl_person_no_rut": Customer(
        kind="individual",
        name="María José Rojas Muñoz",
        first_name="María José",
        last_name="Rojas Muñoz",
        email="mjrojas@correo.example",
        mobile="+56987654321",
        address_line1="Calle Moneda 975",
        city="Valparaíso",
        state="Valparaíso",
        postal_code="2340000",
        country="CL",
        currency="CLP",
    ),
    "gb_company": Customer(
        kind="company",
        name="Zürich Tools Ltd",
        company_name="Zürich Tools Ltd",
        email="accounts@zurich.example",
        phone="+442079460958",
        website="https://zurich.example",
        address_line1="1 Poultry",
        address_line2="Floor 3",
        city="London",
        state="England",
        postal_code="EC2R 8EJ",
        country="GB",
        tax_id="GB123456789",
        currency="GBP",
    ),
    "gb_person_archived": Customer(
        kind="individual",
        name="Siobhán Walker",
        first_name="Siobhán",
        last_name="Walker",
        email="siobhan@walker.example",
        address_line1="10 Queen Street",
        city="Cardiff",
        state="South Glamorgan",
        postal_code="CF10 2BU",
        country="GB",
        currency="GBP",
        active=False,
    ),
    "gb_long_name": Customer(
        kind="company",
        name="The Very Long and Distinguished Worshipful Company of Spectacle Makers and Optical Instrument Traders of the City of London Ltd",  # noqa: E501
        company_name="The Very Long and Distinguished Worshipful Company of Spectacle Makers and Optical Instrument Traders of the City of London Ltd",  # noqa: E501
        email="clerk@spectacles.example",
        address_line1="Apothecaries Hall, Black Friars Lane",
        city="London",
        state="England",
        postal_code="EC4V 6EJ",
        country="GB",
        currency="GBP",
    ),
}

_ALL = frozenset(FIXTURES)
#: system → the fixtures it can hold (a source only ever lists what it accepted).
HELD_BY: dict[str, frozenset[str]] = {
    "bigcapital": _ALL,
    "thredfi": _ALL,
    # no address, no RUT for a Chilean, a name over 100 characters, a state not in its catalog
    "piriod": _ALL - {"us_minimal", "cl_person_no_rut", "gb_long_name", "gb_person_archived"},
    # CFDI needs an RFC, régimen, uso, and a complete Mexican address
    "timbrix": frozenset({"mx_company", "mx_person", "mx_no_number"}),
}

#: (fixture, target) → how one quarantine reason must start, whatever the source.
EXPECTED_REFUSALS: dict[tuple[str, str], str] = {
    **{
        (key, "timbrix"): "tax_id: required by timbrix"
        for key in ("us_company", "us_person", "us_minimal", "cl_person_no_rut", "gb_person_archived", "gb_long_name")
    },
    ("gb_company", "timbrix"): "tax_id:",  # its VAT number is no RFC (or the source has no tax id)
    ("mx_no_zip", "timbrix"): "postal_code: required by timbrix",
    ("us_minimal", "piriod"): "address_line1: required by piriod",
    ("cl_person_no_rut", "piriod"): "tax_id: required by piriod",
    ("gb_long_name", "piriod"): "name: 127 characters, piriod keeps at most 100",
    ("gb_person_archived", "piriod"): "state:",
}


# -- vendor shapes ----------------------------------------------------------------


def _bigcapital(c: Customer) -> dict[str, Any]:
    country = pycountry.countries.get(alpha_2=c.country) if c.country else None
    return {
        "customerType": "individual" if c.kind == "individual" else "business",
        "currencyCode": c.currency,
        "displayName": c.name,
        "companyName": c.company_name,
        "firstName": c.first_name,
        "lastName": c.last_name,
        "email": c.email,
        "workPhone": c.phone,
        "personalPhone": c.mobile,
        "website": c.website,
        "billingAddress1": c.address_line1,
        "billingAddress2": c.address_line2,
        "billingAddressCity": c.city,
        "billingAddressState": c.state,
        "billing_address_postcode": c.postal_code,  # as an import leaves it: no API call can write one
        "billingAddressCountry": country.name if country else None,  # free text: "United Kingdom"
        "note": c.notes,
        "active": c.active,
    }


def _thredfi(c: Customer) -> dict[str, Any]:
    person = c.kind == "individual"
    return {
        "individual_name": c.name if person else "",
        "company_name": "" if person else c.name,
        "email": c.email,
        "office_phone": c.phone,
        "mobile_phone": c.mobile,
        "address_line1": c.address_line1,
        "address_line2": c.address_line2,
        "city": c.city,
        "state_county": c.state,
        "postal_code": c.postal_code,
        "country": c.country,
        "vat_number": c.tax_id,
        "notes": c.notes,
        "status": "active" if c.active else "archived",
    }


def _piriod(c: Customer) -> dict[str, Any]:
    return {
        "name": c.name,
        "address": ", ".join(p for p in (c.address_line1, c.address_line2) if p),
        "country": c.country,
        "state": c.state,
        "currency": c.currency,
        "email": c.email,
        "phone": c.phone,
        "website": c.website,
        "zip_code": c.postal_code,
        "tax_id": c.tax_id,
        "metadata": {"notes": c.notes} if c.notes else {},
        "status": "active" if c.active else "archived",
    }


def _timbrix(c: Customer) -> dict[str, Any]:
    line = c.address_line1 or ""
    found = re.fullmatch(r"(?P<street>.+?)\s+(?P<ext>\d\S*)(?:\s+Int\.\s*(?P<int>\S+))?", line)
    street, exterior, interior = (found["street"], found["ext"], found["int"]) if found else (line, "S/N", None)
    colonia = re.sub(r"^(Col\.|Colonia)\s*", "", c.address_line2 or "")
    country = pycountry.countries.get(alpha_2=c.country) if c.country else None
    return {
        "legalName": c.name,
        "taxId": c.tax_id,
        "taxSystem": c.tax_system,
        "email": c.email,
        "defaultInvoiceUse": c.invoice_use,
        "phone": c.phone,
        "addressStreet": street,
        "addressExterior": exterior,
        "addressInterior": interior,
        "addressNeighborhood": colonia,
        "addressCity": c.city,
        "addressMunicipality": c.city,
        "addressZip": c.postal_code,
        "addressState": c.state,
        "addressCountry": country.alpha_3 if country else None,
    }


_SHAPES: dict[str, Callable[[Customer], dict[str, Any]]] = {
    "bigcapital": _bigcapital,
    "thredfi": _thredfi,
    "piriod": _piriod,
    "timbrix": _timbrix,
}


def seed(system: str, emulator: Any, customers: Mapping[str, Customer]) -> dict[str, str]:
    """Store the customers in ``system``'s emulator, in its vendor shape.

    Returns:
        vendor id → fixture key.
    """
    keys = list(customers)
    made = emulator.seed([_SHAPES[system](customers[k]) for k in keys])
    return {str(record["id"]): key for record, key in zip(made, keys, strict=True)}


__all__ = ["EXPECTED_REFUSALS", "FIXTURES", "HELD_BY", "seed"]
