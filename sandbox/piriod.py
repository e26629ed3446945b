"""Emulator of Piriod's customer API (Django REST Framework, docs.piriod.com).

Quirks kept on purpose, because connectors must cope with them:

- every call needs ``Authorization: Token ...`` *and* ``x-simple-workspace``;
  ``x-piriod-test-mode: true`` selects a separate data set (records created in
  test mode are invisible in live mode and the other way round);
- ``country`` is written as an alpha-2 id but read back as an object, and
  ``state`` is written as an integer id (from ``GET /states/``) but read back
  as an object;
- ``tax_id`` is required only when the customer's country is regulated and is
  the account's own country; ``address`` is one line of at most 64 characters;
- pages are DRF page numbers: ``page_size`` is clamped to 100, ``next`` and
  ``previous`` are absolute URLs, a page past the end is a 404;
- only ``created`` range filters exist: ``updated__gte`` and other unknown
  query parameters are ignored, as django-filter does;
- PATCH replaces ``metadata`` wholesale (a DRF JSON field), there is no DELETE;
- a PUT (the Node SDK's verb; the docs say PATCH) is DRF's full update: it
  must carry the required ``name`` and ``address`` or it is a 400 (strict
  reading; docs/api-assumptions.md).

Where the docs are silent (assumptions): the default list ordering is newest
first (``-created``, then ``-id``), a customer created without ``country``
gets the account's country, and ``GET /states/`` is itself an assumption.

The countries and states are in :mod:`sandbox.piriod_catalog`, the serializer in
:mod:`sandbox.piriod_rules`, the filters and pagination in :mod:`sandbox.piriod_listing`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

import pycountry
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sandbox import piriod_listing as listing
from sandbox import piriod_rules as rules
from sandbox._core import Emulator, OrderCache, iso, json_error, new_record, read_json, utcnow
from sandbox.fake import DEFAULT_COUNTRIES, fake_customers
from sandbox.piriod_catalog import (
    REGULATED_COUNTRIES,
    STATES,
    PiriodState,
    country_object,
    fold,
    resolve_state,
    state_id,
)
from sandbox.piriod_listing import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE

SANDBOX_API_TOKEN = "sk_test_piriod_sandbox"  # noqa: S105 - public sandbox value
SANDBOX_WORKSPACE = "acc_01H8XYZ123ABC"
SANDBOX_ACCOUNT_COUNTRY = "CL"
_ORDERING_FIELDS = frozenset({"id", "name", "email", "created", "updated", "status", "reference", "tax_id"})
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


class PiriodEmulator(Emulator):
    """Piriod's ``/customers/`` and (assumed) ``/states/`` endpoints.

    Args:
        api_token: the one active API token.
        workspace: the account id expected in ``x-simple-workspace``.
        account_country: the account's country; decides when ``tax_id`` is required.
        fault_seed: seed of the fault RNG.
        kill_after_writes: see :class:`sandbox._core.Emulator`.
    """

    system = "piriod"
    field_aliases: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "address_line1": ("address",),
        "postal_code": ("zip_code",),
        "notes": ("metadata.notes",),
    }

    def __init__(
        self,
        *,
        api_token: str = SANDBOX_API_TOKEN,
        workspace: str = SANDBOX_WORKSPACE,
        account_country: str = SANDBOX_ACCOUNT_COUNTRY,
        fault_seed: int = 0,
        kill_after_writes: int | None = None,
    ) -> None:
        self.api_token = api_token  # assign a new value to "regenerate" the token
        self.workspace = workspace
        self.account_country = account_country
        self._next_id = 0
        # metadata.external_id → ids of the records written with it (Piriod does not make it
        # unique); a candidate still passes the real filter, so stale entries are harmless.
        self._external_ids: dict[str, set[str]] = {}
        self._orders = OrderCache()
        super().__init__(fault_seed=fault_seed, kill_after_writes=kill_after_writes)

    def reset(self) -> None:
        """Forget records, the request log, faults and the lookup index."""
        super().reset()
        self._external_ids.clear()

    def _index(self, record: Mapping[str, Any]) -> None:
        held = (record.get("metadata") or {}).get("external_id")
        if held:
            self._external_ids.setdefault(str(held), set()).add(record["id"])

    # -- routes ------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        """The API routes; every method is routed so that 405s have DRF's body."""
        methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
        return [
            Route("/customers/", self._customers, methods=methods),
            Route("/customers/{id}/", self._customer, methods=methods),
            Route("/states/", self._states, methods=methods),
        ]

    async def _customers(self, request: Request) -> Response:
        if (denied := self._authorize(request)) is not None:
            return denied
        if request.method == "GET":
            return self._list(request)
        return await self._write(request, None) if request.method == "POST" else (_not_allowed(request.method))

    async def _customer(self, request: Request) -> Response:
        if (denied := self._authorize(request)) is not None:
            return denied
        if request.method not in ("GET", "PATCH", "PUT"):  # DRF answers 405 before any lookup
            return _not_allowed(request.method)
        record = self.records.get(request.path_params["id"])
        if record is None or record["test_mode"] != _test_mode(request):
            return json_error(404, {"detail": "Not found."})
        # The docs say PATCH; the official Node SDK sends PUT. Strict reading: PUT is DRF's
        # full update, so a PUT must carry every required field, as a create does.
        return (
            JSONResponse(record)
            if request.method == "GET"
            else await self._write(request, record, full=request.method == "PUT")
        )

    async def _write(self, request: Request, record: dict[str, Any] | None, *, full: bool = False) -> Response:
        body = await read_json(request)
        if (bad := rules.body_error(body)) is not None:
            return bad
        fields, errors = rules.clean(body, record, account_country=self.account_country)
        if full:
            errors = {**{n: [rules.REQUIRED_MSG] for n in rules.REQUIRED if n not in body}, **errors}
        if errors:
            return json_error(400, errors)
        if record is None:
            record, status = self._create(fields, test_mode=_test_mode(request)), 201
        else:
            rules.apply(record, fields)
            self._index(record)
            record["updated"], status = iso(utcnow()), 200
        self.count_write()
        return JSONResponse(record, status_code=status)

    async def _states(self, request: Request) -> Response:
        if (denied := self._authorize(request)) is not None:
            return denied
        if request.method != "GET":
            return _not_allowed(request.method)
        country = request.query_params.get("country", "")
        if country and country_object(country) is None:
            return json_error(400, {"country": [rules.BAD_CHOICE]})
        name = fold(request.query_params.get("name", ""))
        rows = [
            dict(s)
            for s in STATES.values()
            if (not country or s["country"] == country) and (not name or fold(s["name"]) == name)
        ]
        return listing.paginate(request, rows)

    # -- helpers -------------------------------------------------------------

    def _authorize(self, request: Request) -> Response | None:
        keyword, _, token = request.headers.get("authorization", "").partition(" ")
        if keyword.lower() != "token":
            return json_error(401, {"detail": "Authentication credentials were not provided."})
        if token.strip() != self.api_token:
            return json_error(401, {"detail": "Invalid token."})
        workspace = request.headers.get("x-simple-workspace")
        if not workspace:
            return json_error(400, {"detail": "The x-simple-workspace header is required."})
        if workspace != self.workspace:
            return json_error(403, {"detail": "You do not have permission to perform this action."})
        return None

    def _list(self, request: Request) -> Response:
        params = request.query_params
        ordering = params.get("ordering", "")
        ordered = False
        if wanted := params.get("metadata__external_id"):  # the connector's lookup: through the index
            held = (self.records.get(i) for i in sorted(self._external_ids.get(wanted, ())))
            candidates: Iterable[dict[str, Any]] = (r for r in held if r is not None)
        else:  # every record, in the listing's order, kept until a record changes; filtering keeps it
            candidates = self._orders.order(self.records, ordering, lambda rows: _order(rows, ordering))
            ordered = True
        test_mode = _test_mode(request)
        rows = listing.filter_rows([r for r in candidates if r["test_mode"] == test_mode], params)
        if isinstance(rows, Response):
            return rows
        return listing.paginate(request, rows if ordered else _order(rows, ordering))

    def _create(self, fields: Mapping[str, Any], *, test_mode: bool) -> dict[str, Any]:
        now = iso(utcnow())
        self._next_id += 1
        # A fixed-width Crockford id sorts like creation order, as a ULID does.
        number = (0x018F2A6B3C00 << 80) + self._next_id
        record_id = "cus_" + "".join(_CROCKFORD[(number >> (5 * i)) & 31] for i in reversed(range(26)))
        country = country_object(fields["country"])
        record = new_record(self.records, rules.blank(record_id, country, test_mode=test_mode, now=now))
        rules.apply(record, fields)
        self.records[record_id] = record
        self._index(record)
        return record

    # -- admin and seeding ----------------------------------------------------

    def seed(self, payloads: Sequence[Mapping[str, Any]], test_mode: bool = True) -> list[dict[str, Any]]:
        """Create records via ``admin_seed``, in the test data set unless told otherwise."""
        return [self.admin_seed({"test_mode": test_mode, **p}) for p in payloads]

    def admin_seed(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """Store a record from a write body without API validation.

        ``country`` may be an id, a name or an object; ``state`` an id, a name
        or an object. ``test_mode`` (default true), ``created`` and ``updated``
        may be set too.

        Raises:
            ValueError: the country or state cannot be resolved.
        """
        fields = {k: v for k, v in payload.items() if k in rules.SEED_FIELDS}
        fields["country"] = self._resolve_country(payload.get("country"))
        fields["state"] = resolve_state(fields["country"], payload.get("state"))
        record = self._create(fields, test_mode=bool(payload.get("test_mode", True)))
        for stamp in ("created", "updated"):
            record[stamp] = payload.get(stamp, record[stamp])
        return record

    def admin_edit(self, record: dict[str, Any], changes: Mapping[str, Any]) -> None:
        """Apply a dashboard edit (read-shaped fields) and bump ``updated``."""
        changes = dict(changes)
        if "country" in changes:
            changes["country"] = self._resolve_country(changes["country"])
        if "state" in changes:
            country = changes.get("country") or (record["country"] or {}).get("id", "")
            changes["state"] = resolve_state(country, changes["state"])
        rules.apply(record, changes)
        self._index(record)
        record["updated"] = iso(utcnow())

    def seed_fake(
        self, count: int, seed: int = 7, test_mode: bool = True, countries: tuple[str, ...] = DEFAULT_COUNTRIES
    ) -> list[dict[str, Any]]:
        """Seed ``count`` fake customers in Piriod's shape (city folded into ``address``)."""
        return self.seed(
            [
                {
                    "name": c.name[:100],
                    "address": ", ".join(p for p in (c.address_line1, c.address_line2, c.city) if p)[:64],
                    "country": c.country,
                    "state": c.state,
                    "currency": c.currency,
                    "email": c.email,
                    "phone": c.phone,
                    "website": c.website,
                    "zip_code": c.postal_code,
                    "tax_id": c.tax_id,
                    "metadata": {"notes": c.notes} if c.notes else {},
                    "status": "active" if c.active else "archived",
                }
                for c in fake_customers(count, seed=seed, countries=countries)
            ],
            test_mode=test_mode,
        )

    def _resolve_country(self, value: Any) -> str:
        if value is None:
            return self.account_country
        if isinstance(value, dict):
            value = value["id"]
        try:
            return str(pycountry.countries.lookup(str(value)).alpha_2)
        except LookupError:
            raise ValueError(f"unknown country {value!r}") from None


def _not_allowed(method: str) -> Response:
    return json_error(405, {"detail": f'Method "{method}" not allowed.'})


def _test_mode(request: Request) -> bool:
    return request.headers.get("x-piriod-test-mode", "false").strip().lower() in ("true", "1")


def _order(rows: list[dict[str, Any]], raw: str) -> list[dict[str, Any]]:
    # DRF's OrderingFilter drops unknown fields; ties always break on id.
    terms = [t.strip() for t in raw.split(",") if t.strip().lstrip("-") in _ORDERING_FIELDS]
    terms = terms or ["-created", "-id"]
    if not any(t.lstrip("-") == "id" for t in terms):
        terms.append("id")
    for term in reversed(terms):
        field = term.lstrip("-")
        rows.sort(key=lambda r: (r[field] is None, r[field] or ""), reverse=term[0] == "-")
    return rows


__all__ = [
    "DEFAULT_PAGE_SIZE",
    "MAX_PAGE_SIZE",
    "REGULATED_COUNTRIES",
    "SANDBOX_ACCOUNT_COUNTRY",
    "SANDBOX_API_TOKEN",
    "SANDBOX_WORKSPACE",
    "STATES",
    "PiriodEmulator",
    "PiriodState",
    "country_object",
    "state_id",
]


# -- the plug-in declaration (custsync.sandbox entry point) ------------------------------------------------

from sandbox.plugin import EmulatorPlugin  # noqa: E402 - the declaration comes last

EMULATOR = EmulatorPlugin(
    name="piriod",
    order=2,
    factory=PiriodEmulator,
    connection=lambda base: {
        "system": "piriod",
        "base_url": base,
        "api_token": SANDBOX_API_TOKEN,
        "workspace": SANDBOX_WORKSPACE,
        "test_mode": True,
    },
)
