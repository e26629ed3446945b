"""Emulator of Bigcapital's customer API (connector-apis.md, section 1).

Quirks kept on purpose, because the connector must cope with them:

- requests may be camelCase or snake_case (snake keys are camelised on input),
  responses are snake_case; unknown body keys are dropped without an error;
- the postcode is written as ``billingAddressZipcode`` / ``shippingAddressZipcode``
  and read back as ``billing_address_postcode``; a ``...Postcode`` key is dropped;
- ``inactiveMode=false`` (the default) lists only active customers and ``true``
  only inactive ones, so a full pull needs both;
- ``PUT`` needs ``customerType`` and ``displayName`` every time and ignores
  currency and opening balance;
- activating an active contact (or the reverse) is a 400, not a no-op.

Choices where the doc is silent: create answers 201 with the customer object
itself (the OpenAPI seed's ``CustomerResponseDto``, not a ``{id, message}``
envelope); ``PUT`` answers 200 with the customer; ``DELETE`` answers 200 with
``{id, message}``; a missing customer is a 404 in the business-error shape
(``CUSTOMER_NOT_FOUND``). Ids are never reused, even after ``reset``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pycountry
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sandbox._core import Emulator, Handler, is_email, iso, json_error, read_json, utcnow
from sandbox.fake import DEFAULT_COUNTRIES, fake_customers

SANDBOX_API_KEY = "bc_d61fd102bb302717dbfafe5e7f487bc3b927e3850751142e1fcb0034e67f31dcc4e7c2ae375e7fe992375074ce6181fe"
"""The sandbox's API key (``bc_`` + 96 hex characters, as real keys look)."""
SANDBOX_ORGANIZATION_ID = "custsync-sandbox-org"
"""The organization the sandbox key belongs to (``organization-id`` header)."""
DEFAULT_PAGE_SIZE = 12
SORT_COLUMNS = (
    "first_name", "last_name", "display_name", "email", "work_phone", "personal_phone",
    "company_name", "website", "created_at", "balance", "opening_balance",
    "opening_balance_at", "currency_code",
)  # fmt: skip
CUSTOMER_TYPES = ("business", "individual")

_ADDRESS = ("1", "2", "City", "State", "Country", "Zipcode", "Phone", "Email")
_TEXT = (
    "salutation", "firstName", "lastName", "companyName", "displayName", "email",
    "workPhone", "personalPhone", "website",
    *(f"{side}Address{part}" for side in ("billing", "shipping") for part in _ADDRESS),
)  # fmt: skip
_EMAILS = frozenset({"email", "billingAddressEmail", "shippingAddressEmail"})
_CREATE_ONLY = ("currencyCode", "openingBalance", "openingBalanceAt")
_SEARCH_PARTIAL = ("display_name", "first_name")
_SEARCH_EXACT = ("last_name", "company_name", "email", "work_phone", "personal_phone", "website")


