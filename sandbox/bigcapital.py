"""Emulator of Bigcapital's customer API, after the real server's recorded answers.

The source of truth is ``recordings/bigcapital/real-server-exchanges.md`` (the
open-source server, commit af80afcf, run on MariaDB); where it is silent,
connector-apis.md section 1, in its strictest reading. Replayed exchange by
exchange in ``tests/sandbox/test_bigcapital_recordings.py``.

Kept on purpose, because the connector must cope with them:

- requests may be camelCase or snake_case (snake keys are camelised), answers
  are snake_case; keys the DTO does not know are dropped without an error,
  ``...Postcode`` ones included: no request stores a postcode;
- a ``...Zipcode`` key (which the validator accepts) is an HTTP 500, even as
  ``null``: the column does not exist; so is any text over 255 characters, any
  character outside the Basic Multilingual Plane (the tables are ``utf8mb3``), a
  currency that is not three letters, bad ``stringifiedFilterRoles`` JSON, a
  page or page size below 1 and sorting by ``status``;
- validation errors are class-validator objects (``target`` echoes the body),
  business errors ``{"errors":[{"statusCode":400,"type":...,"message":null}]}``,
  a missing record ``{"statusCode":404,"message":"NotFoundError"}``;
- create and edit answer the raw row (``contact_type`` holds the customer type,
  ``active`` is 1/0, no ``customer_type`` or ``formatted_*``); GET answers the
  transformed customer; ``created_at`` / ``updated_at`` stay ``null`` for
  everything made or edited through the API or the web app;
- ``updated_at`` can be neither sorted nor filtered; date comparators on
  ``created_at`` select nothing by date (``after``/``before``: every row that
  has a date, ``in``: none);
- ``inactiveMode=false`` (the default) lists only active customers and ``true``
  only inactive ones; there is no maximum page size;
- the NestJS throttler: two limits per route per client (100 and 10 a window by
  default), ``X-RateLimit-*`` headers on every answer, a 429 carrying only
  ``Retry-After-auth``. Off unless asked for (:class:`Throttle`): the emulator
  then counts as the server does with ``THROTTLE_*_LIMIT=100000``.

Choices where the recordings are silent (docs/api-assumptions.md, Bigcapital):
an edit with ``""`` in any e-mail field and a create with ``""`` in
``billingAddressEmail``/``shippingAddressEmail`` are 400 (only ``email`` on
create was seen accepted); a long ``note`` is a 500 like any other text; a
blocked delete is a 400 ``CUSTOMER_HAS_TRANSACTIONS``. Ids are never reused.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pycountry
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sandbox._core import Emulator, Handler, OrderCache, is_email, json_error, new_record, read_json
from sandbox.fake import DEFAULT_COUNTRIES, fake_customers

SANDBOX_API_KEY = "bc_d61fd102bb302717dbfafe5e7f487bc3b927e3850751142e1fcb0034e67f31dcc4e7c2ae375e7fe992375074ce6181fe"
"""The sandbox's API key (``bc_`` + 96 hex characters, as real keys look)."""
SANDBOX_ORGANIZATION_ID = "custsync-sandbox-org"
"""The organization the sandbox key belongs to (``GET /api/organization/current``)."""
SANDBOX_JWT = "eyJhbGciOiJIUzI1NiJ9.eyJpZCI6MSwiZW1haWwiOiJzYW5kYm94QGN1c3RzeW5jLnRlc3QifQ.c2FuZGJveC1zaWduYXR1cmU"
"""A user session token: accepted only with the ``organization-id`` header."""
DEFAULT_PAGE_SIZE = 12
SORT_COLUMNS = (
    "first_name", "last_name", "display_name", "email", "work_phone", "personal_phone",
    "company_name", "website", "created_at", "balance", "opening_balance",
    "opening_balance_at", "currency_code",
)  # fmt: skip
#: Columns the meta knows but SQL cannot order by: the server answers 500.
BROKEN_SORT_COLUMNS = frozenset({"status"})
DATE_FIELDS = frozenset({"created_at", "opening_balance_at"})
TEXT_COMPARATORS = ("equals", "not_equal", "contains", "not_contain", "starts_with", "ends_with")
CUSTOMER_TYPES = ("business", "individual")
TEXT_LIMIT = 255

