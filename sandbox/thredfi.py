"""Emulator of Thredfi's customer API (connector-apis.md, section 2).

Quirks kept on purpose, because the connector must cope with them:

- every path ends with a slash and, as in Django, the slash-less path is a 404
  (no redirect);
- a partner token comes from ``POST /v1/platform/oauth2/token/`` (HTTP Basic),
  a business token from ``POST /v1/platform/{business_id}/oauth2/token/``; the
  docs disagree on which customer routes need, so the strict reading of the
  authentication guide is the default: a partner token on a customer route is
  a 403 ``permission_denied`` (``require_business_token=False`` takes the
  endpoint pages' reading); tokens expire after ``token_ttl_s`` on the
  injected clock and there is no refresh;
- archived customers are left out of lists unless ``include_archived=true``,
  also when filtering by ``external_id``;
- creating with an ``external_id`` that exists answers 200 with the existing
  record, untouched (``duplicate_external_id="conflict"``: the error guide's
  409 instead); an ``Idempotency-Key`` replay answers the cached body with 200;
- two error shapes: ``{error, error_code, details}`` for validation and
  ``{error_code, message, detail, request_id}`` for the rest.

Choices where the doc is silent, each the strict reading (docs/api-assumptions.md):
``page_size`` defaults to 20 and is capped at ``max_page_size`` (100; DRF style:
an invalid or oversize value falls back or is clamped, never an error); a page
past the end is DRF's 404 ``invalid_page`` (an empty list still has one, empty,
page); lists are in creation order; PATCH is partial but PUT *replaces* the
record: every writable field it does not send is cleared; DELETE is 405; text
fields longer than 255 characters (``notes`` excepted) are refused; a ``null``
text field is stored as ``""``; changing
``external_id`` to one another customer holds is a 409; ``type`` is
``"CustomerData"`` as the OpenAPI seed says, and ``documents`` is only on the
detail and write responses ("retrieve only, not in list").

The serializer and the error bodies are in :mod:`sandbox.thredfi_rules`, OAuth2 in :mod:`sandbox.thredfi_auth`.
"""

from __future__ import annotations

import copy
import json
import math
import random
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Literal

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route, Router

from sandbox import thredfi_rules as rules
from sandbox._core import Emulator, iso, read_json, utcnow
from sandbox.fake import DEFAULT_COUNTRIES, fake_customers
from sandbox.thredfi_auth import FOREIGN_BUSINESS_ID, ThredfiAuth, Token

SANDBOX_PARTNER_UUID = "cb77028d-a8b4-581e-9a8d-95c7ad672e9d"
SANDBOX_API_KEY = "thred_sk_sandbox_4f1c9a7e2b6d4e08a3c5f7b9d1e3a5c7"
SANDBOX_BUSINESS_ID = "964f4325-3efb-400d-a1bd-8b1f29e828cf"
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100  # our choice: the doc leaves the maximum undocumented


