"""The Bigcapital row, after the real server (see :mod:`sandbox.bigcapital`): its columns and keys,
the DTO's checks (class-validator), what the database refuses (a 500), the row written and the
customer GET transforms it into, and the list's sort, keyword search and filter roles.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sandbox._core import is_email, new_record

ADDRESS_PARTS = ("1", "2", "City", "Country", "Email", "Phone", "State")
TEXT_KEYS = (
    "salutation", "firstName", "lastName", "companyName", "displayName", "email",
    "workPhone", "personalPhone", "website", "note",
    *(f"{side}Address{part}" for side in ("billing", "shipping") for part in ADDRESS_PARTS),
)  # fmt: skip
EMAIL_KEYS = ("email", "billingAddressEmail", "shippingAddressEmail")
ZIPCODE_KEYS = frozenset({"billingAddressZipcode", "shippingAddressZipcode"})  # pass the DTO, no column
CREATE_ONLY = ("currencyCode", "openingBalance", "openingBalanceAt", "openingBalanceExchangeRate",
                "openingBalanceBranchId")  # fmt: skip
SEARCH_PARTIAL = ("display_name", "first_name")
SEARCH_EXACT = ("last_name", "company_name", "email", "work_phone", "personal_phone", "website")
#: The row as the database holds it, in the order GET answers it.
ROW_KEYS = (
    "id", "balance", "salutation", "email", "website", "note", "active", "contact_service",
    "contact_type", "currency_code", "opening_balance", "opening_balance_at",
    "opening_balance_exchange_rate", "opening_balance_branch_id", "first_name", "last_name",
    "company_name", "display_name", "work_phone", "personal_phone",
    *(f"billing_address{p}" for p in ("1", "2", "_city", "_country", "_email", "_postcode", "_phone", "_state")),
    *(f"shipping_address{p}" for p in ("1", "2", "_city", "_country", "_email", "_postcode", "_phone", "_state")),
    "created_at", "updated_at", "local_opening_balance", "closing_balance", "contact_normal",
)  # fmt: skip
FORMATTED_TYPES = {"business": "Business", "individual": "Individual"}
DATE_FIELDS = frozenset({"created_at", "opening_balance_at"})
TEXT_COMPARATORS = ("equals", "not_equal", "contains", "not_contain", "starts_with", "ends_with")
TEXT_LIMIT = 255


# -- validation (class-validator, then what the database refuses) -----------------


def validate(body: Mapping[str, Any], *, create: bool) -> list[dict[str, Any]]:
    """The DTO's checks, as class-validator reports them (objects, in property order)."""
    errors: list[dict[str, Any]] = []

    def fail(key: str, **constraints: str) -> None:
        error: dict[str, Any] = {"target": dict(body)}
        if key in body:
            error["value"] = body[key]
        errors.append({**error, "property": key, "children": [], "constraints": constraints})

    required = ("customerType", "currencyCode", "displayName") if create else ("customerType", "displayName")
    for key in required:
        value = body.get(key)
        if value is None or value == "":
            fail(key, isNotEmpty=f"{key} should not be empty", isString=f"{key} must be a string")
        elif not isinstance(value, str):
            fail(key, isString=f"{key} must be a string")
    for key in TEXT_KEYS:
        value = body.get(key)
        if key in required or value is None:
            continue
        if not isinstance(value, str):
            fail(key, isString=f"{key} must be a string")
        elif key in EMAIL_KEYS and not is_email(value) and not (create and key == "email" and value == ""):
            fail(key, isEmail=f"{key} must be an email")  # "" passes only as email on create (recorded)
    if "active" in body and body["active"] is not None and not isinstance(body["active"], bool):
        fail("active", isBoolean="active must be a boolean value")
    opening = body.get("openingBalance") if create else None
    if opening is not None:
        if isinstance(opening, bool) or not isinstance(opening, int | float):
            fail("openingBalance", isNumber="openingBalance must be a number conforming to the specified constraints")
        elif not body.get("openingBalanceAt"):
            fail("openingBalanceAt", isNotEmpty="openingBalanceAt should not be empty")
    return errors


def crash_reason(body: Mapping[str, Any], *, create: bool) -> str | None:
    """Why the database refuses a valid body (the server then answers 500), or ``None``."""
    if ZIPCODE_KEYS & set(body):
        return "Unknown column 'BILLING_ADDRESS_ZIPCODE'"
    for key in TEXT_KEYS:
        value = body.get(key)
        if isinstance(value, str) and len(value) > TEXT_LIMIT:
            return f"Data too long for column '{snake(key)}'"
        if isinstance(value, str) and any(ord(char) > 0xFFFF for char in value):
            return f"Incorrect string value for column '{snake(key)}'"  # utf8mb3 holds 3 bytes at most
    currency = body.get("currencyCode") if create else None
    if isinstance(currency, str) and re.fullmatch(r"[A-Za-z]{3}", currency) is None:
        return "Data too long for column 'currency_code'"
    return None


def apply(record: dict[str, Any], body: Mapping[str, Any]) -> None:
    """Write the DTO's fields that were sent (create-only ones and dropped keys excluded)."""
    for key in (*TEXT_KEYS, "customerType", "active"):
        if key not in body:
            continue
        if key == "customerType":
            record["contact_type"] = body[key]
        elif key == "active":
            if body[key] is not None:
                record["active"] = int(body[key] is True)
        else:
            record[snake(key)] = body[key]


