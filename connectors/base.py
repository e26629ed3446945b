"""The connector base class: the one request loop, paging loop and error table.

A connector module is mostly declarations (paths, paginator, auth, field
map, what the system can hold); everything that moves bytes lives here and
is never re-implemented per system:

- ``request`` sends through one ``httpx.AsyncClient`` with bounded
  concurrency and an optional rate limiter, classifies the answer through
  ``error_table`` and retries transient failures with stamina (exponential
  backoff with jitter, bounded in attempts and time; 429 waits
  ``Retry-After`` when the API sent one, unless that is past the budget).
  A request that is not idempotent (a create without an identity slot) is
  retried only when it provably never reached the server, or was refused
  with 429; otherwise the engine recovers the identity before creating again.
  ``timeout_s`` bounds a whole exchange, body included; an answer that says
  the quota is spent (``X-RateLimit-Remaining: 0``) holds the next request
  until its reset. Requests go only to the base URL's origin, and a
  connection that cannot be reached at all fails within seconds.
- ``pages`` walks every listing of the system to its end, and records in
  ``scan`` whether that walk proves the whole set.
- ``read`` maps one vendor record to a :class:`~connectors.model.RemoteCustomer`;
  a record that cannot be mapped comes back with a ``problem`` naming the
  canonical field, never as an exception.
"""

from __future__ import annotations

import asyncio
import re
import socket
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx
import stamina
import structlog
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from connectors import secrets
from connectors.auth import origin_of, restrict_to_origin, retry_after_seconds
from connectors.checks import CHECKS
from connectors.errors import (
    AuthError,
    ConnectorError,
    FatalError,
    NotFoundError,
    NotSupportedError,
    RateLimitedError,
    RejectedError,
    RetriableError,
)
from connectors.model import CANONICAL_FIELDS, TEXT_FIELDS, Customer, FieldProblem, NotTextError, RemoteCustomer
from connectors.pagination import LoopGuard, PageRequest, PageTally, Paginator
from connectors.ratelimit import RateLimiter, ThrottleGate

log = structlog.get_logger("custsync.connector")


