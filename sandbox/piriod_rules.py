"""Piriod's customer serializer (DRF): each field's checks and messages, the cross-field
rules, and how a clean write lands on a record.

Used by :mod:`sandbox.piriod`, the emulator.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import pycountry
from starlette.responses import Response

from sandbox._core import is_email, json_error
from sandbox.piriod_catalog import REGULATED_COUNTRIES, STATES, country_object

_CHAR_LIMITS = {
    "name": 100,
    "address": 64,
    "email": 254,
    "phone": 16,
    "website": 200,
    "zip_code": 16,
    "manager": 64,
    "reference": 64,
    "tax_id": 32,
}
REQUIRED = ("name", "address")
_BOOLS = ("send_invoices", "send_collections", "send_vouchers")
STATUSES = ("active", "archived", "pending")
_TRUE = {"true", "t", "yes", "y", "on", "1"}
_FALSE = {"false", "f", "no", "n", "off", "0"}
_URL = re.compile(r"^https?://[^\s/$.?#][^\s]*\.[^\s]+$", re.IGNORECASE)
SEED_FIELDS = frozenset({*_CHAR_LIMITS, *_BOOLS, "status", "currency", "tax_settings", "metadata"})
REQUIRED_MSG = "This field is required."
BAD_CHOICE = "Select a valid choice. That choice is not one of the available choices."


def clean(
    body: Mapping[str, Any], record: dict[str, Any] | None, *, account_country: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Validate a write body like the DRF serializer; ``record`` is set for updates.

    ``account_country`` is the account's own: the default country, and the one whose
    regulated tax id is required.
    """
    fields: dict[str, Any] = {}
    errors: dict[str, Any] = {n: [REQUIRED_MSG] for n in REQUIRED if record is None and n not in body}
    for name, cleaner in _CLEANERS.items():
        if name in body:
            try:
                fields[name] = cleaner(name, body[name])
            except _Invalid as exc:
                errors[name] = exc.detail
    # Cross-field rules look at the record as it would be after the write; an
    # update is only held to them when it touches the fields involved.
    old_country = record["country"]["id"] if record and record["country"] else None
    country = fields.get("country", old_country or account_country)
    state = fields.get("state", record["state"]["id"] if record and record["state"] else None)
    if (
        state is not None
        and STATES[state]["country"] != country
        and "state" not in errors
        and (record is None or {"country", "state"} & fields.keys())
    ):
        errors["state"] = [f"The state does not belong to country {country}."]
    tax_id = fields.get("tax_id", record["tax_id"] if record else None)
    if (
        country in REGULATED_COUNTRIES
        and country == account_country
        and not tax_id
        and "tax_id" not in errors
        and (record is None or {"country", "tax_id"} & fields.keys())
    ):
        errors["tax_id"] = [REQUIRED_MSG]
    if record is None:
        fields.setdefault("country", country)
    return fields, errors


def apply(record: dict[str, Any], fields: Mapping[str, Any]) -> None:
    """Store clean (or admin) fields; ids of a country or state become their read objects."""
    for key, value in fields.items():
        if key == "country":
            record["country"] = country_object(value) if isinstance(value, str) else value
        elif key == "state":
            record["state"] = dict(STATES[value]) if isinstance(value, int) else value
        else:
            record[key] = value


def blank(record_id: str, country: dict[str, Any] | None, *, test_mode: bool, now: str) -> dict[str, Any]:
    """A new customer in the read shape, with the server's defaults, before its fields are applied."""
    return {
        "id": record_id,
        "name": "",
        "address": "",
        "country": country,
        "state": None,
        "currency": country["currencies"][0] if country else "USD",
        "email": None,
        "phone": None,
        "website": None,
        "zip_code": None,
        "manager": None,
        "reference": None,
        "tax_id": None,
        "tax_settings": {},
        "metadata": {},
        "send_invoices": True,
        "send_collections": True,
        "send_vouchers": True,
        "status": "active",
        "sources": [],
        "contacts": [],
        "aggregations": {"sales": 0.0, "sales_current_period": 0.0, "balance": 0.0},
        "test_mode": test_mode,
        "created": now,
        "updated": now,
    }


class _Invalid(Exception):  # noqa: N818 - internal signal, not an error to report
    def __init__(self, detail: list[str] | dict[str, list[str]]) -> None:
        self.detail = detail


def _char(name: str, value: Any) -> str | None:
    if value is None:
        if name in REQUIRED:
            raise _Invalid(["This field may not be null."])
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _Invalid(["Not a valid string."])
    text = str(value).strip()  # DRF's CharField trims whitespace
    limit = _CHAR_LIMITS[name]
    if not text and name in REQUIRED:
        raise _Invalid(["This field may not be blank."])
    if len(text) > limit:
        raise _Invalid([f"Ensure this field has no more than {limit} characters."])
    if text and name == "email" and not is_email(text):
        raise _Invalid(["Enter a valid email address."])
    if text and name == "website" and not _URL.match(text):
        raise _Invalid(["Enter a valid URL."])
    return text


def _related(name: str, value: Any) -> str | int | None:
    # DRF's PrimaryKeyRelatedField messages; ``state`` may be null, ``country`` not.
    if value is None:
        if name == "state":
            return None
        raise _Invalid(["This field may not be null."])
    pk = str(value)
    typed = (
        isinstance(value, str)
        if name == "country"
        else (isinstance(value, int | str) and not isinstance(value, bool) and re.fullmatch(r"[0-9]+", pk) is not None)
    )
    if not typed:
        raise _Invalid([f"Incorrect type. Expected pk value, received {type(value).__name__}."])
    if name == "state" and int(pk) in STATES:
        return int(pk)
    if name == "country" and country_object(pk) is not None:
        return pk
    raise _Invalid([f'Invalid pk "{pk}" - object does not exist.'])


def _choice(name: str, value: Any) -> str:
    valid = (
        isinstance(value, str) and pycountry.currencies.get(alpha_3=value) is not None
        if name == "currency"
        else value in STATUSES
    )
    if not valid:
        raise _Invalid([f'"{value}" is not a valid choice.'])
    return str(value)


def _boolean(name: str, value: Any) -> bool:
    text = str(value).lower() if isinstance(value, str | int) else ""
    if value is True or value is False or text in _TRUE | _FALSE:
        return value is True or text in _TRUE
    raise _Invalid(["Must be a valid boolean."])


def _mapping(name: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        kind = "NoneType" if value is None else type(value).__name__
        raise _Invalid([f'Expected a dictionary of items but got type "{kind}".'])
    if name != "metadata":
        return value
    # metadata values are strings (numbers are coerced); errors nest per key.
    nested = {
        k: ["This field may not be null."] if v is None else ["Not a valid string."]
        for k, v in value.items()
        if v is None or isinstance(v, bool) or not isinstance(v, str | int | float)
    }
    if nested:
        raise _Invalid(nested)
    return {k: str(v) for k, v in value.items()}


_CLEANERS: dict[str, Callable[[str, Any], Any]] = {
    **dict.fromkeys(_CHAR_LIMITS, _char),
    "country": _related,
    "state": _related,
    "currency": _choice,
    **dict.fromkeys(_BOOLS, _boolean),
    "status": _choice,
    "tax_settings": _mapping,
    "metadata": _mapping,
}


def body_error(body: Any) -> Response | None:
    if body is None:
        return json_error(400, {"detail": "JSON parse error - Expecting value: line 1 column 1"})
    if not isinstance(body, dict):
        kind = type(body).__name__
        return json_error(400, {"non_field_errors": [f"Invalid data. Expected a dictionary, but got {kind}."]})
    return None