_ADDRESS = ("1", "2", "City", "Country", "Email", "Phone", "State")
_TEXT = (
    "salutation", "firstName", "lastName", "companyName", "displayName", "email",
    "workPhone", "personalPhone", "website", "note",
    *(f"{side}Address{part}" for side in ("billing", "shipping") for part in _ADDRESS),
)  # fmt: skip
_EMAILS = ("email", "billingAddressEmail", "shippingAddressEmail")
_ZIPCODES = frozenset({"billingAddressZipcode", "shippingAddressZipcode"})  # pass the DTO, no column
_CREATE_ONLY = ("currencyCode", "openingBalance", "openingBalanceAt", "openingBalanceExchangeRate",
                "openingBalanceBranchId")  # fmt: skip
_SEARCH_PARTIAL = ("display_name", "first_name")
_SEARCH_EXACT = ("last_name", "company_name", "email", "work_phone", "personal_phone", "website")
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
_FORMATTED_TYPES = {"business": "Business", "individual": "Individual"}


@dataclass(frozen=True)
class Throttle:
    """The server's two throttlers, each counted per route and client.

    Attributes:
        auth_limit: requests a window on one route (``THROTTLE_AUTH_LIMIT``, default 10).
        global_limit: the same, for the global throttler (``THROTTLE_GLOBAL_LIMIT``, default 100).
        window_s: the window and the block after a refusal, in seconds (default 60).
    """

    auth_limit: int = 10
    global_limit: int = 100
    window_s: float = 60.0


RECORDED_THROTTLE = Throttle()
"""The server's defaults, as recorded: 10 (and 100) requests a minute per route."""
UNTHROTTLED = Throttle(auth_limit=100_000, global_limit=100_000)
"""What the recordings' functional probes ran with; the emulator's default."""


@dataclass
class _Window:
    start: float
    hits: int = 0
    blocked_until: float = 0.0


@dataclass
class _Throttler:
    """Counts hits per (throttler, route, client); says when to refuse."""

    settings: Throttle
    clock: Callable[[], float]
    windows: dict[tuple[str, str, str], _Window] = field(default_factory=dict)

    def hit(self, tier: str, limit: int, route: str, client: str) -> tuple[dict[str, str], float | None]:
        """Count one request: (headers to send, seconds to wait when refused)."""
        now, span = self.clock(), self.settings.window_s
        key = (tier, route, client)
        window = self.windows.get(key)
        if window is None or now >= window.start + span:
            window = self.windows[key] = _Window(start=now)
        if window.blocked_until > now:
            return {}, window.blocked_until - now
        window.hits += 1
        if window.hits > limit:
            window.blocked_until = now + span
            return {}, span
        suffix = "" if tier == "default" else f"-{tier}"
        return {
            f"X-RateLimit-Limit{suffix}": str(limit),
            f"X-RateLimit-Remaining{suffix}": str(max(limit - window.hits, 0)),
            f"X-RateLimit-Reset{suffix}": str(max(math.ceil(window.start + span - now), 0)),
        }, None