class BigcapitalEmulator(Emulator):
    """In-memory Bigcapital: ``/api/customers`` and ``/api/contacts/{id}/...``.

    Args:
        api_key: the one API key accepted as ``Authorization: Bearer <key>``.
        organization_id: the key's organization; an ``organization-id`` header,
            when sent, must match it.
        fault_seed: seed of the fault RNG.
    """

    system = "bigcapital"

    def __init__(
        self,
        *,
        api_key: str = SANDBOX_API_KEY,
        organization_id: str = SANDBOX_ORGANIZATION_ID,
        fault_seed: int = 0,
    ) -> None:
        self.api_key = api_key
        self.organization_id = organization_id
        self._next_id = 1
        super().__init__(fault_seed=fault_seed)

    def routes(self) -> list[BaseRoute]:
        """The vendor routes; each also answers with a trailing slash, as Express does."""
        table: list[tuple[str, Handler, str]] = [
            ("/api/customers", self._list, "GET"),
            ("/api/customers", self._create, "POST"),
            ("/api/customers/{id}", self._get, "GET"),
            ("/api/customers/{id}", self._edit, "PUT"),
            ("/api/customers/{id}", self._delete, "DELETE"),
            ("/api/contacts/{id}/activate", self._activate, "PATCH"),
            ("/api/contacts/{id}/inactivate", self._inactivate, "PATCH"),
        ]
        return [
            Route(path + slash, self._authed(handler), methods=[method])
            for path, handler, method in table
            for slash in ("", "/")
        ]

    # -- admin / seeding ---------------------------------------------------

    def admin_seed(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """Create a customer from a create-style body (camelCase or snake_case).

        The web app's form pre-fills the customer type and the base currency,
        so those default to ``business`` / ``USD`` here; everything else is
        validated as the API would.

        Raises:
            ValueError: the body fails validation.
        """
        body = {"customerType": "business", "currencyCode": "USD", **_camelise(payload)}
        clean, errors = _validate(body, create=True)
        if errors:
            raise ValueError("; ".join(errors))
        return self._insert(clean)

    def admin_edit(self, record: dict[str, Any], changes: Mapping[str, Any]) -> None:
        """Apply a web-app edit in the read shape; bumps ``updated_at`` on a change."""
        changed = False
        for key, value in changes.items():
            if key in record and key not in ("id", "created_at", "updated_at"):
                changed |= record[key] != value
                record[key] = value
        if "updated_at" in changes:  # tests may pin it
            record["updated_at"] = changes["updated_at"]
        elif changed:
            _touch(record)

    def seed_fake(
        self, count: int, seed: int = 7, countries: tuple[str, ...] = DEFAULT_COUNTRIES
    ) -> list[dict[str, Any]]:
        """Store ``count`` deterministic fake customers (country as a name)."""
        created = []
        for fake in fake_customers(count, seed=seed, countries=countries):
            country = pycountry.countries.get(alpha_2=fake.country)
            created.append(
                self.admin_seed(
                    {
                        "customerType": "business" if fake.kind == "company" else "individual",
                        "currencyCode": fake.currency,
                        "displayName": fake.name,
                        "companyName": fake.company_name,
                        "firstName": fake.first_name,
                        "lastName": fake.last_name,
                        "email": fake.email,
                        "workPhone": fake.phone,
                        "personalPhone": fake.mobile,
                        "website": fake.website,
                        "billingAddress1": fake.address_line1,
                        "billingAddress2": fake.address_line2,
                        "billingAddressCity": fake.city,
                        "billingAddressState": fake.state,
                        "billingAddressZipcode": fake.postal_code,
                        "billingAddressCountry": country.name if country else fake.country,
                        "note": fake.notes,
                        "active": fake.active,
                    }
                )
            )
        return created

    # -- handlers -----------------------------------------------------------

    def _authed(self, handler: Handler) -> Handler:
        async def guarded(request: Request) -> Response:
            auth = request.headers.get("authorization", "")
            org = request.headers.get("organization-id")
            if auth != f"Bearer {self.api_key}" or (org is not None and org != self.organization_id):
                return json_error(401, {"statusCode": 401, "message": "Unauthorized"})
            return await handler(request)

        return guarded

    async def _list(self, request: Request) -> Response:
        query = _camelise(request.query_params)
        page = _positive(query.get("page"), 1)
        size = _positive(query.get("pageSize"), DEFAULT_PAGE_SIZE)
        if page is None or size is None:
            return _bad_request(["page and pageSize must be positive integers"])
        column = query.get("columnSortBy") or "created_at"
        if column not in SORT_COLUMNS:
            return _business_error("SORT_COLUMN_NOT_FOUND", "The sort column was not found.")
        order = (query.get("sortOrder") or "desc").lower()
        if order not in ("asc", "desc"):
            return _bad_request(["sortOrder must be one of the following values: asc, desc"])
        inactive = (query.get("inactiveMode") or "false").lower() in ("true", "1")
        rows = [r for r in self.records.values() if r["active"] is not inactive]
        if keyword := query.get("searchKeyword"):
            rows = [r for r in rows if _matches_keyword(r, keyword)]
        if roles := query.get("stringifiedFilterRoles"):
            try:
                rows = _filter_roles(rows, json.loads(roles))
            except (ValueError, TypeError, KeyError):
                return _bad_request(["stringifiedFilterRoles must be a JSON array of filter roles"])
        # NULLs first ascending (MySQL); the id tie-break keeps paging stable.
        rows.sort(key=lambda r: _sort_key(r, column), reverse=order == "desc")
        start = (page - 1) * size
        return JSONResponse(
            {
                "customers": rows[start : start + size],
                "pagination": {"total": len(rows), "page": page, "page_size": size},
                "filter_meta": {"sort_order": order, "column_sort_by": column},
            }
        )

    async def _get(self, request: Request) -> Response:
        record, error = self._find(request)
        return error or JSONResponse(record)

    async def _create(self, request: Request) -> Response:
        body = await read_json(request)
        if not isinstance(body, dict):
            return _bad_request(["Unexpected token in JSON body"])
        clean, errors = _validate(_camelise(body), create=True)
        if errors:
            return _bad_request(errors)
        record = self._insert(clean)
        self.count_write()
        return JSONResponse(record, status_code=201)

    async def _edit(self, request: Request) -> Response:
        record, error = self._find(request)
        if error:
            return error
        body = await read_json(request)
        if not isinstance(body, dict):
            return _bad_request(["Unexpected token in JSON body"])
        clean, errors = _validate(_camelise(body), create=False)
        if errors:
            return _bad_request(errors)
        if _apply(record, clean):
            _touch(record)
        self.count_write()
        return JSONResponse(record)

    async def _delete(self, request: Request) -> Response:
        record, error = self._find(request)
        if error:
            return error
        del self.records[str(record["id"])]
        self.count_write()
        return JSONResponse({"id": record["id"], "message": "The customer has been deleted successfully."})

    async def _activate(self, request: Request) -> Response:
        return await self._set_active(request, True)

    async def _inactivate(self, request: Request) -> Response:
        return await self._set_active(request, False)

    async def _set_active(self, request: Request, active: bool) -> Response:
        record, error = self._find(request)
        if error:
            return error
        if record["active"] is active:
            kind = "ACTIVE" if active else "INACTIVE"
            return _business_error(f"CONTACT_ALREADY_{kind}", f"The contact is already {kind.lower()}.")
        record["active"] = active
        _touch(record)
        self.count_write()
        return JSONResponse({"id": record["id"], "activated" if active else "inactivated": True})

    # -- store -------------------------------------------------------------

    def _find(self, request: Request) -> tuple[dict[str, Any], Response | None]:
        raw = request.path_params["id"]
        if not raw.isdigit():  # NestJS ParseIntPipe
            body = {"statusCode": 400, "message": "Validation failed (numeric string is expected)",
                    "error": "Bad Request"}  # fmt: skip
            return {}, json_error(400, body)
        record = self.records.get(str(int(raw)))
        if record is None:
            return {}, json_error(404, _errors(404, "CUSTOMER_NOT_FOUND", "The given customer not found."))
        return record, None

    def _insert(self, clean: Mapping[str, Any]) -> dict[str, Any]:
        stamp = iso(utcnow())
        record: dict[str, Any] = {
            "id": self._next_id,
            "contact_type": "customer",
            "customer_type": None,
            "currency_code": None,
            **{_snake(key): None for key in _TEXT},
            "note": None,
            "active": True,
            "balance": 0,
            "opening_balance": 0,
            "opening_balance_at": None,
            "opening_balance_exchange_rate": 1,
            "local_opening_balance": 0,
            "closing_balance": 0,
            "created_at": stamp,
            "updated_at": stamp,
        }
        _apply(record, clean)
        opening = clean.get("openingBalance")
        if opening is not None:
            record["opening_balance"] = record["local_opening_balance"] = opening
            record["balance"] = record["closing_balance"] = opening
            record["opening_balance_at"] = clean.get("openingBalanceAt")
        record["currency_code"] = clean["currencyCode"]
        self.records[str(self._next_id)] = record
        self._next_id += 1
        return record


# -- validation and mapping ---------------------------------------------------


def _validate(body: Mapping[str, Any], *, create: bool) -> tuple[dict[str, Any], list[str]]:
    """Keep the DTO's keys and validate them as class-validator would."""
    allowed = {*_TEXT, "customerType", "note", "active", *(_CREATE_ONLY if create else ())}
    clean = {k: v for k, v in body.items() if k in allowed}
    errors: list[str] = []
    required = ("customerType", "currencyCode", "displayName") if create else (
        "customerType", "displayName")  # fmt: skip
    for key in required:
        if clean.get(key) in (None, ""):
            errors.append(f"{key} should not be empty")
    for key, value in clean.items():
        if value in (None, ""):  # Bigcapital's IsOptional also skips ""
            continue
        if key == "active":
            if not isinstance(value, bool):
                errors.append("active must be a boolean value")
        elif key == "openingBalance":
            if isinstance(value, bool) or not isinstance(value, int | float):
                errors.append("openingBalance must be a number conforming to the specified constraints")
            elif not clean.get("openingBalanceAt"):
                errors.append("openingBalanceAt is required when openingBalance is provided")
        elif not isinstance(value, str):
            errors.append(f"{key} must be a string")
        elif key != "note" and len(value) > 255:
            errors.append(f"{key} must be shorter than or equal to 255 characters")
        elif key in _EMAILS and not is_email(value):
            errors.append(f"{key} must be an email")
        elif key == "customerType" and value not in CUSTOMER_TYPES:
            errors.append("customerType must be one of the following values: business, individual")
        elif key == "currencyCode" and not re.fullmatch(r"[A-Za-z]{3}", value):
            errors.append("currencyCode must be a valid ISO4217 currency code")
    return clean, errors


def _apply(record: dict[str, Any], clean: Mapping[str, Any]) -> bool:
    """Write validated fields (create-only ones excluded); True when something changed."""
    changed = False
    for key, value in clean.items():
        if key in _CREATE_ONLY:
            continue
        field = _snake(key)
        changed |= record.get(field) != value
        record[field] = value
    return changed


def _camelise(raw: Mapping[str, Any]) -> dict[str, Any]:
    # The server camelises keys on input; camelCase keys pass through unchanged.
    return {re.sub(r"_([a-z0-9])", lambda m: m.group(1).upper(), k): v for k, v in raw.items()}


def _snake(key: str) -> str:
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()
    return snake.replace("_zipcode", "_postcode")  # the storage column's name


def _positive(raw: str | None, default: int) -> int | None:
    if raw in (None, ""):
        return default
    return int(raw) if raw.isdigit() and int(raw) > 0 else None


def _sort_key(record: Mapping[str, Any], column: str) -> tuple[Any, ...]:
    value = record.get(column)
    if isinstance(value, str):
        value = value.casefold()  # MySQL's default collation ignores case
    return (value is not None, value if value is not None else 0, record["id"])


def _matches_keyword(record: Mapping[str, Any], keyword: str) -> bool:
    needle = keyword.casefold()
    if any(needle in (record.get(f) or "").casefold() for f in _SEARCH_PARTIAL):
        return True
    return any(needle == (record.get(f) or "").casefold() for f in _SEARCH_EXACT)


def _touch(record: dict[str, Any]) -> None:
    """Bump ``updated_at`` strictly, so two edits within one second still differ."""
    previous = datetime.fromisoformat(str(record["updated_at"]).replace("Z", "+00:00"))
    previous = previous if previous.tzinfo else previous.replace(tzinfo=UTC)
    record["updated_at"] = iso(max(utcnow(), previous + timedelta(seconds=1)))


def _errors(status: int, kind: str, message: str) -> dict[str, Any]:
    return {"errors": [{"statusCode": status, "type": kind, "message": message, "payload": None}]}


def _business_error(kind: str, message: str) -> Response:
    return json_error(400, _errors(400, kind, message))


def _bad_request(messages: Iterable[str]) -> Response:
    return json_error(400, {"statusCode": 400, "message": list(messages), "error": "Bad Request"})


__all__ = [
    "CUSTOMER_TYPES",
    "DEFAULT_PAGE_SIZE",
    "SANDBOX_API_KEY",
    "SANDBOX_ORGANIZATION_ID",
    "SORT_COLUMNS",
    "BigcapitalEmulator",
]


def _filter_roles(rows: list[dict[str, Any]], roles: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Apply ``stringifiedFilterRoles`` (doc 1.5): date and text comparators, AND-ed.

    Dates compare on the day, as Bigcapital's date comparators do: ``after``
    2026-01-05 keeps records created on the 6th and later.
    """
    for role in roles:
        key = str(role["fieldKey"])
        comparator, value = str(role["comparator"]), str(role["value"])
        if key.endswith("_at"):
            day = value[:10]
            if comparator == "after":
                rows = [r for r in rows if str(r.get(key) or "")[:10] > day]
            elif comparator == "before":
                rows = [r for r in rows if str(r.get(key) or "")[:10] < day]
            elif comparator == "in":
                rows = [r for r in rows if str(r.get(key) or "")[:10] == day]
            else:
                raise ValueError(comparator)
        else:
            rows = [r for r in rows if _text_test(comparator, str(r.get(key) or "").lower(), value.lower())]
    return rows


def _text_test(comparator: str, held: str, wanted: str) -> bool:
    if comparator == "equals":
        return held == wanted
    if comparator == "contains":
        return wanted in held
    if comparator == "starts_with":
        return held.startswith(wanted)
    raise ValueError(comparator)
