"""Piriod's catalogs: the countries (as ``country`` reads back) and the (assumed) states of ``GET /states/``.

Used by :mod:`sandbox.piriod` (the emulator) and :mod:`sandbox.piriod_rules`.
"""

from __future__ import annotations

import unicodedata
from typing import Any, TypedDict

import phonenumbers
import pycountry

#: countries whose tax agency Piriod integrates with (RUT, RFC, NIT).
REGULATED_COUNTRIES = frozenset({"CL", "MX", "CO"})


class PiriodState(TypedDict):
    """One entry of the states catalog, as ``GET /states/`` returns it."""

    id: int
    name: str
    country: str


# Ids are stable: each country owns a block, entries numbered in this order.
_STATE_NAMES: dict[str, tuple[int, str]] = {
    "CL": (
        1,
        "Arica y Parinacota|Tarapacá|Antofagasta|Atacama|Coquimbo|Valparaíso|"
        "Región Metropolitana de Santiago|Libertador General Bernardo O'Higgins|Maule|"
        "Ñuble|Biobío|La Araucanía|Los Ríos|Los Lagos|"
        "Aysén del General Carlos Ibáñez del Campo|Magallanes y de la Antártica Chilena",
    ),
    "MX": (
        101,
        "Aguascalientes|Baja California|Baja California Sur|Campeche|Chiapas|"
        "Chihuahua|Ciudad de México|Coahuila|Colima|Durango|Estado de México|Guanajuato|"
        "Guerrero|Hidalgo|Jalisco|Michoacán|Morelos|Nayarit|Nuevo León|Oaxaca|Puebla|"
        "Querétaro|Quintana Roo|San Luis Potosí|Sinaloa|Sonora|Tabasco|Tamaulipas|"
        "Tlaxcala|Veracruz|Yucatán|Zacatecas",
    ),
    "US": (
        201,
        "Alabama|Alaska|Arizona|Arkansas|California|Colorado|Connecticut|Delaware|"
        "District of Columbia|Florida|Georgia|Hawaii|Idaho|Illinois|Indiana|Iowa|Kansas|"
        "Kentucky|Louisiana|Maine|Maryland|Massachusetts|Michigan|Minnesota|Mississippi|"
        "Missouri|Montana|Nebraska|Nevada|New Hampshire|New Jersey|New Mexico|New York|"
        "North Carolina|North Dakota|Ohio|Oklahoma|Oregon|Pennsylvania|Rhode Island|"
        "South Carolina|South Dakota|Tennessee|Texas|Utah|Vermont|Virginia|Washington|"
        "West Virginia|Wisconsin|Wyoming",
    ),
    "GB": (301, "England|Scotland|Wales|Northern Ireland"),
}
STATES: dict[int, PiriodState] = {
    base + i: {"id": base + i, "name": name, "country": country}
    for country, (base, names) in _STATE_NAMES.items()
    for i, name in enumerate(names.split("|"))
}
# pycountry has no country → currency table; unknown countries fall back to USD.
_CURRENCIES = {
    "CL": "CLP",
    "MX": "MXN",
    "US": "USD",
    "GB": "GBP",
    "CO": "COP",
    "PE": "PEN",
    "AR": "ARS",
    "BR": "BRL",
    "UY": "UYU",
    "CA": "CAD",
    "ES": "EUR",
    "DE": "EUR",
    "FR": "EUR",
    "IT": "EUR",
    "PT": "EUR",
    "NL": "EUR",
    "IE": "EUR",
}


def country_object(code: str) -> dict[str, Any] | None:
    """The read shape of a country id (``None`` when the id is unknown)."""
    country = pycountry.countries.get(alpha_2=code) if len(code) == 2 else None
    if country is None:
        return None
    prefix = phonenumbers.country_code_for_region(code)
    return {
        "id": code,
        "name": getattr(country, "common_name", country.name),
        "code": f"+{prefix}" if prefix else "",
        "has_regulation": code in REGULATED_COUNTRIES,
        "currencies": [_CURRENCIES.get(code, "USD")],
    }


def state_id(country: str, name: str) -> int | None:
    """Find a state id by name (case and accent insensitive), as a user picks it."""
    wanted = fold(name)
    return next((s["id"] for s in STATES.values() if s["country"] == country and fold(s["name"]) == wanted), None)


def resolve_state(country: str, value: Any) -> int | None:
    """A state id from an id, a name or a read-shaped object, as admin seeding takes it.

    Raises:
        ValueError: no such state (in that country, for a name).
    """
    if value is None:
        return None
    if isinstance(value, dict):
        value = value["id"]
    if isinstance(value, int) or str(value).isdigit():
        if int(value) not in STATES:
            raise ValueError(f"unknown Piriod state id {value}")
        return int(value)
    found = state_id(country, str(value))
    if found is None:
        raise ValueError(f"no Piriod state named {value!r} in {country}")
    return found


def fold(text: str) -> str:
    """A name without case or accents, for matching state names."""
    decomposed = unicodedata.normalize("NFKD", text.casefold().strip())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))
