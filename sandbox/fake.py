"""Deterministic fake customers for seeding the emulators (demo, tests, benchmarks).

The people and companies are invented; countries are the four custsync is
built around (US, MX, CL, GB), with unicode names and some optional fields
left empty on purpose. Each emulator turns a :class:`FakeCustomer` into its
own vendor shape in ``seed_fake``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

_FIRST = [
    "Ana",
    "José",
    "Zoë",
    "Łukasz",
    "Chloé",
    "Müller",
    "Siobhán",
    "Björn",
    "María",
    "Tomás",
    "Olivia",
    "Noah",
    "Sofía",
    "Mateo",
    "Amelia",
    "Diego",
    "Ingrid",
    "Renée",
    "Joaquín",
    "Ōta",
]
_LAST = [
    "García",
    "Núñez",
    "O'Brien",
    "Smith",
    "Hernández",
    "Søren",
    "Pérez",
    "Walker",
    "Rojas",
    "Müller",
    "Castillo",
    "Jones",
    "Fernández",
    "Dubois",
    "López",
    "Brown",
    "Muñoz",
    "Taylor",
]
_COMPANY = [
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Hooli",
    "Vandelay",
    "Dunder Mifflin",
    "Señor Café",
    "Zürich Tools",
    "Pingüino",
    "Ñandú Logística",
    "Stark",
    "Wayne",
    "Tyrell",
]
_SUFFIX = {"US": "Inc.", "MX": "S.A. de C.V.", "CL": "SpA", "GB": "Ltd"}
_PLACES = {
    "US": [("Austin", "Texas", "78701"), ("Denver", "Colorado", "80202"), ("Boston", "Massachusetts", "02108")],
    "MX": [("Guadalajara", "Jalisco", "44100"), ("Monterrey", "Nuevo León", "64000"), ("Puebla", "Puebla", "72000")],
    "CL": [("Santiago", "Región Metropolitana de Santiago", "8320000"), ("Valparaíso", "Valparaíso", "2340000")],
    "GB": [("London", "England", "EC1A 1BB"), ("Leeds", "England", "LS1 4AP"), ("Cardiff", "Wales", "CF10 1EP")],
}
_CURRENCY = {"US": "USD", "MX": "MXN", "CL": "CLP", "GB": "GBP"}
_STREETS = ["Av. Vallarta", "Main St", "Calle Moneda", "High Street", "Av. Providencia", "Elm Road"]
_RFC_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass(frozen=True)
class FakeCustomer:
    """One invented customer, in canonical terms (see ``connectors.model``)."""

    kind: str
    name: str
    company_name: str | None
    first_name: str | None
    last_name: str | None
    email: str | None
    phone: str | None
    mobile: str | None
    website: str | None
    address_line1: str | None
    address_line2: str | None
    city: str | None
    state: str | None
    postal_code: str | None
    country: str
    tax_id: str | None
    tax_system: str | None
    invoice_use: str | None
    currency: str
    notes: str | None
    active: bool


#: The default mix: one customer in four from each country, in turn.
DEFAULT_COUNTRIES = ("US", "MX", "CL", "GB")
#: A mix for a Timbrix (Mexican CFDI) target: three Mexican customers in four, each with an RFC, a
#: street and number, a colonia, a city, a state and a 5-digit zip; the fourth, from the US, cannot
#: be invoiced in Mexico and shows what a quarantine looks like.
TIMBRIX_COUNTRIES = ("MX", "MX", "US", "MX")


def fake_customers(count: int, *, seed: int = 7, countries: tuple[str, ...] = DEFAULT_COUNTRIES) -> list[FakeCustomer]:
    """Make ``count`` customers, the same ones for the same seed.

    Args:
        count: how many.
        seed: RNG seed.
        countries: ISO alpha-2 codes to draw from (each must be one of the four).

    Returns:
        The customers; about one in ten is inactive.
    """
    rng = random.Random(seed)
    return [_one(rng, i, countries) for i in range(count)]


def _one(rng: random.Random, i: int, countries: tuple[str, ...]) -> FakeCustomer:
    country = countries[i % len(countries)]
    city, state, postal = rng.choice(_PLACES[country])
    company = i % 3 != 0
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    if company:
        company_name = f"{rng.choice(_COMPANY)} {i} {_SUFFIX[country]}"
        name = company_name
        first_name = last_name = None
    else:
        company_name = None
        name = f"{first} {last}"
        first_name, last_name = first, last
    handle = f"customer{i}"
    street = f"{rng.choice(_STREETS)} {rng.randint(1, 4999)}"
    return FakeCustomer(
        kind="company" if company else "individual",
        name=name,
        company_name=company_name,
        first_name=first_name,
        last_name=last_name,
        email=f"{handle}@example.{'com' if country == 'US' else country.lower()}",
        phone=_phone(rng, country),
        mobile=_phone(rng, country) if i % 4 == 0 else None,
        website=f"https://{handle}.example.com" if company and i % 2 == 0 else None,
        address_line1=street,
        address_line2="Col. Centro" if country == "MX" else (f"Suite {i % 90 + 1}" if i % 5 == 0 else None),
        city=city,
        state=state,
        postal_code=postal,
        country=country,
        tax_id=_tax_id(rng, country, company, i),
        tax_system=("601" if company else "612") if country == "MX" else None,
        invoice_use="G03" if country == "MX" else None,
        currency=_CURRENCY[country],
        notes=f"Imported customer #{i}" if i % 7 == 0 else None,
        active=i % 10 != 9,
    )


def _phone(rng: random.Random, country: str) -> str:
    prefix = {"US": "+1512", "MX": "+5233", "CL": "+569", "GB": "+4420"}[country]
    digits = 10 - (len(prefix) - 1) + (1 if country != "US" else 0)
    return prefix + "".join(str(rng.randint(0, 9)) for _ in range(max(digits, 7)))


def _tax_id(rng: random.Random, country: str, company: bool, i: int) -> str | None:
    if country == "MX":
        letters = "".join(rng.choice(_RFC_LETTERS) for _ in range(3 if company else 4))
        return f"{letters}{rng.randint(500101, 991231)}{rng.choice(_RFC_LETTERS)}{rng.randint(10, 99)}"[
            : 12 if company else 13
        ]
    if country == "CL":
        body = 10_000_000 + i * 7919 % 80_000_000
        return f"{body}-{_rut_check(body)}"
    if country == "GB":
        return f"GB{rng.randint(100000000, 999999999)}" if company else None
    return None


def _rut_check(body: int) -> str:
    total, factor = 0, 2
    for digit in reversed(str(body)):
        total += int(digit) * factor
        factor = 2 if factor == 7 else factor + 1
    rest = 11 - total % 11
    return {11: "0", 10: "K"}.get(rest, str(rest))


__all__ = ["DEFAULT_COUNTRIES", "TIMBRIX_COUNTRIES", "FakeCustomer", "fake_customers"]