class ConnectionSettings(BaseModel):
    """What every connection accepts; each system adds its credentials.

    Secrets are ``SecretStr`` in the subclasses so that no repr, log line or
    error message can show them.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    system: str
    base_url: str
    max_concurrency: int = Field(default=16, ge=1, le=512)
    requests_per_second: float | None = Field(default=None, gt=0)
    timeout_s: float = Field(default=30.0, gt=0)
    retry_attempts: int = Field(default=8, ge=1, le=50)
    retry_timeout_s: float = Field(default=300.0, gt=0)


@dataclass(frozen=True)
class TargetSpec:
    """What a system can hold, declared by its connector.

    Attributes:
        fields: canonical fields the system keeps (a round trip preserves them).
        required: canonical fields a create needs.
        limits: maximum length of canonical text fields.
        identity_slot: the system stores our external_id and finds a record by it.
        archive: the system has an archived / inactive state.
        natural_keys: canonical fields usable to find a record again
            (``match_on``) when there is no identity slot.
        checks: canonical field → name of a value check in
            :data:`connectors.checks.CHECKS` (``email``, ``phone``, ``url``) the
            system applies before it stores the field.
    """

    fields: frozenset[str]
    required: frozenset[str] = frozenset({"name"})
    limits: Mapping[str, int] = field(default_factory=dict)
    identity_slot: bool = False
    archive: bool = True
    natural_keys: tuple[str, ...] = ("tax_id", "email")
    formats: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    """canonical field → (regular expression it must match fully, what it means)."""
    checks: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # A misspelt check would silently let refused values through: fail at import instead.
        if unknown := sorted(set(self.checks.values()) - set(CHECKS)):
            raise ValueError(f"unknown value checks {unknown} (known: {sorted(CHECKS)})")


@dataclass(frozen=True)
class ErrorRule:
    """What an HTTP status means for the caller."""

    error: type[ConnectorError]
    message: str


#: Status → action, after the Airbyte CDK's default error mapping. A connector
#: with odd semantics overrides entries, never the control flow.
DEFAULT_ERROR_TABLE: Mapping[int, ErrorRule] = {
    400: ErrorRule(RejectedError, "rejected the record"),
    401: ErrorRule(AuthError, "refused the credentials"),
    403: ErrorRule(AuthError, "denied access"),
    404: ErrorRule(NotFoundError, "has no such record"),
    405: ErrorRule(NotSupportedError, "does not allow this operation"),
    408: ErrorRule(RetriableError, "timed out"),
    409: ErrorRule(RejectedError, "reported a conflict"),
    422: ErrorRule(RejectedError, "could not process the record"),
    429: ErrorRule(RateLimitedError, "is rate limiting us"),
}
_SERVER_ERROR = ErrorRule(RetriableError, "had a server error")
_OTHER_CLIENT_ERROR = ErrorRule(RejectedError, "refused the request")

#: Transport errors raised before the request could have reached the server:
#: safe to retry even for a create.
_NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
#: A refused or unresolvable connection is a setup error, not a blip: a few quick tries, then it is reported.
_CONNECT_WAITS = (0.5, 1.0)
_CONNECT_BUDGET_S = 3.0
#: Transport errors that no retry can change: a URL or a header httpx will not send.
_UNSENDABLE = (httpx.UnsupportedProtocol, httpx.LocalProtocolError, httpx.InvalidURL)
#: Operations whose 2xx body is read: an unreadable one is an error of the call, not of the caller.
_READ_OPS = frozenset({"create", "update"})
_PARSED = "custsync.json"
_PAST_BUDGET = "past the retry budget"
#: reads of one record or of a side catalog: their 404 says that thing is missing, not that base_url is wrong.
_ONE_THING_OPS = frozenset({"get", "states"})


@dataclass(frozen=True)
class Listing:
    """One listing to walk: Bigcapital needs two (active and inactive)."""

    path: str
    params: Mapping[str, str | int] = field(default_factory=dict)


@dataclass
class ScanReport:
    """Whether the last full walk of every listing is proof of the whole set.

    The engine takes a source record as vanished only after a complete scan.
    ``complete`` starts ``False`` and becomes ``True`` only when every listing
    was walked to its end without an error and nothing contradicted it; the
    paging code sets ``reason`` (one line, no values) when it is not.
    """

    complete: bool = False
    reason: str | None = "not scanned yet"
    records: int = 0

    def fail(self, reason: str) -> None:
        """The scan proves nothing: say why (the first reason is kept)."""
        if self.complete or self.reason is None or self.reason == "not scanned yet":
            self.reason = reason
        self.complete = False


@dataclass(frozen=True)
class CreateResult:
    """The record a create made, or found (``existed``: idempotent replay)."""

    remote: RemoteCustomer
    existed: bool = False


class FieldMappingError(ValueError):
    """A vendor record (or a canonical one) cannot be mapped; names the field.

    Args:
        field: the canonical field at fault.
        reason: what is wrong, without the value when it may be personal data.
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class Connector(ABC):
    """Base of every system's connector.

    Args:
        name: the connection's name in the config file.
        settings: the connection's validated settings.
        transport: an httpx transport (tests pass ``httpx.ASGITransport``).
        limiter: shared requests-per-second limiter, when configured.
    """

    system: ClassVar[str]
    settings_model: ClassVar[type[ConnectionSettings]]
    spec: ClassVar[TargetSpec]
    paginator: ClassVar[Paginator]
    error_table: ClassVar[Mapping[int, ErrorRule]] = DEFAULT_ERROR_TABLE
    #: vendor field name → canonical field, to name fields in refusals.
    vendor_fields: ClassVar[Mapping[str, str]] = {}
    #: ``str.format`` templates: ``{id}`` is the record id, other names come
    #: from :meth:`path_params` (the tenant ids some systems put in the path).
    create_path: ClassVar[str]
    item_path: ClassVar[str]
    update_method: ClassVar[str] = "PUT"
    #: the listing can be narrowed to records created on or after ``self.since``.
    can_filter_since: ClassVar[bool] = False
    #: a create with our external_id answers with the existing record (Thredfi),
    #: so no lookup is needed before it.
    create_is_idempotent: ClassVar[bool] = False

    def __init__(
        self,
        name: str,
        settings: ConnectionSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.name = name
        self.settings = settings
        self._transport = transport
        self._limiter = limiter
        self._slots = asyncio.Semaphore(settings.max_concurrency)
        self._client: httpx.AsyncClient | None = None
        self._throttle = ThrottleGate()
        #: no answer came yet: a 404 now more likely means a wrong base_url than a missing record.
        self._answered = False
        # Configured secrets are masked wherever a message quotes them (an error body echoing the key).
        secrets.remember(*_secret_values(settings))
        #: set by the engine for ``backfill --since`` (only where ``can_filter_since``).
        self.since: date | None = None
        #: what the last :meth:`pages` walk proves (read by the engine before deletes).
        self.scan = ScanReport()

    # -- lifecycle ---------------------------------------------------------

    async def __aenter__(self) -> Connector:
        self._refuse_unusable_settings()
        auth = self.auth()
        restrict_to_origin(auth, self.settings.base_url)
        self._client = httpx.AsyncClient(
            base_url=self.settings.base_url.rstrip("/"),
            auth=auth,
            timeout=self.settings.timeout_s,
            transport=self._transport,
            headers={"User-Agent": "custsync/0.1", "Accept": "application/json"},
            limits=httpx.Limits(max_connections=self.settings.max_concurrency),
        )
        await self.start()
        return self

    def _refuse_unusable_settings(self) -> None:
        """Fail at once on a base URL httpx cannot use or an empty credential, instead of retrying."""
        parts = urlsplit(self.settings.base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise FatalError(
                f"{self.where}: base_url {self.shown_url} is not an http(s) URL with a host "
                "(e.g. https://api.example.com)"
            )
        for name in type(self.settings).model_fields:
            value = getattr(self.settings, name)
            if isinstance(value, SecretStr) and not value.get_secret_value().strip():
                raise FatalError(f"{self.where}: {name} is empty (an unset environment variable?)")

    @property
    def where(self) -> str:
        """The connection as messages name it: ``name (system)``."""
        return f"{self.name} ({self.system})"

    @property
    def shown_url(self) -> str:
        """The base URL as messages may show it: no password, query or fragment."""
        return _masked_url(self.settings.base_url)

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # -- declarations each system provides ------------------------------

    @property
    @abstractmethod
    def tenant(self) -> str:
        """The account this connection reads, as part of each external_id."""

    @abstractmethod
    def auth(self) -> httpx.Auth:
        """The auth flow for every request."""

    @abstractmethod
    def listings(self) -> Sequence[Listing]:
        """Every listing that together returns all customers, active and not."""

    @abstractmethod
    def to_canonical(self, raw: Mapping[str, Any]) -> Customer:
        """Map a vendor record to the canonical customer.

        Raises:
            FieldMappingError: a field cannot be mapped.
        """

    @abstractmethod
    def to_payload(self, customer: Customer, external_id: str, *, create: bool) -> dict[str, Any]:
        """Map a canonical customer to the vendor's write body.

        Raises:
            FieldMappingError: a field cannot be expressed in this system.
        """

    async def start(self) -> None:
        """Called once when the connection opens, before any other request.

        Bigcapital asks its organization here (``GET /api/organization/current``)
        so that its external ids name the tenant, not the host.
        """
        return None

    def path_params(self) -> Mapping[str, str]:
        """Values for the path templates' placeholders other than ``{id}``."""
        return {}

    @property
    def collection(self) -> str:
        """The list / create path of this connection."""
        return self.create_path.format(**self.path_params())

    def record_path(self, remote_id: str) -> str:
        """The path of one record of this connection."""
        return self.item_path.format(id=remote_id, **self.path_params())

    def record_id(self, raw: Mapping[str, Any]) -> str:
        """The vendor id of a record."""
        value = raw["id"]
        if value is None or value == "":
            raise KeyError("id")
        return str(value)

    def external_id_of(self, raw: Mapping[str, Any]) -> str | None:
        """The identity a record holds in the system's own slot, if any."""
        return None

    def updated_at_of(self, raw: Mapping[str, Any]) -> datetime | None:
        """The record's last-modified time, if the system sends one."""
        for key in ("updated_at", "updatedAt", "updated"):
            value = raw.get(key)
            if isinstance(value, str):
                try:
                    return datetime.fromisoformat(value.replace("Z", "+00:00"))
                except ValueError:
                    return None
        return None

    # -- what the target can hold -----------------------------------------

    def shape(self, customer: Customer, *, truncate: bool = False) -> Customer:
        """The customer as this system will hold it: what gets fingerprinted.

        Fields the system does not keep become ``None``; with ``truncate``,
        over-long text is cut to the system's limit. Connectors whose
        mapping folds fields (Piriod's single address line) override this
        and call ``super().shape``.
        """
        kept = self.spec.fields | {"kind", "name", "active"}
        changes: dict[str, Any] = {f: None for f in CANONICAL_FIELDS if f not in kept}
        if truncate:
            for name, limit in self.spec.limits.items():
                value = changes.get(name, getattr(customer, name))
                if isinstance(value, str) and len(value) > limit:
                    changes[name] = value[:limit].rstrip()
        return customer.model_copy(update=changes) if changes else customer

    def problems(self, shaped: Customer) -> list[FieldProblem]:
        """Why this system cannot take the (shaped) customer, field by field.

        Checks the declared ``required``, ``limits``, ``formats`` and ``checks``, then
        :meth:`extra_problems` for rules that depend on several fields.
        """
        found: list[FieldProblem] = []
        for name in sorted(self.spec.required):
            if getattr(shaped, name) in (None, ""):
                found.append(FieldProblem(name, f"required by {self.system}, missing in the source record"))
        for name, limit in sorted(self.spec.limits.items()):
            value = getattr(shaped, name)
            if isinstance(value, str) and len(value) > limit:
                found.append(FieldProblem(name, f"{len(value)} characters, {self.system} keeps at most {limit}"))
        for name, (pattern, meaning) in sorted(self.spec.formats.items()):
            value = getattr(shaped, name)
            if isinstance(value, str) and re.fullmatch(pattern, value) is None:
                found.append(FieldProblem(name, f"{self.system} needs {meaning}"))
        for name, check in sorted(self.spec.checks.items()):
            value = getattr(shaped, name)
            if isinstance(value, str) and value and (needs := CHECKS[check](value)) is not None:
                found.append(FieldProblem(name, f"{self.system} needs {needs}"))
        found += self.extra_problems(shaped)
        # In canonical order, so the first named is the most basic field (name before company_name).
        order = {name: n for n, name in enumerate(CANONICAL_FIELDS)}
        return sorted(found, key=lambda p: order.get(p.field, len(order)))

    def extra_problems(self, shaped: Customer) -> list[FieldProblem]:
        """Rules that span fields (Piriod: tax_id required for regulated countries)."""
        return []

    # -- identity ---------------------------------------------------------

    def external_id_for(self, remote_id: str) -> str:
        """The external_id of a record that originates in this connection."""
        return f"{self.system}:{self.tenant}:{remote_id}"

    def external_id_aliases(self, remote_id: str) -> tuple[str, ...]:
        """Earlier forms of :meth:`external_id_for` for the same record, newest first.

        An identity recorded (or written into a target's identity slot) under
        an older form is the same customer: the engine looks these up before
        it takes a record as new.
        """
        return ()

    # -- reads ------------------------------------------------------------

    def read(self, raw: Any) -> RemoteCustomer:
        """Map one listed record; failures become a ``problem``, never raise."""
        if not isinstance(raw, Mapping):
            return RemoteCustomer(id="?", customer=None, problem=FieldProblem("id", "record is not an object"))
        try:
            remote_id = self.record_id(raw)
        except (KeyError, TypeError, ValueError):
            return RemoteCustomer(id="?", customer=None, problem=FieldProblem("id", "record has no id"))
        if why := _unkeepable(remote_id, ID_LIMIT):
            return RemoteCustomer(id="?", customer=None, problem=FieldProblem("id", f"the record id {why}"))
        external_id = _safe(lambda: self.external_id_of(raw))
        updated_at = _safe(lambda: self.updated_at_of(raw))
        if external_id is not None and (why := _unkeepable(external_id, EXTERNAL_ID_LIMIT)):
            # Never stored (it is the key of the state store): the record waits in quarantine.
            problem = FieldProblem("external_id", f"the {self.system} external id {why}")
            return RemoteCustomer(remote_id, None, problem, None, updated_at)
        try:
            customer = self.to_canonical(raw)
        except FieldMappingError as exc:
            problem = FieldProblem(exc.field, exc.reason)
        except NotTextError as exc:
            problem = FieldProblem(exc.field, f"holds a JSON {exc.kind}, not text (in {self.system})")
        except ValidationError as exc:
            first = exc.errors()[0]
            where = str(first["loc"][0]) if first["loc"] else "record"
            problem = FieldProblem(where, f"{first['msg']} (in {self.system})")
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            problem = FieldProblem("record", f"unreadable {self.system} record: {type(exc).__name__}")
        else:
            unreadable = next((f for f in TEXT_FIELDS if _not_unicode(getattr(customer, f))), None)
            if unreadable is None:
                return RemoteCustomer(remote_id, customer, None, external_id, updated_at)
            # Lone surrogates (an escaped "\ud800" in the JSON) can be neither hashed nor sent on.
            problem = FieldProblem(unreadable, f"holds characters that are not valid unicode (in {self.system})")
        return RemoteCustomer(remote_id, None, problem, external_id, updated_at)

    async def pages(self) -> AsyncIterator[list[RemoteCustomer]]:
        """Yield every customer, page by page, across all listings.

        ``self.scan`` says afterwards whether the walk was complete: it is
        ``complete`` only when every listing reached its end and nothing
        (totals, repeats, short pages, :meth:`ScanReport.fail` from anywhere)
        contradicted it.
        """
        # No reason yet: the first ``fail`` of the walk sets it (``fail`` keeps the first one).
        self.scan = ScanReport(complete=False, reason=None)
        finished = False
        try:
            for listing in self.listings():
                async for records in self.walk(listing, scan=self.scan):
                    self.scan.records += len(records)
                    yield [self.read(raw) for raw in records]
            finished = True
        except Exception as exc:
            self.scan.fail(f"the {self.system} listing stopped on an error ({type(exc).__name__})")
            raise
        finally:
            if finished and self.scan.reason is None:
                self.scan.complete = True
            elif self.scan.reason is None:
                self.scan.fail("the scan did not reach its end")

    async def walk(
        self, listing: Listing, *, op: str = "list", scan: ScanReport | None = None
    ) -> AsyncIterator[Sequence[Mapping[str, Any]]]:
        """Yield the raw records of one listing, page by page, to its end (loops refused).

        Records already yielded by this walk (a repeated page) are dropped.
        What the listing claimed is checked against what was read; when they
        disagree, ``scan`` (the customer walk's report) is failed with why.
        """
        guard = LoopGuard()
        tally = PageTally(listing.path)
        page: PageRequest | None = self.paginator.first(listing.path, listing.params)
        fetched = 0
        while page is not None:
            try:
                guard.check(page)
            except FatalError as exc:
                raise FatalError(f"{self.where} {op}: {secrets.scrub(str(exc))}") from None
            # Django-style servers answer a page past the end with 404: after page one, that is the end.
            ok = frozenset({404}) if fetched else frozenset()
            response = await self.request("GET", page.url, params=page.params, op=op, ok=ok)
            fetched += 1
            if response.status_code == 404:
                break
            body = _json(response)
            try:
                listed = self.paginator.records(body)
            except FatalError as exc:
                raise FatalError(f"{self.where} {op}: {exc}") from None
            keep = tally.fresh([self._id_or_none(raw) for raw in listed])
            records = [raw for raw, fresh in zip(listed, keep, strict=True) if fresh]
            following = self.paginator.next(page, body)
            tally.page(len(records), len(listed), self.paginator.reported(body), last=following is None)
            yield records
            page = following
        verdict = tally.verdict()
        if verdict is not None:
            log.warning("listing_unproven", connection=self.name, system=self.system, op=op, reason=verdict)
            if scan is not None:
                scan.fail(f"{self.system}: {verdict}")

    def _id_or_none(self, raw: Any) -> str | None:
        if not isinstance(raw, Mapping):
            return None
        try:
            return self.record_id(raw)
        except (KeyError, TypeError, ValueError):
            return None

    async def get(self, remote_id: str) -> RemoteCustomer:
        """Fetch one record by id."""
        response = await self.request("GET", self.record_path(remote_id), op="get")
        return self.read(_json(response))

    async def find_by_external_id(self, external_id: str) -> list[RemoteCustomer] | None:
        """Records holding ``external_id`` in the identity slot.

        Returns:
            The matches, or ``None`` when the system has no identity slot.
        """
        return None

    async def check(self) -> None:
        """Prove the credentials work with one cheap read."""
        listing = self.listings()[0]
        page = self.paginator.first(listing.path, listing.params)
        await self.request("GET", page.url, params=page.params, op="check")

    # -- writes -----------------------------------------------------------

    async def create(self, customer: Customer, external_id: str) -> CreateResult:
        """Create a record (active; the engine archives afterwards if needed)."""
        body = self.to_payload(customer, external_id, create=True)
        response = await self.request(
            "POST", self.collection, json=body, op="create", idempotent=self.create_is_idempotent
        )
        remote = self.read(_json(response))
        if remote.id == "?":
            # Applied, most likely, but unlinkable: a deferral (never a blind second POST);
            # the engine finds the record again before it creates anything.
            raise RetriableError(f"{self.system} answered the create without an id (HTTP {response.status_code})")
        return CreateResult(remote, existed=response.status_code == 200)

    async def update(
        self, remote_id: str, customer: Customer, external_id: str, *, fields: frozenset[str] | None = None
    ) -> RemoteCustomer | None:
        """Write the fields the system keeps (only ``fields`` of them, when given).

        Args:
            remote_id: the record to update.
            customer: the customer as shaped for this system.
            external_id: its identity.
            fields: the canonical fields the source speaks for; the others are
                left as they are in this system instead of being cleared.

        Returns:
            The record as the answer shows it, or ``None`` when the answer
            carries no readable record (the caller reads it back to verify).
        """
        body = self.only(self.to_payload(customer, external_id, create=False), fields)
        response = await self.request(self.update_method, self.record_path(remote_id), json=body, op="update")
        return self.answered_record(response)

    def answered_record(self, response: httpx.Response) -> RemoteCustomer | None:
        """The record a write answered with, or ``None`` when the body is not one."""
        try:
            body = response.json()
        except ValueError:
            return None
        if not isinstance(body, Mapping):
            return None
        remote = self.read(body)
        return remote if remote.customer is not None else None

    def only(self, body: dict[str, Any], fields: frozenset[str] | None) -> dict[str, Any]:
        """Drop from a write body the vendor keys of kept fields outside ``fields``."""
        if fields is None:
            return body
        untouched = self.spec.fields - fields
        # A vendor key missing from vendor_fields is spelled like its canonical field (``email``).
        return {key: value for key, value in body.items() if self.vendor_fields.get(key, key) not in untouched}

    async def set_active(self, remote_id: str, active: bool) -> None:
        """Archive (``active=False``) or re-activate a record.

        Raises:
            NotSupportedError: the system has no archived state.
        """
        raise NotSupportedError(f"{self.system} has no archived state")

    async def delete(self, remote_id: str) -> None:
        """Delete a record permanently."""
        await self.request("DELETE", self.record_path(remote_id), op="delete")

    # -- the one request loop ---------------------------------------------

    async def request(
        self,
        method: str,
        url: str,
        *,
        op: str,
        params: Mapping[str, str | int] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool = True,
        ok: frozenset[int] = frozenset(),
    ) -> httpx.Response:
        """Send one request with retries; return a 2xx (or ``ok``) response.

        Args:
            method: HTTP method.
            url: path under the base URL, or an absolute URL (``next`` links).
            op: what we are doing, for messages (``list``, ``create``...).
            params: query parameters.
            json: the body.
            headers: extra headers (idempotency keys).
            idempotent: ``False`` for a create the server could apply twice.
            ok: extra statuses to return instead of raising.

        Raises:
            RetriableError: still failing after the retry budget, or a wait the
                server asked for is longer than what is left of it.
            FatalError: credentials refused, the system cannot be used (the
                URL is malformed, refused or unresolvable; a 404 before any
                answer), or ``url`` leads to another origin.
            RecordError: the system refused this record.
        """
        self._refuse_foreign(url, op)
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + self.settings.retry_timeout_s
        connects = 0

        def backoff(exc: Exception) -> bool | float:
            nonlocal connects
            if isinstance(exc, RateLimitedError):
                if exc.retry_after is None:
                    return True
                left = deadline - loop.time()
                if exc.retry_after > left:
                    # Sleeping past the budget only to fail then: give up now, the record is deferred.
                    if _PAST_BUDGET not in str(exc):
                        exc.args = (f"{exc} and asks to wait {exc.retry_after:.0f} s, {_PAST_BUDGET}",)
                    return False
                return exc.retry_after
            if not isinstance(exc, RetriableError):
                return False
            if isinstance(exc.__cause__, httpx.ConnectError):
                connects += 1
                within = connects <= len(_CONNECT_WAITS) and loop.time() - started < _CONNECT_BUDGET_S
                return _CONNECT_WAITS[connects - 1] if within else False
            return idempotent or isinstance(exc.__cause__, _NEVER_SENT)

        try:
            async for attempt in stamina.retry_context(
                on=backoff,
                attempts=self.settings.retry_attempts,
                timeout=self.settings.retry_timeout_s,
                wait_initial=0.2,
                wait_max=20.0,
            ):
                with attempt:
                    return await self._send(
                        method, url, op=op, params=params, json=json, headers=headers, ok=ok, deadline=deadline
                    )
        except RetriableError as exc:
            if isinstance(exc.__cause__, httpx.ConnectError):
                raise FatalError(f"{self.where}: cannot reach {self.shown_url}: {_unreachable(exc.__cause__)}") from exc
            raise
        except NotFoundError as exc:
            if not self._answered and method == "GET" and op not in _ONE_THING_OPS:
                raise FatalError(
                    f"{self.where} {op}: {self.shown_url} answered 404 to its first call: check base_url "
                    "(a missing path prefix, such as Timbrix's /api?)"
                ) from exc
            raise
        raise AssertionError("unreachable")  # pragma: no cover - stamina re-raises

    def _refuse_foreign(self, url: str, op: str) -> None:
        """Refuse an absolute URL (a ``next`` link) outside the base URL's scheme, host and port."""
        try:
            target = httpx.URL(url)
            foreign = target.is_absolute_url and origin_of(target) != origin_of(self.settings.base_url)
        except (httpx.InvalidURL, TypeError, ValueError):
            raise FatalError(f"{self.where} {op}: refusing a malformed URL the server sent") from None
        if foreign:
            # The origin only: a query string could carry anything.
            raise FatalError(
                f"{self.where} {op}: refusing to follow a link to {secrets.scrub(origin_of(target))}, "
                f"outside {origin_of(self.settings.base_url)} (credentials go only to base_url)"
            )

    async def _send(
        self,
        method: str,
        url: str,
        *,
        op: str,
        params: Mapping[str, str | int] | None,
        json: Any,
        headers: Mapping[str, str] | None,
        ok: frozenset[int],
        deadline: float | None = None,
    ) -> httpx.Response:
        if self._client is None:
            raise RuntimeError("use the connector as an async context manager")
        await self._pace(op, deadline)
        if self._limiter is not None:
            await self._limiter.acquire()
        async with self._slots:
            try:
                # One deadline for the whole exchange: httpx's timeout is per read, so an
                # answer trickling a byte at a time would otherwise never time out.
                async with asyncio.timeout(self.settings.timeout_s):
                    response = await self._client.request(
                        method, url, params=dict(params) if params else None, json=json, headers=headers
                    )
            except ConnectorError as exc:
                # Raised by an auth flow (token endpoint refused or limited): say which system and call.
                text = str(exc) if str(exc).startswith(self.system) else f"{self.system} {op}: {exc}"
                exc.args = (secrets.scrub(text), *exc.args[1:])
                raise
            except TimeoutError as exc:
                raise RetriableError(
                    f"{self.system} {op}: no complete answer within {self.settings.timeout_s:g} s"
                ) from exc
            except _UNSENDABLE as exc:
                raise FatalError(f"{self.where} {op}: cannot send to {self.shown_url}: {type(exc).__name__}") from exc
            except httpx.TransportError as exc:
                raise RetriableError(f"{self.system} {op}: {type(exc).__name__}") from exc
        if self._throttle.observe(response.headers) is not None:
            log.info("throttle_spent", connection=self.name, system=self.system, op=op)
        if response.is_success:
            self._answered = True
            if (method == "GET" or op in _READ_OPS) and response.content.strip():
                _parse(response, f"{self.system} answered the {op} with a body that is not JSON")
            return response
        if response.status_code in ok:
            self._answered = True
            return response
        raise self.classify(response, op)

    async def _pace(self, op: str, deadline: float | None) -> None:
        """Wait while the server said this connection's quota is spent (bounded by the retry budget)."""
        wait = self._throttle.wait()
        if wait <= 0:
            return
        left = (deadline - asyncio.get_running_loop().time()) if deadline is not None else wait
        if wait > left:
            raise RateLimitedError(f"{self.system} {op}: the quota resets in {wait:.0f} s, {_PAST_BUDGET}", wait)
        log.info("throttle_wait", connection=self.name, system=self.system, op=op, seconds=round(wait, 2))
        await asyncio.sleep(wait)

    def classify(self, response: httpx.Response, op: str) -> ConnectorError:
        """Turn a non-2xx response into the error the caller acts on.

        Messages quote the vendor's reasons, scrubbed of every remembered
        secret, and never the values of the record.
        """
        status = response.status_code
        rule = self.error_table.get(status) or (_SERVER_ERROR if status >= 500 else _OTHER_CLIENT_ERROR)
        head = f"{self.system} {rule.message} ({op}, HTTP {status})"
        if rule.error is RateLimitedError:
            return RateLimitedError(head, retry_after_seconds(response))
        problems = self.parse_error(response)
        canonical = [(self.vendor_fields.get(f, f) if f else None, m) for f, m in problems]
        detail = "; ".join(f"{f}: {m}" if f else m for f, m in canonical)
        message = secrets.scrub(f"{head}: {detail}" if detail else head)
        if issubclass(rule.error, RejectedError | NotFoundError):
            first_field = next((f for f, _ in canonical if f), None)
            return rule.error(message, field=first_field)
        if rule.error is FatalError or issubclass(rule.error, FatalError):
            return rule.error(head)  # a refusal of credentials: nothing else to say
        return rule.error(message)

    def parse_error(self, response: httpx.Response) -> list[tuple[str | None, str]]:
        """(vendor field or None, message) pairs from any of the vendors' error shapes, scrubbed."""
        try:
            body = response.json()
        except (ValueError, RecursionError):
            return []
        return [(f, secrets.scrub(m)) for f, m in _problems(body)]


Problems = list[tuple[str | None, str]]


def _problems(body: Any) -> Problems:
    if isinstance(body, list):
        listed: Problems = [(None, str(m)) for m in body]
        return listed[:10]
    if not isinstance(body, dict):
        return []
    if isinstance(body.get("details"), dict):  # Thredfi validation
        return _field_lists(body["details"])
    message = body.get("message")
    if isinstance(message, list):  # NestJS class-validator: objects, or strings "email must be an email"
        found: Problems = []
        for item in message:
            if isinstance(item, dict):
                found += _constraints(item)
            else:
                found.append((str(item).split(" ", 1)[0] or None, str(item)))
        return found[:10]
    if isinstance(body.get("errors"), list):  # Bigcapital business rules
        rules: Problems = [_rule(e) for e in body["errors"] if isinstance(e, dict)]
        return rules[:10]
    for key in ("detail", "message", "error"):
        if isinstance(body.get(key), str):
            return [(None, body[key])]
    return _field_lists(body)  # Django REST: {"name": ["This field is required."]}


def _constraints(item: Mapping[str, Any], prefix: str = "") -> Problems:
    """A class-validator error object: its ``property`` and ``constraints`` messages.

    ``target`` (the whole body sent) and ``value`` are the record's personal
    data: they are never read.
    """
    prop = item.get("property")
    name = f"{prefix}{prop}" if isinstance(prop, str | int) and str(prop) else None
    out: Problems = []
    constraints = item.get("constraints")
    if isinstance(constraints, dict):
        out += [(name, text) for text in constraints.values() if isinstance(text, str)]
    children = item.get("children")
    if isinstance(children, list):
        for child in children:
            if isinstance(child, dict):
                out += _constraints(child, f"{name}." if name else "")
    return out or [(name, "is invalid")]


def _rule(error: Mapping[str, Any]) -> tuple[str | None, str]:
    """A Bigcapital business-rule error: its type, and its message when it has one."""
    kind = error.get("type")
    text = error.get("message")
    head = str(kind) if isinstance(kind, str | int) and str(kind) else "ERROR"
    return None, f"{head}: {text}" if isinstance(text, str) and text.strip() else head


def _field_lists(fields: Mapping[str, Any], prefix: str = "") -> list[tuple[str | None, str]]:
    out: list[tuple[str | None, str]] = []
    for key, value in fields.items():
        name = None if key in {"non_field_errors", "__all__"} else f"{prefix}{key}"
        if isinstance(value, list):
            out.extend((name, str(v)) for v in value if not isinstance(v, dict | list))
        elif isinstance(value, dict):
            out.extend(_field_lists(value, prefix=f"{prefix}{key}."))
        else:
            out.append((name, str(value)))
    return out[:10]


def _parse(response: httpx.Response, unreadable: str) -> Any:
    """The JSON body of a response, parsed once; an unreadable one is a RetriableError.

    Deep nesting (``RecursionError`` in the parser) is unreadable too. The
    cause is the parse error, never a "never sent" transport error, so a
    create whose answer is unreadable is not blindly sent again.
    """
    if _PARSED in response.extensions:
        return response.extensions[_PARSED]
    try:
        body = response.json()
    except (ValueError, RecursionError) as exc:
        raise RetriableError(f"{unreadable} (HTTP {response.status_code})") from exc
    response.extensions[_PARSED] = body
    return body


def _json(response: httpx.Response) -> Any:
    return _parse(response, "unreadable JSON body")


def _secret_values(settings: BaseModel) -> list[str]:
    """The values of a connection's ``SecretStr`` settings, and a password in its base URL."""
    values = [v.get_secret_value() for v in (getattr(settings, n) for n in type(settings).model_fields)
              if isinstance(v, SecretStr)]  # fmt: skip
    password = urlsplit(str(getattr(settings, "base_url", ""))).password
    return [*values, *([password] if password else [])]


def _masked_url(url: str) -> str:
    """``url`` without a password, query or fragment (they may hold credentials)."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        netloc = f"{parts.username or ''}:{secrets.MASK}@{netloc.rsplit('@', 1)[1]}"
    return secrets.scrub(f"{parts.scheme}://{netloc}{parts.path}" if parts.scheme else url.split("?", 1)[0])


def _unreachable(exc: httpx.ConnectError) -> str:
    """Why a connection could not be opened, in words, from the OS errors under ``exc``."""
    seen: BaseException | None = exc
    for _ in range(10):  # the chain is short: httpx → httpcore → OSError → the socket's own
        if seen is None:
            break
        if isinstance(seen, socket.gaierror):
            return "the host name cannot be resolved"
        if isinstance(seen, ConnectionRefusedError):
            return "connection refused"
        seen = seen.__cause__ or seen.__context__
    text = str(exc).lower()
    if "name or service not known" in text or "nodename nor servname" in text or "name resolution" in text:
        return "the host name cannot be resolved"
    if "refused" in text:
        return "connection refused"
    return f"cannot connect ({type(exc).__name__})"


#: what the state store keeps of a record id (``links.remote_id``) and of an external_id.
ID_LIMIT = 100
EXTERNAL_ID_LIMIT = 255


def _unkeepable(value: str, limit: int) -> str | None:
    """Why an identifier cannot be a key of the state store, or ``None`` when it can."""
    if len(value) > limit:
        return f"is longer than {limit} characters"
    if _not_unicode(value) or not value.isprintable():
        return "holds control or invalid characters"
    return None


def _not_unicode(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _safe(fn: Any) -> Any:
    try:
        return fn()
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def host_of(url: str) -> str:
    """The host (and port) of a base URL, as a tenant of last resort."""
    return urlsplit(url).netloc or url


__all__ = [
    "DEFAULT_ERROR_TABLE",
    "ConnectionSettings",
    "Connector",
    "CreateResult",
    "ErrorRule",
    "FieldMappingError",
    "Listing",
    "ScanReport",
    "TargetSpec",
    "host_of",
]
