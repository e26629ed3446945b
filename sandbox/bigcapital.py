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

The row (columns, checks, transformation, list order and filters) is in
:mod:`sandbox._bigcapital_rows`; the throttlers, the organization and the
recorded error bodies in :mod:`sandbox._bigcapital_answers`.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import pycountry
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sandbox import _bigcapital_answers as replies
from sandbox import _bigcapital_rows as db
from sandbox._bigcapital_answers import RECORDED_THROTTLE, UNTHROTTLED, Throttle
from sandbox._bigcapital_rows import ROW_KEYS
from sandbox._core import Emulator, Handler, OrderCache, json_error, read_json
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
CUSTOMER_TYPES = ("business", "individual")


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
        self._throttler = replies.Throttler(throttle or replies.throttle_from_env() or UNTHROTTLED, clock)
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
        self._throttler = replies.Throttler(settings, self._throttler.clock)

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
        body = {"customerType": "business", "currencyCode": "USD", **db.camelise(payload)}
        imported = {
            db.snake(key).replace("_zipcode", "_postcode"): body.pop(key)
            for key in list(body)
            if key.endswith(("Postcode", "Zipcode")) or key in ("createdAt", "updatedAt")
        }
        errors = db.validate(body, create=True)
        if errors:
            raise ValueError("; ".join(f"{e['property']}: {', '.join(e['constraints'].values())}" for e in errors))
        if why := db.crash_reason(body, create=True):
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
                return replies.too_many({"Retry-After": str(math.ceil(wait))})
            auth_headers, wait = self._throttler.hit("auth", throttle.auth_limit, route, client)
            if wait is not None:
                return replies.too_many({**headers, "Retry-After-auth": str(math.ceil(wait))})
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
        query = db.camelise(request.query_params)
        page, size = db.at_least_one(query.get("page"), 1), db.at_least_one(query.get("pageSize"), DEFAULT_PAGE_SIZE)
        if page is None or size is None:
            return replies.crash()  # page=0, pageSize=-1: recorded as 500
        column = query.get("columnSortBy") or "created_at"
        if column in BROKEN_SORT_COLUMNS:
            return replies.crash()
        if column not in SORT_COLUMNS:
            return replies.business_error("sort_column_not_found")
        order = query.get("sortOrder") or "desc"  # anything but "desc" sorts ascending (knex)
        inactive = (query.get("inactiveMode") or "false").lower() in ("true", "1")
        desc = order.lower() == "desc"
        ordered = self._orders.order(self.records, (column, desc), lambda rows: db.sort_rows(rows, column, desc))
        rows = [r for r in ordered if bool(r["active"]) is not inactive]  # filtering keeps the order
        if keyword := query.get("searchKeyword"):
            rows = [r for r in rows if db.matches_keyword(r, keyword)]
        if (roles := query.get("stringifiedFilterRoles")) is not None:
            try:
                parsed = json.loads(roles)
            except ValueError:
                return replies.crash()
            if not isinstance(parsed, list) or not all(isinstance(r, dict) for r in parsed):
                return replies.crash()
            if any(str(r.get("fieldKey")) not in SORT_COLUMNS for r in parsed):
                return replies.business_error("filter_roles_fields_not_found")
            filtered = db.filter_roles(rows, parsed)
            if filtered is None:
                return replies.crash()
            rows = filtered
        start = (page - 1) * size
        meta: dict[str, Any] = {"order": order}
        if keyword:
            meta["search_keyword"] = keyword
        meta["field_key"] = column
        return JSONResponse(
            {
                "customers": [db.transformed(r) for r in rows[start : start + size]],
                "pagination": {"total": len(rows), "page": page, "page_size": size},
                "filter_meta": meta,
            }
        )

    async def _get(self, request: Request) -> Response:
        record = self._find(request.path_params["id"])
        return replies.not_found() if record is None else JSONResponse(db.transformed(record))

    async def _create(self, request: Request) -> Response:
        body = await read_json(request)
        if not isinstance(body, dict):
            return replies.unparsable()
        body = db.camelise(body)
        if errors := db.validate(body, create=True):
            return replies.invalid(errors)
        if db.crash_reason(body, create=True):
            return replies.crash()
        record = self._insert(body)
        self.count_write()
        return JSONResponse(db.raw_row(record), status_code=201)

    async def _edit(self, request: Request) -> Response:
        body = await read_json(request)
        if not isinstance(body, dict):
            return replies.unparsable()
        body = db.camelise(body)
        if errors := db.validate(body, create=False):
            return replies.invalid(errors)
        record = self._find(request.path_params["id"])
        if record is None:
            return replies.not_found()
        if db.crash_reason(body, create=False):
            return replies.crash()
        db.apply(record, body)
        self.count_write()
        return JSONResponse(db.raw_row(record))

    async def _delete(self, request: Request) -> Response:
        record = self._find(request.path_params["id"])
        if record is None:
            return replies.not_found()
        if str(record["id"]) in self.undeletable:
            return replies.business_error("CUSTOMER_HAS_TRANSACTIONS")
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
            return replies.not_found()
        if bool(record["active"]) is active:
            return replies.business_error(f"CONTACT_ALREADY_{'ACTIVE' if active else 'INACTIVE'}")
        record["active"] = int(active)
        self.count_write()
        return JSONResponse({"id": record["id"], "activated" if active else "inactivated": True})

    async def _organization(self, request: Request) -> Response:
        return JSONResponse(replies.organization(self.organization_id))

    # -- store -------------------------------------------------------------

    def _find(self, raw: str) -> dict[str, Any] | None:
        return self.records.get(str(int(raw))) if raw.isdigit() else None

    def _insert(self, body: Mapping[str, Any]) -> dict[str, Any]:
        record = db.new_row(self.records, self._next_id, body)
        self.records[str(self._next_id)] = record
        self._next_id += 1
        return record


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