class BigcapitalEmulator(Emulator):
    """In-memory Bigcapital: ``/api/customers``, ``/api/contacts/{id}/...``, ``/api/organization/current``.

    Args:
        api_key: the one API key accepted as ``Authorization: Bearer <key>``
            (an ``organization-id`` header beside it is ignored, as recorded).
        organization_id: the key's organization; a user JWT must name it.
        throttle: the throttlers' limits; ``None`` is :data:`UNTHROTTLED`, or
            what ``CUSTSYNC_SANDBOX_BIGCAPITAL_THROTTLE`` says (``recorded``, or
            ``AUTH,GLOBAL,WINDOW_S``) when set.
        clock: monotonic seconds, for the throttle windows (tests move it).
        fault_seed: seed of the fault RNG.
    """

    system = "bigcapital"

    def __init__(
        self,
        *,
        api_key: str = SANDBOX_API_KEY,
        organization_id: str = SANDBOX_ORGANIZATION_ID,
        throttle: Throttle | None = None,
        clock: Callable[[], float] = time.monotonic,
        fault_seed: int = 0,
    ) -> None:
        self.api_key = api_key
        self.organization_id = organization_id
        self._throttler = _Throttler(throttle or _throttle_from_env() or UNTHROTTLED, clock)
        self._next_id = 1
        #: ids whose delete is refused (the customer has transactions), set by tests.
        self.undeletable: set[str] = set()
        self._orders = OrderCache()
        super().__init__(fault_seed=fault_seed)

    @property
    def throttle(self) -> Throttle:
        """The throttlers' settings; assigning new ones starts every window afresh."""
        return self._throttler.settings

    @throttle.setter
    def throttle(self, settings: Throttle) -> None:
        self._throttler = _Throttler(settings, self._throttler.clock)

    def routes(self) -> list[BaseRoute]:
        """The vendor routes; each also answers with a trailing slash, as Express does."""
        table: list[tuple[str, Handler, str, str]] = [
            ("/api/customers", self._list, "GET", "list"),
            ("/api/customers", self._create, "POST", "create"),
            ("/api/customers/{id}", self._get, "GET", "get"),
            ("/api/customers/{id}", self._edit, "PUT", "edit"),
            ("/api/customers/{id}", self._delete, "DELETE", "delete"),
            ("/api/contacts/{id}/activate", self._activate, "PATCH", "activate"),
            ("/api/contacts/{id}/inactivate", self._inactivate, "PATCH", "inactivate"),
            ("/api/organization/current", self._organization, "GET", "organization"),
        ]
        return [
            Route(path + slash, self._throttled(name, self._authed(handler)), methods=[method])
            for path, handler, method, name in table
            for slash in ("", "/")
        ]

    # -- admin / seeding ---------------------------------------------------

    def admin_seed(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """Create a customer as the web app would, from a create-style body.

        The web app's form pre-fills the customer type and the base currency,
        so those default to ``business`` / ``USD``; everything else is checked
        as the API checks it. Beyond the API, a seed may carry what only an
        import or SQL can set: ``billing_address_postcode`` /
        ``shipping_address_postcode`` (any spelling, ``...Zipcode`` included)
        and ``created_at`` / ``updated_at``.

        Raises:
            ValueError: the API would refuse the body (400 or 500).
        """
        body = {"customerType": "business", "currencyCode": "USD", **_camelise(payload)}
        imported = {
            _snake(key).replace("_zipcode", "_postcode"): body.pop(key)
            for key in list(body)
            if key.endswith(("Postcode", "Zipcode")) or key in ("createdAt", "updatedAt")
        }
        errors = _validate(body, create=True)
        if errors:
            raise ValueError("; ".join(f"{e['property']}: {', '.join(e['constraints'].values())}" for e in errors))
        if why := _crashes(body, create=True):
            raise ValueError(f"the server would answer 500: {why}")
        record = self._insert(body)
        record.update(imported)
        return record

    def admin_edit(self, record: dict[str, Any], changes: Mapping[str, Any]) -> None:
        """Apply a change in the read shape, as the web app or SQL would (timestamps as given)."""
        for key, value in changes.items():
            column = "contact_type" if key == "customer_type" else key
            if column in record and column != "id":
                record[column] = int(value) if column == "active" else value

    def seed_fake(
        self, count: int, seed: int = 7, countries: tuple[str, ...] = DEFAULT_COUNTRIES
    ) -> list[dict[str, Any]]:
        """Store ``count`` deterministic fake customers (country as a name, postcode as imported)."""
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
                        "billing_address_postcode": fake.postal_code,
                        "billingAddressCountry": country.name if country else fake.country,
                        "note": fake.notes,
                        "active": fake.active,
                    }
                )
            )
        return created

    # -- guards -------------------------------------------------------------

    def _throttled(self, route: str, handler: Handler) -> Handler:
        async def counted(request: Request) -> Response:
            client = request.client.host if request.client else "-"
            throttle = self._throttler.settings
            headers, wait = self._throttler.hit("default", throttle.global_limit, route, client)
            if wait is not None:
                return _too_many({"Retry-After": str(math.ceil(wait))})
            auth_headers, wait = self._throttler.hit("auth", throttle.auth_limit, route, client)
            if wait is not None:
                return _too_many({**headers, "Retry-After-auth": str(math.ceil(wait))})
            response = await handler(request)
            response.headers.update({**headers, **auth_headers})
            return response

        return counted

    def _authed(self, handler: Handler) -> Handler:
        async def guarded(request: Request) -> Response:
            auth = request.headers.get("authorization", "")
            if auth == f"Bearer {self.api_key}":
                return await handler(request)  # the key fixes the tenant; organization-id is ignored
            if auth == f"Bearer {SANDBOX_JWT}":
                org = request.headers.get("organization-id")
                if org is None:
                    body = {"message": "Organization ID is required.", "error": "Unauthorized", "statusCode": 401}
                    return json_error(401, body)
                if org == self.organization_id:
                    return await handler(request)
            return json_error(401, {"message": "Unauthorized", "statusCode": 401})

        return guarded

    # -- handlers -----------------------------------------------------------

    async def _list(self, request: Request) -> Response:
        query = _camelise(request.query_params)
        page, size = _at_least_one(query.get("page"), 1), _at_least_one(query.get("pageSize"), DEFAULT_PAGE_SIZE)
        if page is None or size is None:
            return _crash()  # page=0, pageSize=-1: recorded as 500
        column = query.get("columnSortBy") or "created_at"
        if column in BROKEN_SORT_COLUMNS:
            return _crash()
        if column not in SORT_COLUMNS:
            return _business_error("sort_column_not_found")
        order = query.get("sortOrder") or "desc"  # anything but "desc" sorts ascending (knex)
        inactive = (query.get("inactiveMode") or "false").lower() in ("true", "1")
        desc = order.lower() == "desc"
        ordered = self._orders.order(self.records, (column, desc), lambda rows: _sorted(rows, column, desc))
        rows = [r for r in ordered if bool(r["active"]) is not inactive]  # filtering keeps the order
        if keyword := query.get("searchKeyword"):
            rows = [r for r in rows if _matches_keyword(r, keyword)]
        if (roles := query.get("stringifiedFilterRoles")) is not None:
            try:
                parsed = json.loads(roles)
            except ValueError:
                return _crash()
            if not isinstance(parsed, list) or not all(isinstance(r, dict) for r in parsed):
                return _crash()
            if any(str(r.get("fieldKey")) not in SORT_COLUMNS for r in parsed):
                return _business_error("filter_roles_fields_not_found")
            filtered = _filter_roles(rows, parsed)
            if filtered is None:
                return _crash()
            rows = filtered
        start = (page - 1) * size
        meta: dict[str, Any] = {"order": order}
        if keyword:
            meta["search_keyword"] = keyword
        meta["field_key"] = column
        return JSONResponse(
            {
                "customers": [_transformed(r) for r in rows[start : start + size]],
                "pagination": {"total": len(rows), "page": page, "page_size": size},
                "filter_meta": meta,
            }
        )

    async def _get(self, request: Request) -> Response:
        record = self._find(request.path_params["id"])
        return _not_found() if record is None else JSONResponse(_transformed(record))

    async def _create(self, request: Request) -> Response:
        body = await read_json(request)
        if not isinstance(body, dict):
            return _unparsable()
        body = _camelise(body)
        if errors := _validate(body, create=True):
            return _invalid(errors)
        if _crashes(body, create=True):
            return _crash()
        record = self._insert(body)
        self.count_write()
        return JSONResponse(_raw(record), status_code=201)

    async def _edit(self, request: Request) -> Response:
        body = await read_json(request)
        if not isinstance(body, dict):
            return _unparsable()
        body = _camelise(body)
        if errors := _validate(body, create=False):
            return _invalid(errors)
        record = self._find(request.path_params["id"])
        if record is None:
            return _not_found()
        if _crashes(body, create=False):
            return _crash()
        _apply(record, body)
        self.count_write()
        return JSONResponse(_raw(record))

    async def _delete(self, request: Request) -> Response:
        record = self._find(request.path_params["id"])
        if record is None:
            return _not_found()
        if str(record["id"]) in self.undeletable:
            return _business_error("CUSTOMER_HAS_TRANSACTIONS")
        del self.records[str(record["id"])]
        self.count_write()
        return Response(status_code=200)  # an empty body, as recorded

    async def _activate(self, request: Request) -> Response:
        return await self._set_active(request, True)

    async def _inactivate(self, request: Request) -> Response:
        return await self._set_active(request, False)

    async def _set_active(self, request: Request, active: bool) -> Response:
        raw = request.path_params["id"]
        if not raw.isdigit():  # this route has NestJS's ParseIntPipe; the customer routes do not
            body = {"message": "Validation failed (numeric string is expected)", "error": "Bad Request",
                    "statusCode": 400}  # fmt: skip
            return json_error(400, body)
        record = self._find(raw)
        if record is None:
            return _not_found()
        if bool(record["active"]) is active:
            return _business_error(f"CONTACT_ALREADY_{'ACTIVE' if active else 'INACTIVE'}")
        record["active"] = int(active)
        self.count_write()
        return JSONResponse({"id": record["id"], "activated" if active else "inactivated": True})

    async def _organization(self, request: Request) -> Response:
        return JSONResponse(_organization(self.organization_id))

    # -- store -------------------------------------------------------------

    def _find(self, raw: str) -> dict[str, Any] | None:
        return self.records.get(str(int(raw))) if raw.isdigit() else None

    def _insert(self, body: Mapping[str, Any]) -> dict[str, Any]:
        record = new_record(self.records, dict.fromkeys(ROW_KEYS))
        record.update(
            id=self._next_id, balance=0, active=1, contact_service="customer", opening_balance=0,
            opening_balance_exchange_rate=1, local_opening_balance=0, closing_balance=0, contact_normal="debit",
        )  # fmt: skip
        _apply(record, body)
        record["currency_code"] = body.get("currencyCode")
        record["contact_type"] = body.get("customerType")
        for key in _CREATE_ONLY[1:]:
            if body.get(key) is not None:
                record[_snake(key)] = body[key]
        opening = body.get("openingBalance")
        if isinstance(opening, int | float) and not isinstance(opening, bool):
            record["balance"] = record["closing_balance"] = record["local_opening_balance"] = opening
        self.records[str(self._next_id)] = record
        self._next_id += 1
        return record