class ThredfiEmulator(ThredfiAuth, Emulator):
    """In-memory Thredfi: OAuth2 tokens and ``/v1/platform/businesses/{id}/customers/``.

    Args:
        partner_uuid: the Basic-auth user of the token endpoint.
        api_key: the Basic-auth password of the token endpoint.
        business_id: the one business (owned by the partner) holding the customers.
        token_ttl_s: token lifetime, also returned as ``expires_in``.
        clock: monotonic seconds, the seam tests use to expire tokens.
        require_business_token: refuse a partner token on customer routes (the
            authentication guide's reading; ``False``: the endpoint pages').
        duplicate_external_id: what a create repeating an ``external_id``
            answers: ``"existing"`` (200 with the record) or ``"conflict"`` (409).
        max_page_size: the largest page served; bigger requests are clamped.
        fault_seed: seed of the fault RNG.
        kill_after_writes: see :class:`sandbox._core.Emulator`.
    """

    system = "thredfi"
    non_write_paths = ("/oauth2/token/",)
    field_aliases: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "name": ("company_name", "individual_name"), "phone": ("office_phone",),
        "mobile": ("mobile_phone",), "state": ("state_county",), "tax_id": ("vat_number",),
    }  # fmt: skip

    def __init__(
        self,
        *,
        partner_uuid: str = SANDBOX_PARTNER_UUID,
        api_key: str = SANDBOX_API_KEY,
        business_id: str = SANDBOX_BUSINESS_ID,
        token_ttl_s: float = 3600,
        clock: Callable[[], float] = time.monotonic,
        require_business_token: bool = True,
        duplicate_external_id: Literal["existing", "conflict"] = "existing",
        max_page_size: int = MAX_PAGE_SIZE,
        fault_seed: int = 0,
        kill_after_writes: int | None = None,
    ) -> None:
        self.require_business_token = require_business_token
        self.duplicate_external_id = duplicate_external_id
        self.max_page_size = max_page_size
        self.partner_uuid = partner_uuid
        self.api_key = api_key
        self.business_id = business_id
        self.token_ttl_s = token_ttl_s
        self.clock = clock
        self.tokens: dict[str, Token] = {}
        self._replays: dict[str, dict[str, Any]] = {}
        # external_id → record id, kept on every write: lookups never scan. An entry is
        # trusted only when the record still holds that external_id (edits leave stale ones).
        self._external_ids: dict[str, str] = {}
        self._ids = random.Random(0)  # reproducible customer ids across runs
        super().__init__(fault_seed=fault_seed, kill_after_writes=kill_after_writes)

    def routes(self) -> list[BaseRoute]:
        """The vendor routes, mounted without slash redirects (Django answers 404)."""
        customers = "/platform/businesses/{business_id}/customers/"
        detail = customers + "{customer_id}/"
        methods = ["GET", "PUT", "PATCH", "DELETE"]
        router = Router(
            routes=[
                Route("/platform/oauth2/token/", self._partner_token, methods=["POST"]),
                Route(customers, self._customers, methods=["GET", "POST"]),
                Route(detail, self._customer, methods=methods),
                Route(detail + "archive/", self._archive, methods=["POST"]),
                Route("/platform/{business_id}/oauth2/token/", self._business_token, methods=["POST"]),
            ],
            redirect_slashes=False,
        )
        return [Mount("/v1", app=router)]

    def reset(self) -> None:
        """Forget records, the request log, faults and cached idempotent replies."""
        super().reset()
        self._replays.clear()
        self._external_ids.clear()

    # -- admin / seeding ---------------------------------------------------

    def admin_seed(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """Create a customer from a create-style body, validated as the API would.

        Raises:
            ValueError: the body fails validation or its ``external_id`` exists.
        """
        clean, details = rules.validate(payload, current=None)
        if details:
            raise ValueError(json.dumps(details))
        if clean.get("external_id") and self._by_external_id(clean["external_id"]):
            raise ValueError(f"external_id {clean['external_id']!r} exists")
        return self._insert(clean)

    def admin_edit(self, record: dict[str, Any], changes: Mapping[str, Any]) -> None:
        """Apply a web-app edit in the read shape; bumps ``updated_at`` on a change."""
        before = copy.deepcopy(record)
        for key, value in changes.items():
            if key == "status":
                rules.set_status(record, str(value))
            elif key in rules.WRITABLE:
                record[key] = value
        rules.derive(record)
        self._index(record)
        if "updated_at" in changes:  # tests may pin it
            record["updated_at"] = changes["updated_at"]
        elif record != before:
            rules.touch(record)

    def seed_fake(
        self, count: int, seed: int = 7, countries: tuple[str, ...] = DEFAULT_COUNTRIES
    ) -> list[dict[str, Any]]:
        """Store ``count`` deterministic fake customers (inactive ones archived)."""
        return [
            self.admin_seed(
                {
                    "individual_name": fake.name if fake.kind == "individual" else "",
                    "company_name": fake.company_name or "",
                    "email": fake.email,
                    "office_phone": fake.phone,
                    "mobile_phone": fake.mobile,
                    "address_line1": fake.address_line1,
                    "address_line2": fake.address_line2,
                    "city": fake.city,
                    "state_county": fake.state,
                    "postal_code": fake.postal_code,
                    "country": fake.country,
                    "vat_number": fake.tax_id,
                    "notes": fake.notes,
                    "status": "active" if fake.active else "archived",
                }
            )
            for fake in fake_customers(count, seed=seed, countries=countries)
        ]

    # -- customers ---------------------------------------------------------

    async def _customers(self, request: Request) -> Response:
        if denied := self._guard(request):
            return denied
        if request.method == "POST":
            return await self._create(request)
        params = request.query_params
        if "external_id" in params:  # through the index: at most one holder, no scan
            held = self._by_external_id(params["external_id"])
            rows = [held] if held is not None else []
        else:
            rows = list(self.records.values())
        if params.get("include_archived", "").lower() not in ("true", "1"):
            rows = [r for r in rows if not r["is_archived"]]
        size = _page_size(params.get("page_size"), self.max_page_size)
        pages = max(1, math.ceil(len(rows) / size))  # Django keeps one empty first page
        raw = params.get("page", "1")
        page = pages if raw == "last" else int(raw) if raw.isdigit() else 0
        if not 1 <= page <= pages:
            return rules.error(404, "invalid_page", "Invalid page.")
        results = [rules.listed(r) for r in rows[(page - 1) * size : page * size]]
        info = {"total_count": len(rows), "current_page": page, "total_pages": pages,
                "page_size": size}  # fmt: skip
        return JSONResponse({"count": len(rows), "page_info": info, "results": results})

    async def _create(self, request: Request) -> Response:
        key = request.headers.get("idempotency-key")
        if key and key in self._replays:
            return JSONResponse(self._replays[key])
        body = await read_json(request)
        if not isinstance(body, dict):
            return rules.invalid({"non_field_errors": ["Invalid data. Expected a dictionary."]})
        clean, details = rules.validate(body, current=None)
        if details:
            return rules.invalid(details)
        if clean.get("external_id") and (existing := self._by_external_id(clean["external_id"])):
            if self.duplicate_external_id == "conflict":
                details = {"external_id": ["customer with this external id already exists."]}
                return rules.invalid(details, 409, "conflict", "duplicate_external_id")
            return JSONResponse(existing)  # 200, not 201: the idempotent answer
        record = self._insert(clean)
        self.count_write()
        if key:
            self._replays[key] = copy.deepcopy(record)
        return JSONResponse(record, status_code=201)

    async def _customer(self, request: Request) -> Response:
        if denied := self._guard(request):
            return denied
        if request.method == "DELETE":
            return rules.error(405, "method_not_allowed", 'Method "DELETE" not allowed.')
        record = self.records.get(request.path_params["customer_id"])
        if record is None:
            return rules.error(404, "not_found", "Customer not found.")
        if request.method == "GET":
            return JSONResponse(record)
        body = await read_json(request)
        if not isinstance(body, dict):
            return rules.invalid({"non_field_errors": ["Invalid data. Expected a dictionary."]})
        if request.method == "PUT":  # a replace: what is not sent goes back to its empty value
            body = {**rules.EMPTY, **body}
        clean, details = rules.validate(body, current=record)
        if details:
            return rules.invalid(details)
        other = clean.get("external_id") and self._by_external_id(clean["external_id"])
        if other and other["id"] != record["id"]:
            details = {"external_id": ["customer with this external id already exists."]}
            return rules.invalid(details, 409, "conflict", "duplicate_external_id")
        before = copy.deepcopy(record)
        rules.apply(record, clean)
        self._index(record)
        if record != before:
            rules.touch(record)
        self.count_write()
        return JSONResponse(record)

    async def _archive(self, request: Request) -> Response:
        if denied := self._guard(request):
            return denied
        record = self.records.get(request.path_params["customer_id"])
        if record is None:
            return rules.error(404, "not_found", "Customer not found.")
        if not record["is_archived"]:  # archiving twice is a harmless no-op
            rules.set_status(record, "archived")
            rules.touch(record)
            self.count_write()
        return JSONResponse(record)

    def _by_external_id(self, external_id: str) -> dict[str, Any] | None:
        record = self.records.get(self._external_ids.get(external_id, ""))
        return record if record is not None and record["external_id"] == external_id else None

    def _index(self, record: Mapping[str, Any]) -> None:
        if record["external_id"]:
            self._external_ids[record["external_id"]] = record["id"]

    def _insert(self, clean: Mapping[str, Any]) -> dict[str, Any]:
        stamp = iso(utcnow())
        record: dict[str, Any] = {
            "type": "CustomerData",
            "id": str(uuid.UUID(int=self._ids.getrandbits(128), version=4)),
            "external_id": None,
            **dict.fromkeys(rules.TEXT, ""),
            "display_name": "",
            "full_address": "",
            "address_string": "",
            "tax_exempt": False,
            "status": "ACTIVE",
            "is_active": True,
            "is_archived": False,
            "metadata": {},
            "transaction_tags": [],
            "payment_terms_days": None,
            "credit_limit_cents": None,
            "credit_limit": None,
            "outstanding_balance": 0,
            "documents": [],
            "created_at": stamp,
            "updated_at": stamp,
            "archived_at": None,
        }
        rules.apply(record, clean)
        self.records[record["id"]] = record
        self._index(record)
        return record


def _page_size(raw: str | None, largest: int) -> int:
    if raw is None or not raw.isdigit() or int(raw) < 1:
        return min(DEFAULT_PAGE_SIZE, largest)
    return min(int(raw), largest)


__all__ = [
    "DEFAULT_PAGE_SIZE",
    "FOREIGN_BUSINESS_ID",
    "MAX_PAGE_SIZE",
    "SANDBOX_API_KEY",
    "SANDBOX_BUSINESS_ID",
    "SANDBOX_PARTNER_UUID",
    "ThredfiEmulator",
]


# -- the plug-in declaration (custsync.sandbox entry point) ------------------------------------------------

from sandbox.plugin import EmulatorPlugin  # noqa: E402 - the declaration comes last

EMULATOR = EmulatorPlugin(
    name="thredfi",
    order=1,
    factory=ThredfiEmulator,
    connection=lambda base: {
        "system": "thredfi",
        "base_url": base,
        "partner_uuid": SANDBOX_PARTNER_UUID,
        "api_key": SANDBOX_API_KEY,
        "business_id": SANDBOX_BUSINESS_ID,
    },
    token_ttl=True,
)
