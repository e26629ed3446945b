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
"""

from __future__ import annotations

import math
import operator
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar, TypedDict
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import phonenumbers
import pycountry
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sandbox._core import Emulator, OrderCache, is_email, iso, json_error, new_record, read_json, utcnow
from sandbox.fake import DEFAULT_COUNTRIES, fake_customers

SANDBOX_API_TOKEN = "sk_test_piriod_sandbox"  # noqa: S105 - public sandbox value
SANDBOX_WORKSPACE = "acc_01H8XYZ123ABC"
SANDBOX_ACCOUNT_COUNTRY = "CL"
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
#: countries whose tax agency Piriod integrates with (RUT, RFC, NIT).
REGULATED_COUNTRIES = frozenset({"CL", "MX", "CO"})


class PiriodState(TypedDict):
    """One entry of the states catalog, as ``GET /states/`` returns it."""

    id: int
    name: str
    country: str


# Ids are stable: each country owns a block, entries numbered in this order.
_STATE_NAMES: dict[str, tuple[int, str]] = {
    "CL": (
        1,
        "Arica y Parinacota|Tarapacá|Antofagasta|Atacama|Coquimbo|Valparaíso|"
        "Región Metropolitana de Santiago|Libertador General Bernardo O'Higgins|Maule|"
        "Ñuble|Biobío|La Araucanía|Los Ríos|Los Lagos|"
        "Aysén del General Carlos Ibáñez del Campo|Magallanes y de la Antártica Chilena",
    ),
    "MX": (
        101,
        "Aguascalientes|Baja California|Baja California Sur|Campeche|Chiapas|"
        "Chihuahua|Ciudad de México|Coahuila|Colima|Durango|Estado de México|Guanajuato|"
        "Guerrero|Hidalgo|Jalisco|Michoacán|Morelos|Nayarit|Nuevo León|Oaxaca|Puebla|"
        "Querétaro|Quintana Roo|San Luis Potosí|Sinaloa|Sonora|Tabasco|Tamaulipas|"
        "Tlaxcala|Veracruz|Yucatán|Zacatecas",
    ),
    "US": (
        201,
        "Alabama|Alaska|Arizona|Arkansas|California|Colorado|Connecticut|Delaware|"
        "District of Columbia|Florida|Georgia|Hawaii|Idaho|Illinois|Indiana|Iowa|Kansas|"
        "Kentucky|Louisiana|Maine|Maryland|Massachusetts|Michigan|Minnesota|Mississippi|"
        "Missouri|Montana|Nebraska|Nevada|New Hampshire|New Jersey|New Mexico|New York|"
        "North Carolina|North Dakota|Ohio|Oklahoma|Oregon|Pennsylvania|Rhode Island|"
        "South Carolina|South Dakota|Tennessee|Texas|Utah|Vermont|Virginia|Washington|"
        "West Virginia|Wisconsin|Wyoming",
    ),
    "GB": (301, "England|Scotland|Wales|Northern Ireland"),
}
STATES: dict[int, PiriodState] = {
    base + i: {"id": base + i, "name": name, "country": country}
    for country, (base, names) in _STATE_NAMES.items()
    for i, name in enumerate(names.split("|"))
}
# pycountry has no country → currency table; unknown countries fall back to USD.
_CURRENCIES = {
    "CL": "CLP",
    "MX": "MXN",
    "US": "USD",
    "GB": "GBP",
    "CO": "COP",
    "PE": "PEN",
    "AR": "ARS",
    "BR": "BRL",
    "UY": "UYU",
    "CA": "CAD",
    "ES": "EUR",
    "DE": "EUR",
    "FR": "EUR",
    "IT": "EUR",
    "PT": "EUR",
    "NL": "EUR",
    "IE": "EUR",
}
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
_REQUIRED = ("name", "address")
_BOOLS = ("send_invoices", "send_collections", "send_vouchers")
_STATUSES = ("active", "archived", "pending")
_TRUE = {"true", "t", "yes", "y", "on", "1"}
_FALSE = {"false", "f", "no", "n", "off", "0"}
_URL = re.compile(r"^https?://[^\s/$.?#][^\s]*\.[^\s]+$", re.IGNORECASE)
_EXACT_FILTERS = ("email", "name", "tax_id", "status", "reference")
_ORDERING_FIELDS = frozenset({"id", "name", "email", "created", "updated", "status", "reference", "tax_id"})
_SEED_FIELDS = frozenset({*_CHAR_LIMITS, *_BOOLS, "status", "currency", "tax_settings", "metadata"})
_SEARCH_FIELDS = ("name", "email", "tax_id", "reference")
_REQUIRED_MSG = "This field is required."
_BAD_CHOICE = "Select a valid choice. That choice is not one of the available choices."
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def country_object(code: str) -> dict[str, Any] | None:
    """The read shape of a country id (``None`` when the id is unknown)."""
    country = pycountry.countries.get(alpha_2=code) if len(code) == 2 else None
    if country is None:
        return None
    prefix = phonenumbers.country_code_for_region(code)
    return {
        "id": code,
        "name": getattr(country, "common_name", country.name),
        "code": f"+{prefix}" if prefix else "",
        "has_regulation": code in REGULATED_COUNTRIES,
        "currencies": [_CURRENCIES.get(code, "USD")],
    }


def state_id(country: str, name: str) -> int | None:
    """Find a state id by name (case and accent insensitive), as a user picks it."""
    wanted = _fold(name)
    return next((s["id"] for s in STATES.values() if s["country"] == country and _fold(s["name"]) == wanted), None)


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
        if (bad := _body_error(body)) is not None:
            return bad
        fields, errors = self._clean(body, record)
        if full:
            errors = {**{n: [_REQUIRED_MSG] for n in _REQUIRED if n not in body}, **errors}
        if errors:
            return json_error(400, errors)
        if record is None:
            record, status = self._create(fields, test_mode=_test_mode(request)), 201
        else:
            _apply(record, fields)
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
            return json_error(400, {"country": [_BAD_CHOICE]})
        name = _fold(request.query_params.get("name", ""))
        rows = [
            dict(s)
            for s in STATES.values()
            if (not country or s["country"] == country) and (not name or _fold(s["name"]) == name)
        ]
        return _paginate(request, rows)

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
        rows = [r for r in candidates if r["test_mode"] == test_mode]
        for key, raw in params.multi_items():
            if not raw:  # django-filter skips empty values
                continue
            field, _, lookup = key.partition("__")
            values = raw.split(",") if lookup == "in" else [raw]
            if field == "country" and lookup in ("", "in"):
                if any(country_object(v) is None for v in values):
                    return json_error(400, {key: [_BAD_CHOICE]})
                rows = [r for r in rows if r["country"] and r["country"]["id"] in values]
            elif field == "status" and lookup in ("", "in"):
                if bad := [v for v in values if v not in _STATUSES]:
                    msg = f"Select a valid choice. {bad[0]} is not one of the available choices."
                    return json_error(400, {key: [msg]})
                rows = [r for r in rows if r["status"] in values]
            elif field in _EXACT_FILTERS and lookup in ("", "in"):
                rows = [r for r in rows if r[field] in values]
            elif field == "metadata" and lookup:
                rows = [r for r in rows if (r["metadata"] or {}).get(lookup) == raw]
            elif field == "created" and lookup in ("", "gte", "lte"):
                moment = _parse_moment(raw)
                if moment is None:
                    return json_error(400, {key: ["Enter a valid date/time."]})
                compare = {"gte": operator.ge, "lte": operator.le}.get(lookup, operator.eq)
                rows = [r for r in rows if compare(_parse_moment(r["created"]) or _EPOCH, moment)]
            elif key == "search":
                terms = [t for t in re.split(r"[\s,]+", raw.lower()) if t]
                rows = [
                    r for r in rows if all(any(t in str(r[f] or "").lower() for f in _SEARCH_FIELDS) for t in terms)
                ]
        return _paginate(request, rows if ordered else _order(rows, ordering))

    def _clean(self, body: Mapping[str, Any], record: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
        """Validate a write body like the DRF serializer; ``record`` is set for updates."""
        fields: dict[str, Any] = {}
        errors: dict[str, Any] = {n: [_REQUIRED_MSG] for n in _REQUIRED if record is None and n not in body}
        for name, clean in _CLEANERS.items():
            if name in body:
                try:
                    fields[name] = clean(name, body[name])
                except _Invalid as exc:
                    errors[name] = exc.detail
        # Cross-field rules look at the record as it would be after the write; an
        # update is only held to them when it touches the fields involved.
        old_country = record["country"]["id"] if record and record["country"] else None
        country = fields.get("country", old_country or self.account_country)
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
            and country == self.account_country
            and not tax_id
            and "tax_id" not in errors
            and (record is None or {"country", "tax_id"} & fields.keys())
        ):
            errors["tax_id"] = [_REQUIRED_MSG]
        if record is None:
            fields.setdefault("country", country)
        return fields, errors

    def _create(self, fields: Mapping[str, Any], *, test_mode: bool) -> dict[str, Any]:
        now = iso(utcnow())
        self._next_id += 1
        # A fixed-width Crockford id sorts like creation order, as a ULID does.
        number = (0x018F2A6B3C00 << 80) + self._next_id
        record_id = "cus_" + "".join(_CROCKFORD[(number >> (5 * i)) & 31] for i in reversed(range(26)))
        country = country_object(fields["country"])
        record = new_record(
            self.records,
            {
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
            },
        )
        _apply(record, fields)
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
        fields = {k: v for k, v in payload.items() if k in _SEED_FIELDS}
        fields["country"] = self._resolve_country(payload.get("country"))
        fields["state"] = _resolve_state(fields["country"], payload.get("state"))
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
            changes["state"] = _resolve_state(country, changes["state"])
        _apply(record, changes)
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


def _resolve_state(country: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, dict):
        value = value["id"]
    if isinstance(value, int) or str(value).isdigit():
        if int(value) not in STATES:
            raise ValueError(f"unknown Piriod state id {value}")
        return int(value)
    found = state_id(country, str(value))
    if found is None:
        raise ValueError(f"no Piriod state named {value!r} in {country}")
    return found


def _apply(record: dict[str, Any], fields: Mapping[str, Any]) -> None:
    for key, value in fields.items():
        if key == "country":
            record["country"] = country_object(value) if isinstance(value, str) else value
        elif key == "state":
            record["state"] = dict(STATES[value]) if isinstance(value, int) else value
        else:
            record[key] = value


class _Invalid(Exception):  # noqa: N818 - internal signal, not an error to report
    def __init__(self, detail: list[str] | dict[str, list[str]]) -> None:
        self.detail = detail


def _char(name: str, value: Any) -> str | None:
    if value is None:
        if name in _REQUIRED:
            raise _Invalid(["This field may not be null."])
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _Invalid(["Not a valid string."])
    text = str(value).strip()  # DRF's CharField trims whitespace
    limit = _CHAR_LIMITS[name]
    if not text and name in _REQUIRED:
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
        else value in _STATUSES
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


def _body_error(body: Any) -> Response | None:
    if body is None:
        return json_error(400, {"detail": "JSON parse error - Expecting value: line 1 column 1"})
    if not isinstance(body, dict):
        kind = type(body).__name__
        return json_error(400, {"non_field_errors": [f"Invalid data. Expected a dictionary, but got {kind}."]})
    return None


def _not_allowed(method: str) -> Response:
    return json_error(405, {"detail": f'Method "{method}" not allowed.'})


def _test_mode(request: Request) -> bool:
    return request.headers.get("x-piriod-test-mode", "false").strip().lower() in ("true", "1")


def _paginate(request: Request, rows: list[dict[str, Any]]) -> Response:
    """DRF's PageNumberPagination, including its edge cases."""
    size = DEFAULT_PAGE_SIZE
    try:  # invalid or non-positive sizes fall back to the default, large ones clamp
        wanted = int(request.query_params.get("page_size", ""))
        size = min(wanted, MAX_PAGE_SIZE) if wanted > 0 else DEFAULT_PAGE_SIZE
    except ValueError:
        pass
    pages = max(1, math.ceil(len(rows) / size))
    raw = request.query_params.get("page", "1")
    try:
        page = pages if raw == "last" else int(raw)
    except ValueError:
        page = 0
    if not 1 <= page <= pages:
        return json_error(404, {"detail": "Invalid page."})
    url = str(request.url)
    return JSONResponse(
        {
            "count": len(rows),
            "next": _page_url(url, page + 1) if page < pages else None,
            "previous": _page_url(url, page - 1) if page > 1 else None,
            "results": rows[(page - 1) * size : page * size],
        }
    )


def _page_url(url: str, page: int) -> str:
    # Like DRF's replace_query_param: sorted params, and no ``page`` for page 1.
    scheme, netloc, path, query, fragment = urlsplit(url)
    params = parse_qs(query, keep_blank_values=True)
    params.pop("page", None)
    if page > 1:
        params["page"] = [str(page)]
    return urlunsplit((scheme, netloc, path, urlencode(sorted(params.items()), doseq=True), fragment))


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


def _parse_moment(raw: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold().strip())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


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