# -- validation (class-validator, then what the database refuses) -----------------


def _validate(body: Mapping[str, Any], *, create: bool) -> list[dict[str, Any]]:
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
    for key in _TEXT:
        value = body.get(key)
        if key in required or value is None:
            continue
        if not isinstance(value, str):
            fail(key, isString=f"{key} must be a string")
        elif key in _EMAILS and not is_email(value) and not (create and key == "email" and value == ""):
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


def _crashes(body: Mapping[str, Any], *, create: bool) -> str | None:
    """Why the database refuses a valid body (the server then answers 500), or ``None``."""
    if _ZIPCODES & set(body):
        return "Unknown column 'BILLING_ADDRESS_ZIPCODE'"
    for key in _TEXT:
        value = body.get(key)
        if isinstance(value, str) and len(value) > TEXT_LIMIT:
            return f"Data too long for column '{_snake(key)}'"
        if isinstance(value, str) and any(ord(char) > 0xFFFF for char in value):
            return f"Incorrect string value for column '{_snake(key)}'"  # utf8mb3 holds 3 bytes at most
    currency = body.get("currencyCode") if create else None
    if isinstance(currency, str) and re.fullmatch(r"[A-Za-z]{3}", currency) is None:
        return "Data too long for column 'currency_code'"
    return None


