"""Thredfi's customer serializer: the writable fields, DRF's field checks, the
derived read fields, and the two error bodies.

Used by :mod:`sandbox.thredfi` (the emulator) and :mod:`sandbox.thredfi_auth`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pycountry
from starlette.responses import Response

from sandbox._core import is_email, iso, json_error, utcnow

TEXT = (
    "reference_number", "individual_name", "company_name", "email", "mobile_phone",
    "office_phone", "address_line1", "address_line2", "city", "state_county",
    "postal_code", "country", "vat_number", "notes",
)  # fmt: skip
INTS = ("payment_terms_days", "credit_limit_cents")
WRITABLE = frozenset({*TEXT, *INTS, "external_id", "tax_exempt", "status", "metadata", "transaction_tags"})
#: what a PUT sends for each writable field it leaves out (``status`` is kept: not "cleared").
EMPTY: Mapping[str, Any] = {
    **dict.fromkeys(TEXT, None), **dict.fromkeys(INTS, None), "external_id": None,
    "tax_exempt": False, "metadata": None, "transaction_tags": None,
}  # fmt: skip
_ADDRESS = ("address_line1", "address_line2", "city", "state_county", "postal_code", "country")


def validate(
    body: Mapping[str, Any], *, current: Mapping[str, Any] | None
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """Clean the writable fields as DRF would; unknown and read-only keys are ignored."""
    clean: dict[str, Any] = {}
    details: dict[str, list[str]] = {}
    for key, value in body.items():
        if key not in WRITABLE:
            continue
        problem, clean[key] = _field(key, value)
        if problem:
            details[key] = [problem]
    merged = {**(current or {}), **clean}
    if not details and not (merged.get("individual_name") or merged.get("company_name")):
        details["non_field_errors"] = ["Either individual_name or company_name is required."]
    return clean, details


def _field(key: str, value: Any) -> tuple[str | None, Any]:
    """Return (error, cleaned value) for one writable field."""
    if key in ("metadata", "transaction_tags"):
        default: Any = {} if key == "metadata" else []
        if key == "transaction_tags" and value is not None and not isinstance(value, list):
            return f'Expected a list of items but got type "{type(value).__name__}".', None
        return None, default if value is None else value
    if key == "tax_exempt":
        truth = {True: True, False: False, "true": True, "false": False, "1": True, "0": False}
        found = truth.get(value.lower() if isinstance(value, str) else value)
        return (None, found) if found is not None else ("Must be a valid boolean.", None)
    if key in INTS:
        if value is None:
            return None, None
        if isinstance(value, bool) or not str(value).lstrip("-").isdigit():
            return "A valid integer is required.", None
        if int(value) < 0:
            return "Ensure this value is greater than or equal to 0.", None
        return None, int(value)
    if value is None:
        if key == "status":
            return "This field may not be null.", None
        return None, None if key == "external_id" else ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return "Not a valid string.", None
    text = str(value).strip()  # DRF CharField trims whitespace
    if key != "notes" and len(text) > 255:
        return "Ensure this field has no more than 255 characters.", None
    if key == "email" and text and not is_email(text):
        return "Enter a valid email address.", None
    if key == "country" and text and not (text.isupper() and pycountry.countries.get(alpha_2=text)):
        return f'"{text}" is not a valid choice.', None
    if key == "status" and text.lower() not in ("active", "archived"):
        return f'"{text}" is not a valid choice.', None
    return None, (text or None) if key == "external_id" else text


def apply(record: dict[str, Any], clean: Mapping[str, Any]) -> None:
    for key, value in clean.items():
        if key == "status":
            set_status(record, value)
        else:
            record[key] = value
    derive(record)


def set_status(record: dict[str, Any], status: str) -> None:
    archived = status.lower() == "archived"
    if archived and not record["is_archived"]:
        record["archived_at"] = iso(utcnow())
    elif not archived:
        record["archived_at"] = None
    record["status"] = "ARCHIVED" if archived else "ACTIVE"
    record["is_archived"], record["is_active"] = archived, not archived


def derive(record: dict[str, Any]) -> None:
    record["display_name"] = record["company_name"] or record["individual_name"]
    parts = [str(record[f]) for f in _ADDRESS if record.get(f)]
    record["address_string"] = ", ".join(parts)
    record["full_address"] = "\n".join(parts)
    cents = record["credit_limit_cents"]
    record["credit_limit"] = None if cents is None else cents / 100  # major units


def listed(record: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k != "documents"}


def touch(record: dict[str, Any]) -> None:
    """Bump ``updated_at`` strictly, so two edits within one second still differ."""
    previous = datetime.fromisoformat(str(record["updated_at"]).replace("Z", "+00:00"))
    previous = previous if previous.tzinfo else previous.replace(tzinfo=UTC)
    record["updated_at"] = iso(max(utcnow(), previous + timedelta(seconds=1)))


def error(status: int, code: str, message: str) -> Response:
    """The second error shape, ``{error_code, message, detail, request_id}``."""
    request_id = f"req_{uuid.uuid4().hex[:16]}"
    body = {"error_code": code, "message": message, "detail": {}, "request_id": request_id}
    return json_error(status, body)


def invalid(
    details: Mapping[str, list[str]],
    status: int = 400,
    error: str = "validation_error",
    code: str = "validation_error",
) -> Response:
    """The first error shape, ``{error, error_code, details}``."""
    return json_error(status, {"error": error, "error_code": code, "details": details})
