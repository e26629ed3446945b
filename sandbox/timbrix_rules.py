"""Timbrix's customer DTO: the SAT catalogs, class-validator's checks, the flat write
fields against the nested read ``address``, and NestJS's error body.

Used by :mod:`sandbox.timbrix` (the emulator) and :mod:`sandbox.timbrix_auth`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import pycountry
from starlette.requests import Request
from starlette.responses import Response

from sandbox._core import is_email, json_error

#: SAT régimen fiscal codes accepted for ``taxSystem``.
TAX_SYSTEMS = (
    "601",
    "603",
    "605",
    "606",
    "607",
    "608",
    "610",
    "611",
    "612",
    "614",
    "615",
    "616",
    "620",
    "621",
    "622",
    "623",
    "624",
    "625",
    "626",
)
#: SAT CFDI 4.0 use codes accepted for ``defaultInvoiceUse``.
INVOICE_USES = (
    "G01",
    "G02",
    "G03",
    *(f"I0{n}" for n in range(1, 9)),
    *(f"D{n:02d}" for n in range(1, 11)),
    "S01",
    "CP01",
    "CN01",
)
#: SAT's generic RFCs (general public, foreign residents): shared by many customers.
GENERIC_RFCS = frozenset({"XAXX010101000", "XEXX010101000"})

# Write name → key inside the read shape's ``address`` (None: top-level, same name).
FIELDS: dict[str, str | None] = {
    "legalName": None,
    "taxId": None,
    "taxSystem": None,
    "email": None,
    "defaultInvoiceUse": None,
    "phone": None,
    "addressStreet": "street",
    "addressExterior": "exterior",
    "addressInterior": "interior",
    "addressNeighborhood": "neighborhood",
    "addressCity": "city",
    "addressMunicipality": "municipality",
    "addressZip": "zip",
    "addressState": "state",
    "addressCountry": "country",
}
#: text limits (not documented): CFDI 4.0's ``Nombre`` holds 254; 255 for the rest.
_LIMITS = {"legalName": 254}
OPTIONAL = frozenset({"phone", "addressInterior", "addressCountry"})
_RFC = re.compile(r"^[A-ZÑ&]{3,4}[0-9]{6}[A-Z0-9]{3}$")
_ZIP = re.compile(r"^[0-9]{5}$")


def error(status: int, message: str | list[str], error: str) -> Response:
    """NestJS's error body, ``{statusCode, message, error}``."""
    return json_error(status, {"statusCode": status, "message": message, "error": error})


def unauthorized(message: str = "Unauthorized") -> Response:
    return error(401, message, "Unauthorized")


def no_route(request: Request) -> Response:
    """Express's 404 for a path or method no controller serves."""
    return error(404, f"Cannot {request.method} {request.url.path}", "Not Found")


def clean(body: Mapping[str, Any], *, partial: bool) -> tuple[dict[str, Any], list[str]]:
    """class-validator on the flat DTO; unknown keys (and a nested ``address``) are dropped."""
    fields: dict[str, Any] = {}
    messages: list[str] = []
    for name in FIELDS:
        if name not in body and (partial or name in OPTIONAL):
            continue
        value = body.get(name)
        if value is None and name in OPTIONAL:  # @IsOptional(): null means "clear"
            fields[name] = None
            continue
        found = _check(name, value)
        if found:
            messages.extend(found)
        else:
            fields[name] = None if name == "addressInterior" and value == "" else value
    return fields, messages


def _check(name: str, value: Any) -> list[str]:
    if not isinstance(value, str):
        # @IsNotEmpty() only fails for a missing value; 142 is "not a string" alone.
        return [f"{name} must be a string"] + (
            [f"{name} should not be empty"] if value is None and name not in OPTIONAL else []
        )
    if not value.strip() and name not in OPTIONAL:
        return [f"{name} should not be empty"]
    limit = _LIMITS.get(name, 255)
    if len(value) > limit:
        return [f"{name} must be shorter than or equal to {limit} characters"]
    rules: dict[str, tuple[Callable[[str], bool], str]] = {
        "taxId": (
            lambda v: bool(_RFC.match(v)),
            "taxId must be a valid RFC (12 characters for companies, 13 for individuals)",
        ),
        "taxSystem": (
            lambda v: v in TAX_SYSTEMS,
            f"taxSystem must be one of the following values: {', '.join(TAX_SYSTEMS)}",
        ),
        "email": (is_email, "email must be an email"),
        "defaultInvoiceUse": (
            lambda v: v in INVOICE_USES,
            f"defaultInvoiceUse must be one of the following values: {', '.join(INVOICE_USES)}",
        ),
        "addressZip": (lambda v: bool(_ZIP.match(v)), "addressZip must be a 5-digit postal code"),
        "addressCountry": (
            lambda v: pycountry.countries.get(alpha_3=v) is not None,
            "addressCountry must be a valid ISO31661 Alpha3 code",
        ),
    }
    rule = rules.get(name)
    return [rule[1]] if rule and not rule[0](value) else []


def apply(record: dict[str, Any], fields: Mapping[str, Any]) -> None:
    for name, value in fields.items():
        if (inner := FIELDS[name]) is None:
            record[name] = value
        else:
            record["address"][inner] = value
    if not record["address"]["interior"]:  # the read shape says null, never ""
        record["address"]["interior"] = None
    record["address"]["country"] = record["address"]["country"] or "MEX"


def split_street(line: str) -> tuple[str, str]:
    # Mexican practice: the exterior number ends the street line; "S/N" when absent.
    match = re.fullmatch(r"(.*?)\s+(\d+[A-Za-z]?)", line.strip())
    return (match.group(1), match.group(2)) if match else (line.strip(), "S/N")