def _apply(record: dict[str, Any], body: Mapping[str, Any]) -> None:
    """Write the DTO's fields that were sent (create-only ones and dropped keys excluded)."""
    for key in (*_TEXT, "customerType", "active"):
        if key not in body:
            continue
        if key == "customerType":
            record["contact_type"] = body[key]
        elif key == "active":
            if body[key] is not None:
                record["active"] = int(body[key] is True)
        else:
            record[_snake(key)] = body[key]


# -- answers -------------------------------------------------------------------------------


def _raw(record: Mapping[str, Any]) -> dict[str, Any]:
    """The row as create and edit answer it."""
    return dict(record)


def _transformed(record: Mapping[str, Any]) -> dict[str, Any]:
    """The customer as GET answers it: the row plus the transformer's fields."""
    kind = record["contact_type"]
    return {
        **record,
        "formatted_balance": f"{record['balance']:.2f}",
        "formatted_opening_balance": f"{record['opening_balance']:.2f}",
        "formatted_opening_balance_at": record["opening_balance_at"] or "",
        "customer_type": kind,
        "formatted_customer_type": _FORMATTED_TYPES.get(str(kind), ""),
    }


def _organization(organization_id: str) -> dict[str, Any]:
    stamp = "2026-12-01T19:14:52.000Z"
    subscription = {
        "id": 1, "slug": "main", "active": True, "inactive": False, "ended": False, "canceled": False,
        "status": "active", "plan_id": 1, "tenant_id": 1, "starts_at": "2026-12-01T19:14:24.000Z",
        "ends_at": None, "canceled_at": None, "created_at": None, "updated_at": None,
        "lemon_subscription_id": None, "trial_ends_at": None, "payment_status": None, "on_trial": False,
        "is_payment_failed": False, "is_payment_succeed": False,
    }  # fmt: skip
    metadata = {
        "id": 1, "name": "Custsync Sandbox Org", "industry": None, "location": "US", "language": "en",
        "timezone": "America/New_York", "address": None, "tenant_id": 1, "base_currency": "USD",
        "date_format": "DD MMM yyyy", "fiscal_year": "january", "tax_number": None, "primary_color": None,
        "logo_key": None,
    }  # fmt: skip
    return {
        "id": 1, "subscriptions": [subscription], "metadata": metadata, "organization_id": organization_id,
        "under_maintenance_since": None, "initialized_at": stamp, "seeded_at": stamp, "built_at": stamp,
        "build_job_id": None, "database_batch": None, "upgrade_job_id": None, "created_at": None,
        "updated_at": None, "is_ready": True, "is_build_running": False, "is_upgrade_running": False,
    }  # fmt: skip