def new_row(records: Mapping[str, Any], row_id: int, body: Mapping[str, Any]) -> dict[str, Any]:
    """The row a valid create makes for ``records`` (not stored yet)."""
    record = new_record(records, dict.fromkeys(ROW_KEYS))
    record.update(
        id=row_id, balance=0, active=1, contact_service="customer", opening_balance=0,
        opening_balance_exchange_rate=1, local_opening_balance=0, closing_balance=0, contact_normal="debit",
    )  # fmt: skip
    apply(record, body)
    record["currency_code"] = body.get("currencyCode")
    record["contact_type"] = body.get("customerType")
    for key in CREATE_ONLY[1:]:
        if body.get(key) is not None:
            record[snake(key)] = body[key]
    opening = body.get("openingBalance")
    if isinstance(opening, int | float) and not isinstance(opening, bool):
        record["balance"] = record["closing_balance"] = record["local_opening_balance"] = opening
    return record


# -- answers ---------------------------------------------------------------------------


def raw_row(record: Mapping[str, Any]) -> dict[str, Any]:
    """The row as create and edit answer it."""
    return dict(record)


def transformed(record: Mapping[str, Any]) -> dict[str, Any]:
    """The customer as GET answers it: the row plus the transformer's fields."""
    kind = record["contact_type"]
    return {
        **record,
        "formatted_balance": f"{record['balance']:.2f}",
        "formatted_opening_balance": f"{record['opening_balance']:.2f}",
        "formatted_opening_balance_at": record["opening_balance_at"] or "",
        "customer_type": kind,
        "formatted_customer_type": FORMATTED_TYPES.get(str(kind), ""),
    }


# -- listing helpers ---------------------------------------------------------------------


def camelise(raw: Mapping[str, Any]) -> dict[str, Any]:
    # The server camelises keys on input; camelCase keys pass through unchanged.
    return {re.sub(r"_([a-z0-9])", lambda m: m.group(1).upper(), k): v for k, v in raw.items()}


def snake(key: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()


def at_least_one(raw: str | None, default: int) -> int | None:
    if raw is None:
        return default
    return int(raw) if raw.isdigit() and int(raw) > 0 else None


def sort_rows(rows: list[dict[str, Any]], column: str, desc: bool) -> list[dict[str, Any]]:
    """The list's order (a total one): ties (every API-made row has created_at null) keep the primary-key
    order either way; NULLs come first ascending and last descending, as in MySQL."""
    rows.sort(key=lambda r: r["id"])
    rows.sort(key=lambda r: sort_key(r, column), reverse=desc)
    return rows


def sort_key(record: Mapping[str, Any], column: str) -> tuple[Any, ...]:
    value = record.get(column)
    if isinstance(value, str):
        value = value.casefold()  # MySQL's default collation ignores case
    return (value is not None, value if value is not None else 0)


def matches_keyword(record: Mapping[str, Any], keyword: str) -> bool:
    needle = keyword.casefold()
    if any(needle in (record.get(f) or "").casefold() for f in SEARCH_PARTIAL):
        return True
    return any(needle == (record.get(f) or "").casefold() for f in SEARCH_EXACT)


def filter_roles(rows: list[dict[str, Any]], roles: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """Apply filter roles, AND-ed; ``None`` when the server would crash on one.

    Date comparators select nothing by date, as recorded: ``after`` (and, by
    the strict reading, ``before``) keep every row that has a date at all,
    ``in`` keeps none.
    """
    for role in roles:
        key, comparator, value = str(role["fieldKey"]), str(role.get("comparator")), role.get("value")
        if key in DATE_FIELDS:
            if comparator in ("after", "before"):
                rows = [r for r in rows if r.get(key) is not None]
            elif comparator == "in":
                rows = []
            else:
                return None
        elif comparator in TEXT_COMPARATORS and isinstance(value, str):
            rows = [r for r in rows if text_test(comparator, str(r.get(key) or "").lower(), value.lower())]
        else:
            return None
    return rows


def text_test(comparator: str, held: str, wanted: str) -> bool:
    tests = {
        "equals": held == wanted,
        "not_equal": held != wanted,
        "contains": wanted in held,
        "not_contain": wanted not in held,
        "starts_with": held.startswith(wanted),
        "ends_with": held.endswith(wanted),
    }
    return tests[comparator]


__all__ = [
    "ADDRESS_PARTS",
    "CREATE_ONLY",
    "DATE_FIELDS",
    "EMAIL_KEYS",
    "FORMATTED_TYPES",
    "ROW_KEYS",
    "SEARCH_EXACT",
    "SEARCH_PARTIAL",
    "TEXT_COMPARATORS",
    "TEXT_KEYS",
    "TEXT_LIMIT",
    "ZIPCODE_KEYS",
    "apply",
    "at_least_one",
    "camelise",
    "crash_reason",
    "filter_roles",
    "matches_keyword",
    "new_row",
    "raw_row",
    "snake",
    "sort_key",
    "sort_rows",
    "text_test",
    "transformed",
    "validate",
]
