"""Emulator of Timbrix's customer API (Mexican CFDI 4.0, NestJS, docs.timbrix.mx).

Quirks kept on purpose, because connectors must cope with them:

- the app serves ``/api/...``: a connector's base URL is ``<host>/api``;
- auth is ``X-API-Key`` or an OAuth2 client-credentials bearer token, whose
  endpoint allows 10 requests a minute and whose tokens expire;
- the organization id is in the path; another organization answers 403;
- the list is a bare JSON array of every customer: no paging, no filters;
- writes take flat ``address*`` fields, reads return a nested ``address``;
  a nested ``address`` in a write is ignored like any unknown key, so the
  flat address fields are then missing;
- updates are PUT with partial semantics; delete is permanent; no status field.

Where the docs are silent (assumptions, each the strict reading;
docs/api-assumptions.md): unknown write keys are refused with 400 ``property X
should not exist``, as ``ValidationPipe({whitelist: true,
forbidNonWhitelisted: true})`` does (``forbid_unknown_keys=False``: dropped
silently, plain ``whitelist``); ``legalName`` holds at most 254 characters
(CFDI 4.0's ``Nombre``) and every other text at most 255; ``taxId`` is unique within an organization (409), except
SAT's generic RFCs; the token endpoint answers 200 and counts requests in
fixed one-minute windows (@nestjs/throttler); the OAuth app's scopes are
``SANDBOX_SCOPES`` and a token must hold the read or write scope it uses.

The DTO's rules are in :mod:`sandbox.timbrix_rules`, the credentials in :mod:`sandbox.timbrix_auth`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sandbox import timbrix_rules as rules
from sandbox._core import Emulator, iso, read_json, utcnow
from sandbox.fake import fake_customers
from sandbox.timbrix_auth import TimbrixAuth
from sandbox.timbrix_rules import GENERIC_RFCS, INVOICE_USES, TAX_SYSTEMS

SANDBOX_API_KEY = "sk_test_timbrix_sandbox"
SANDBOX_CLIENT_ID = "timbrix_sandbox_client"
SANDBOX_CLIENT_SECRET = "timbrix_sandbox_secret"  # noqa: S105 - public sandbox value
SANDBOX_ORGANIZATION_ID = "550e8400-e29b-41d4-a716-446655440000"
SANDBOX_SCOPES = ("customers:read", "customers:write")
SANDBOX_TOKEN_TTL_S = 3600.0
TOKEN_RATE_LIMIT = 10
TOKEN_RATE_WINDOW_S = 60.0
_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


class TimbrixEmulator(TimbrixAuth, Emulator):
    """Timbrix's customer endpoints, OAuth token endpoint and key check.

    Args:
        api_key: the organization's sandbox API key.
        client_id: the OAuth app's client id.
        client_secret: the OAuth app's client secret.
        organization_id: the one organization the credentials belong to.
        scopes: the scopes configured on the OAuth app.
        token_ttl_s: lifetime of an access token.
        token_rate_limit: token requests allowed per window.
        token_rate_window_s: length of the token endpoint's window.
        clock: monotonic seconds; tests pass a fake to expire tokens.
        forbid_unknown_keys: refuse write keys the DTO does not declare (strict);
            ``False`` drops them silently.
        fault_seed: seed of the fault RNG.
        kill_after_writes: see :class:`sandbox._core.Emulator`.
    """

    system = "timbrix"
    non_write_paths = ("/oauth/token", "/api-keys/validate")
    field_aliases: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "name": ("legalName",),
        "tax_id": ("taxId",),
        "tax_system": ("taxSystem",),
        "invoice_use": ("defaultInvoiceUse",),
        "address_line1": ("addressStreet", "addressExterior", "addressInterior"),
        "address_line2": ("addressNeighborhood",),
        "city": ("addressCity", "addressMunicipality"),
        "postal_code": ("addressZip",),
        "state": ("addressState",),
        "country": ("addressCountry",),
    }

    def __init__(
        self,
        *,
        api_key: str = SANDBOX_API_KEY,
        client_id: str = SANDBOX_CLIENT_ID,
        client_secret: str = SANDBOX_CLIENT_SECRET,
        organization_id: str = SANDBOX_ORGANIZATION_ID,
        scopes: tuple[str, ...] = SANDBOX_SCOPES,
        token_ttl_s: float = SANDBOX_TOKEN_TTL_S,
        token_rate_limit: int = TOKEN_RATE_LIMIT,
        token_rate_window_s: float = TOKEN_RATE_WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
        forbid_unknown_keys: bool = True,
        fault_seed: int = 0,
        kill_after_writes: int | None = None,
    ) -> None:
        self.forbid_unknown_keys = forbid_unknown_keys
        self.api_key = api_key
        self.client_id = client_id
        self.client_secret = client_secret
        self.organization_id = organization_id
        self.scopes = scopes
        self.token_ttl_s = token_ttl_s
        self.token_rate_limit = token_rate_limit
        self.token_rate_window_s = token_rate_window_s
        self.clock = clock
        self.tokens: dict[str, tuple[float, frozenset[str]]] = {}  # token → (expiry, scopes)
        self._window: tuple[float, int] | None = None  # (start, hits) of the token limiter
        self._next_id = 0
        # taxId → ids of records written with it, kept on every write so the uniqueness
        # check never scans; a candidate is checked against the record itself.
        self._tax_ids: dict[str, set[str]] = {}
        super().__init__(fault_seed=fault_seed, kill_after_writes=kill_after_writes)

    def reset(self) -> None:
        """Forget records, requests, faults, issued tokens, the token limiter and the index."""
        super().reset()
        self.tokens.clear()
        self._window = None
        self._tax_ids.clear()

    def _index(self, record: Mapping[str, Any]) -> None:
        if record["taxId"]:
            self._tax_ids.setdefault(record["taxId"], set()).add(record["id"])

    # -- routes ------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        """The API routes, with Express's optional trailing slash and NestJS's 404s."""
        base = "/api/organizations/{org}/customers"
        pairs = [
            (base, self._customers),
            (base + "/{id}", self._customer),
            ("/api/oauth/token", self._token),
            ("/api/api-keys/validate", self._validate),
        ]
        routes: list[BaseRoute] = [Route(p + s, h, methods=_METHODS) for p, h in pairs for s in ("", "/")]
        return [*routes, Route("/{path:path}", self._no_route, methods=_METHODS)]

    async def _no_route(self, request: Request) -> Response:
        return rules.no_route(request)

    async def _customers(self, request: Request) -> Response:
        if request.method not in ("GET", "POST"):
            return await self._no_route(request)
        if (denied := self._authorize(request)) is not None:
            return denied
        if request.method == "GET":  # every customer, in creation order; params ignored
            return JSONResponse(list(self.records.values()))
        body = await read_json(request)
        if body is None:
            return rules.error(400, "Unexpected token in JSON body", "Bad Request")
        fields, messages = self._clean(body if isinstance(body, dict) else {}, partial=False)
        if messages:
            return rules.error(400, messages, "Bad Request")
        if self._tax_id_taken(fields["taxId"], None):
            return rules.error(409, "Customer with this taxId already exists", "Conflict")
        record = self._create(fields)
        self.count_write()
        return JSONResponse(record, status_code=201)

    async def _customer(self, request: Request) -> Response:
        if request.method not in ("GET", "PUT", "DELETE"):
            return await self._no_route(request)
        if (denied := self._authorize(request)) is not None:
            return denied
        record = self.records.get(request.path_params["id"])
        if record is None:
            return rules.error(404, "Customer not found", "Not Found")
        if request.method == "GET":
            return JSONResponse(record)
        if request.method == "DELETE":
            del self.records[record["id"]]
            self.count_write()
            return Response(status_code=204)
        body = await read_json(request)
        if body is None:
            return rules.error(400, "Unexpected token in JSON body", "Bad Request")
        fields, messages = self._clean(body if isinstance(body, dict) else {}, partial=True)
        if messages:
            return rules.error(400, messages, "Bad Request")
        if "taxId" in fields and self._tax_id_taken(fields["taxId"], record["id"]):
            return rules.error(409, "Customer with this taxId already exists", "Conflict")
        rules.apply(record, fields)
        self._index(record)
        record["updatedAt"] = iso(utcnow())
        self.count_write()
        return JSONResponse(record)

    def _clean(self, body: Mapping[str, Any], *, partial: bool) -> tuple[dict[str, Any], list[str]]:
        fields, messages = rules.clean(body, partial=partial)
        if self.forbid_unknown_keys:
            messages = [f"property {key} should not exist" for key in body if key not in rules.FIELDS] + messages
        return fields, messages

    def _tax_id_taken(self, tax_id: str, own_id: str | None) -> bool:
        if tax_id in GENERIC_RFCS:
            return False
        holders = (self.records.get(i) for i in self._tax_ids.get(tax_id, ()) if i != own_id)
        return any(r is not None and r["taxId"] == tax_id for r in holders)

    def _create(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        now = iso(utcnow())
        self._next_id += 1
        # ObjectId-like: a fixed "timestamp" prefix, then a counter, so ids sort by creation.
        record_id = f"6650a1b2{self._next_id:016x}"
        record: dict[str, Any] = {
            "id": record_id,
            "organizationId": self.organization_id,
            "legalName": None,
            "taxId": None,
            "taxSystem": None,
            "email": None,
            "phone": None,
            "defaultInvoiceUse": None,
            "address": dict.fromkeys(
                ("street", "exterior", "interior", "neighborhood", "city", "municipality", "zip", "state", "country")
            ),
            "createdAt": now,
            "updatedAt": now,
        }
        record["address"]["country"] = "MEX"
        rules.apply(record, fields)
        self.records[record_id] = record
        self._index(record)
        return record

    # -- admin and seeding ----------------------------------------------------

    def admin_seed(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """Store a record from a write body without API validation.

        The address may be flat (``addressZip``...) or a nested ``address``
        object in the read shape; ``createdAt``/``updatedAt`` may be set.
        """
        flat = {k: v for k, v in payload.items() if k in rules.FIELDS}
        nested = payload.get("address") or {}
        flat.update({w: nested[r] for w, r in rules.FIELDS.items() if r is not None and r in nested})
        record = self._create(flat)
        for stamp in ("createdAt", "updatedAt"):
            record[stamp] = payload.get(stamp, record[stamp])
        return record

    def admin_edit(self, record: dict[str, Any], changes: Mapping[str, Any]) -> None:
        """Apply a web-app edit (read-shaped, ``address`` merged) and bump ``updatedAt``."""
        for key, value in changes.items():
            if key == "address" and isinstance(value, Mapping):
                record["address"].update(value)
            else:
                record[key] = value
        self._index(record)
        record["updatedAt"] = iso(utcnow())

    def seed_fake(self, count: int, seed: int = 7) -> list[dict[str, Any]]:
        """Seed Mexican fake customers that carry every field CFDI 4.0 requires.

        The exterior number is the trailing number of address line 1 (``S/N``
        without one), the colonia is line 2 without a leading ``Col. ``, and the
        municipality is the city.
        """
        payloads: list[Mapping[str, Any]] = []
        for c in fake_customers(count, seed=seed, countries=("MX",)):
            street, exterior = rules.split_street(c.address_line1 or "")
            payload: dict[str, Any] = {
                "legalName": c.name,
                "taxId": c.tax_id,
                "taxSystem": c.tax_system,
                "email": c.email,
                "defaultInvoiceUse": c.invoice_use,
                "phone": c.phone,
                "addressStreet": street,
                "addressExterior": exterior,
                "addressNeighborhood": (c.address_line2 or "").removeprefix("Col. "),
                "addressCity": c.city,
                "addressMunicipality": c.city,
                "addressZip": c.postal_code,
                "addressState": c.state,
                "addressCountry": "MEX",
            }
            if all(payload[f] for f in rules.FIELDS if f not in rules.OPTIONAL):
                payloads.append(payload)
        return self.seed(payloads)


__all__ = [
    "GENERIC_RFCS",
    "INVOICE_USES",
    "SANDBOX_API_KEY",
    "SANDBOX_CLIENT_ID",
    "SANDBOX_CLIENT_SECRET",
    "SANDBOX_ORGANIZATION_ID",
    "SANDBOX_SCOPES",
    "SANDBOX_TOKEN_TTL_S",
    "TAX_SYSTEMS",
    "TOKEN_RATE_LIMIT",
    "TOKEN_RATE_WINDOW_S",
    "TimbrixEmulator",
]


# -- the plug-in declaration (custsync.sandbox entry point) ------------------------------------------------

from sandbox.plugin import EmulatorPlugin  # noqa: E402 - the declaration comes last


def _pipeline_into_timbrix(source: str) -> list[str]:
    if source == "bigcapital":
        # Bigcapital keeps no tax id, so no customer of it carries an RFC: invoice them as the
        # general public (SAT's generic RFC, régimen 616 "sin obligaciones fiscales", uso S01).
        # A generic RFC is shared by many customers, so it cannot identify one: match on e-mail.
        return [
            'defaults = { tax_id = "XAXX010101000", tax_system = "616", invoice_use = "S01" }',
            'match_on = ["email"]',
        ]
    # CFDI needs a régimen fiscal and a uso CFDI that Bigcapital and Piriod do not hold.
    return ['defaults = { tax_system = "601", invoice_use = "G03" }']


EMULATOR = EmulatorPlugin(
    name="timbrix",
    order=3,
    factory=TimbrixEmulator,
    connection=lambda base: {
        "system": "timbrix",
        "base_url": f"{base}/api",
        "api_key": SANDBOX_API_KEY,
        "organization_id": SANDBOX_ORGANIZATION_ID,
    },
    pipeline=_pipeline_into_timbrix,
    token_ttl=True,
)