def _crash() -> Response:
    return json_error(500, {"statusCode": 500, "message": "Internal server error"})


def _not_found() -> Response:
    return json_error(404, {"statusCode": 404, "message": "NotFoundError"})


def _too_many(headers: Mapping[str, str]) -> Response:
    body = {"statusCode": 429, "message": "ThrottlerException: Too Many Requests"}
    return JSONResponse(body, status_code=429, headers=dict(headers))


def _business_error(kind: str) -> Response:
    return json_error(400, {"errors": [{"statusCode": 400, "type": kind, "message": None}]})


def _invalid(errors: list[dict[str, Any]]) -> Response:
    return json_error(400, {"message": errors, "error": "Bad Request", "statusCode": 400})


def _unparsable() -> Response:
    return json_error(400, {"message": "Unexpected token in JSON body", "error": "Bad Request", "statusCode": 400})


# -- listing helpers ---------------------------------------------------------------------


def _camelise(raw: Mapping[str, Any]) -> dict[str, Any]:
    # The server camelises keys on input; camelCase keys pass through unchanged.
    return {re.sub(r"_([a-z0-9])", lambda m: m.group(1).upper(), k): v for k, v in raw.items()}


def _snake(key: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()


def _at_least_one(raw: str | None, default: int) -> int | None:
    if raw is None:
        return default
    return int(raw) if raw.isdigit() and int(raw) > 0 else None


def _sorted(rows: list[dict[str, Any]], column: str, desc: bool) -> list[dict[str, Any]]:
    """The list's order (a total one): ties (every API-made row has created_at null) keep the primary-key
    order either way; NULLs come first ascending and last descending, as in MySQL."""
    rows.sort(key=lambda r: r["id"])
    rows.sort(key=lambda r: _sort_key(r, column), reverse=desc)
    return rows


def _sort_key(record: Mapping[str, Any], column: str) -> tuple[Any, ...]:
    value = record.get(column)
    if isinstance(value, str):
        value = value.casefold()  # MySQL's default collation ignores case
    return (value is not None, value if value is not None else 0)


def _matches_keyword(record: Mapping[str, Any], keyword: str) -> bool:
    needle = keyword.casefold()
    if any(needle in (record.get(f) or "").casefold() for f in _SEARCH_PARTIAL):
        return True
    return any(needle == (record.get(f) or "").casefold() for f in _SEARCH_EXACT)


def _filter_roles(rows: list[dict[str, Any]], roles: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
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
            rows = [r for r in rows if _text_test(comparator, str(r.get(key) or "").lower(), value.lower())]
        else:
            return None
    return rows


def _text_test(comparator: str, held: str, wanted: str) -> bool:
    tests = {
        "equals": held == wanted,
        "not_equal": held != wanted,
        "contains": wanted in held,
        "not_contain": wanted not in held,
        "starts_with": held.startswith(wanted),
        "ends_with": held.endswith(wanted),
    }
    return tests[comparator]


def _throttle_from_env() -> Throttle | None:
    raw = os.environ.get("CUSTSYNC_SANDBOX_BIGCAPITAL_THROTTLE")
    if not raw:
        return None
    if raw == "recorded":
        return RECORDED_THROTTLE
    auth, global_, window = raw.split(",")
    return Throttle(auth_limit=int(auth), global_limit=int(global_), window_s=float(window))


__all__ = [
    "CUSTOMER_TYPES",
    "DEFAULT_PAGE_SIZE",
    "RECORDED_THROTTLE",
    "ROW_KEYS",
    "SANDBOX_API_KEY",
    "SANDBOX_JWT",
    "SANDBOX_ORGANIZATION_ID",
    "SORT_COLUMNS",
    "UNTHROTTLED",
    "BigcapitalEmulator",
    "Throttle",
]


# -- the plug-in declaration (custsync.sandbox entry point) ------------------------------------------------

from sandbox.plugin import EmulatorPlugin  # noqa: E402 - the declaration comes last

EMULATOR = EmulatorPlugin(
    name="bigcapital",
    order=0,
    factory=BigcapitalEmulator,
    connection=lambda base: {"system": "bigcapital", "base_url": base, "api_key": SANDBOX_API_KEY},
    pipeline=lambda _source: ['defaults = { currency = "USD" }'],
)
