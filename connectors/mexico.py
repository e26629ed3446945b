"""Mexican conventions: an RFC's kind, and street lines split the way a CFDI holds them.

``address_line1`` "Av. Vallarta 3000 Int. 4" is street "Av. Vallarta", exterior
"3000" (the last word when it holds a digit, else "S/N") and interior "4" (only
after an exterior and "Int."/"Interior"); ``address_line2`` "Col. Juárez" is the
colonia "Juárez". The converters here map Timbrix's fields by them
(:mod:`connectors.fields`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from connectors.errors import FieldMappingError
from connectors.fields import Reading, Writing
from connectors.model import Customer, Kind, clean, updated

# "Int. 4" counts as an interior only after an exterior: "Calle Interior 5" is a street.
_INTERIOR = re.compile(r"(?P<rest>.+?\s+(?:\S*\d\S*|S/N))\s+(?:Int\.?|Interior)\s*(?P<int>\S+)", re.I)
_COLONIA = re.compile(r"^(?:colonia|col\.?)(?:\s+|(?<=\.))", re.I)  # not "Colima"
_RFC_KINDS: Mapping[int, Kind] = {12: "company", 13: "individual"}


def rfc_kind(tax_id: str | None) -> Kind | None:
    """12 characters: a company's RFC; 13: a person's; otherwise unknown."""
    return _RFC_KINDS.get(len(tax_id or ""))


def split_street(line: str) -> tuple[str, str, str | None]:
    """(street, exterior, interior) of "Av. Vallarta 3000 Int. 4"; no number is "S/N"."""
    line, interior = " ".join(line.split()), None
    if found := _INTERIOR.fullmatch(line):
        line, interior = found["rest"], found["int"]
    street, _, last = line.rpartition(" ")
    if street and (last.upper() == "S/N" or any(c.isdigit() for c in last)):
        return street, last, interior
    return line, "S/N", interior  # sin número


def join_street(street: str | None, exterior: str | None, interior: str | None) -> str:
    """ "Av. Vallarta 3000 Int. 4" from its parts (a missing exterior is "S/N")."""
    parts = [street, exterior or "S/N", f"Int. {interior}" if interior else None]
    return " ".join(p for p in parts if p)


def colonia(line: str | None) -> str | None:
    """The colonia of "Col. Juárez": the line without its "Col."/"Colonia" prefix."""
    return clean(_COLONIA.sub("", " ".join(line.split()))) if line else None


def street_line(value: Any, reading: Reading) -> str | None:
    """Timbrix's ``address`` object (street, exterior, interior) as one street line."""
    address = reading.raw.get("address") or {}
    if not isinstance(address, Mapping):
        raise FieldMappingError("address_line1", "the timbrix address is not an object")
    street = clean(address.get("street"))
    return join_street(street, clean(address.get("exterior")), clean(address.get("interior"))) if street else None


def street_part(index: int) -> Callable[[Any, Writing], Any]:
    """An encoder of one part of the street line: 0 street, 1 exterior, 2 interior."""

    def encode(value: Any, writing: Writing) -> Any:
        return split_street(value)[index] if value else None

    return encode


def colonia_line(value: Any, reading: Reading) -> str | None:
    """A colonia read as the line "Col. Juárez"."""
    found = clean(value)
    return f"Col. {found}" if found else None


def to_colonia(value: Any, writing: Writing) -> str | None:
    """The line "Col. Juárez" written as its colonia, "Juárez"."""
    return colonia(value)


def kind_by_rfc(value: Any, reading: Reading) -> Kind:
    """The kind the RFC's length says; a company when it says none."""
    return rfc_kind(reading.got.get("tax_id")) or "company"


def name_of_company(value: Any, reading: Reading) -> str | None:
    """The company name of a company: its (legal) name; ``None`` for a person."""
    return reading.got["name"] if reading.got.get("kind") == "company" else None


def legal_name(value: Any, reading: Reading) -> str:
    """Timbrix's ``legalName``, required."""
    name = clean(value, "name")
    clean(reading.raw.get("taxId"), "tax_id")  # a JSON object there is reported before a missing name
    if name is None:
        raise FieldMappingError("name", "the timbrix record has no legalName")
    return name


def mexican_address(shaped: Customer) -> Customer:
    """A customer as Timbrix holds it: the RFC's kind, its address conventions, Mexico by default."""
    kind = rfc_kind(shaped.tax_id) or shaped.kind
    line1, line2 = shaped.address_line1, shaped.address_line2
    changes = {
        "kind": kind,
        "company_name": shaped.name if kind == "company" else None,
        "address_line1": join_street(*split_street(line1)) if line1 else None,
        "address_line2": f"Col. {colonia(line2)}" if colonia(line2) else None,
        "country": shaped.country or "MX",
    }
    return updated(shaped, changes)


__all__ = [
    "colonia",
    "colonia_line",
    "join_street",
    "kind_by_rfc",
    "legal_name",
    "mexican_address",
    "name_of_company",
    "rfc_kind",
    "split_street",
    "street_line",
    "street_part",
    "to_colonia",
]
