"""The connector base class: what every system's connector does, over declarations.

A connector module is mostly declarations (paths, paginator, auth, field
table, what the system can hold). The base builds on
:class:`connectors.session.Session` (the settings, opening and closing, the
request loop and refused answers classified) and composes the modules that do
the work, never re-implemented per system: :mod:`connectors.http` (every request:
retries, pacing, deadlines, the origin guard), :mod:`connectors.errors` (what a
refused answer means), :mod:`connectors.fields` (reading and writing through
the field table), :mod:`connectors.reading` (listings walked to the end and
judged, one record mapped with its problems), :mod:`connectors.spec` (shaping
and problems) and :mod:`connectors.settings`.
"""

from __future__ import annotations

import time
from abc import abstractmethod
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from string import Formatter
from typing import Any, ClassVar

import structlog

from connectors import reading
from connectors import spec as specs
from connectors.errors import DEFAULT_ERROR_TABLE, ErrorRule, FieldMappingError, NotSupportedError, RetriableError
from connectors.fields import FieldTable, Writing, narrow
from connectors.http import Response, Transport, body_or_none, json_body, parsed
from connectors.model import Customer, FieldProblem, RemoteCustomer, clean
from connectors.pagination import Paginator
from connectors.ratelimit import RateLimiter
from connectors.reading import Listing, ScanReport
from connectors.session import Session, SettingsT
from connectors.settings import ConnectionSettings, host_of
from connectors.spec import TargetSpec

log = structlog.get_logger("custsync.connector")


@dataclass(frozen=True)
class CreateResult:
    """The record a create made, or found (``existed``: idempotent replay)."""

    remote: RemoteCustomer
    existed: bool = False


class Connector(Session[SettingsT]):
    """Base of every system's connector.

    Args:
        name: the connection's name in the config file.
        settings: the connection's validated settings.
        transport: an httpx transport (tests pass ``httpx.ASGITransport``).
        limiter: shared requests-per-second limiter, when configured.
        clock: monotonic seconds for token expiry; a seam for tests.
    """

    settings_model: ClassVar[type[ConnectionSettings]]
    spec: ClassVar[TargetSpec]
    paginator: ClassVar[Paginator]
    #: the system's fields: reading, the write body and the partial-update set come from it
    #: (and, unless a system sets its own, :attr:`vendor_fields`).
    fields: ClassVar[FieldTable | None] = None
    #: ``str.format`` templates: ``{id}`` is the record id, other names come
    #: from :meth:`path_params` (the tenant ids some systems put in the path).
    create_path: ClassVar[str]
    item_path: ClassVar[str]
    #: the query of the one listing of the default :meth:`listings`.
    listing_params: ClassVar[Mapping[str, str | int]] = {}
    #: the query parameter that narrows it to records created on or after a date.
    since_param: ClassVar[str | None] = None
    #: the record key of the identity slot, read by the default :meth:`external_id_of`.
    identity_key: ClassVar[str | None] = None
    #: the query that lists the records holding ``{external_id}`` (``None``: no identity slot).
    find_params: ClassVar[Mapping[str, str] | None] = None
    #: keep only the found records whose identity is exactly the one asked for.
    find_exact: ClassVar[bool] = False
    update_method: ClassVar[str] = "PUT"
    #: the listing can be narrowed to records created on or after ``self.since``.
    can_filter_since: ClassVar[bool] = False
    #: a create with our external_id answers with the existing record (Thredfi),
    #: so no lookup is needed before it.
    create_is_idempotent: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.fields is not None and "vendor_fields" not in cls.__dict__:
            cls.vendor_fields = cls.fields.vendor_fields

    def __init__(
        self,
        name: str,
        settings: SettingsT,
        *,
        transport: Transport | None = None,
        limiter: RateLimiter | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(name, settings, transport=transport, limiter=limiter, clock=clock)
        #: set by the engine for ``backfill --since`` (only where ``can_filter_since``).
        self.since: date | None = None
        #: what the last :meth:`pages` walk proves (read by the engine before deletes).
        self.scan = ScanReport()

    # -- declarations each system provides ------------------------------

    @property
    @abstractmethod
    def tenant(self) -> str:
        """The account this connection reads, as part of each external_id."""

    def listings(self) -> Sequence[Listing]:
        """Every listing that together returns all customers, active and not (by default, one).

        The default one is narrowed by :attr:`since_param` when the engine set :attr:`since`.
        """
        params = dict(self.listing_params)
        if self.since is not None and self.since_param is not None:
            params[self.since_param] = self.since.isoformat()
        return [Listing(self.collection, params)]

    def to_canonical(self, raw: Mapping[str, Any]) -> Customer:
        """Map a vendor record to the canonical customer, through :attr:`fields`.

        Raises:
            FieldMappingError: a field cannot be mapped.
        """
        return self._table().customer(raw, self.system)

    def to_payload(self, customer: Customer, external_id: str, *, create: bool) -> dict[str, Any]:
        """Map a canonical customer, shaped for this system, to the vendor's write body (:attr:`fields`).

        Raises:
            FieldMappingError: a field cannot be expressed in this system.
        """
        return self._table().payload(Writing(self.shape(customer), external_id, create, self))

    def _table(self) -> FieldTable:
        if self.fields is None:
            raise NotImplementedError(f"{type(self).__name__} declares no field table")
        return self.fields

    async def prepare(self, customer: Customer) -> None:
        """Called before a create or an update maps ``customer`` (Piriod loads its states catalog here)."""
        return None

    def path_params(self) -> Mapping[str, str]:
        """Values for the path templates' placeholders other than ``{id}``: the settings of those names."""
        names = {name for _, name, _, _ in Formatter().parse(self.create_path) if name and name != "id"}
        return {name: str(getattr(self.settings, name)) for name in sorted(names)}

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
        """The identity a record holds in the system's own slot (:attr:`identity_key`), if any."""
        return clean(raw.get(self.identity_key)) if self.identity_key else None

    def updated_at_of(self, raw: Mapping[str, Any]) -> datetime | None:
        """The record's last-modified time, if the system sends one."""
        return reading.updated_at(raw)

    # -- what the target can hold -----------------------------------------

    def shape(self, customer: Customer, *, truncate: bool = False) -> Customer:
        """The customer as this system will hold it: what gets fingerprinted.

        Fields the system does not keep become ``None``; with ``truncate``,
        over-long text is cut to the system's limit. Connectors whose
        mapping folds fields (Piriod's single address line) override this
        and call ``super().shape``.
        """
        return specs.shape(self.spec, customer, truncate=truncate)

    def problems(self, shaped: Customer) -> list[FieldProblem]:
        """Why this system cannot take the (shaped) customer, field by field.

        Checks the declared ``required``, ``limits``, ``formats`` and ``checks``, then
        :meth:`extra_problems` for rules that depend on several fields.
        """
        found = specs.problems(self.spec, self.system, shaped) + self.extra_problems(shaped)
        return specs.in_canonical_order(found)

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
        """Map one listed record; failures become a ``problem``, never raise (see ``reading.read_record``)."""
        return reading.read_record(self, raw)

    def pages(self) -> AsyncIterator[list[RemoteCustomer]]:
        """Yield every customer, page by page, across all listings; ``self.scan`` says afterwards
        whether the walk was complete (see :func:`connectors.reading.pages`)."""
        return reading.pages(self)

    def listed(self) -> AsyncIterator[reading.Fetched]:
        """Yield every page of customers as fetched, unread (see :func:`connectors.reading.listed`).

        A connector that lists its own way (its own :meth:`pages`) yields its pages as read, without a digest.
        """
        if type(self).pages is not Connector.pages:
            return reading.already_read(self.pages())
        return reading.listed(self)

    def walk(
        self, listing: Listing, *, op: str = "list", scan: ScanReport | None = None
    ) -> AsyncIterator[Sequence[Mapping[str, Any]]]:
        """Yield the raw records of one listing, page by page, to its end (see :func:`connectors.reading.walk`)."""
        return reading.walk(self, listing, op=op, scan=scan)

    async def get(self, remote_id: str) -> RemoteCustomer:
        """Fetch one record by id."""
        response = await self.request("GET", self.record_path(remote_id), op="get")
        return self.read(json_body(response))

    async def find_by_external_id(self, external_id: str) -> list[RemoteCustomer] | None:
        """Records holding ``external_id`` in the identity slot: a listing filtered by :attr:`find_params`.

        Returns:
            The matches, or ``None`` when the system has no identity slot.
        """
        if self.find_params is None:
            return None
        params = {key: value.format(external_id=external_id) for key, value in self.find_params.items()}
        response = await self.request("GET", self.collection, params=params, op="find")
        found = [self.read(raw) for raw in self.paginator.records(parsed(response))]
        # Exact matches only where a server might ignore the filter.
        return [remote for remote in found if remote.external_id == external_id] if self.find_exact else found

    async def check(self) -> None:
        """Prove the credentials work with one cheap read."""
        listing = self.listings()[0]
        page = self.paginator.first(listing.path, listing.params)
        await self.request("GET", page.url, params=page.params, op="check")

    # -- writes -----------------------------------------------------------

    async def create(self, customer: Customer, external_id: str) -> CreateResult:
        """Create a record (active; the engine archives afterwards if needed)."""
        await self.prepare(customer)
        body = self.to_payload(customer, external_id, create=True)
        response = await self.request(
            "POST", self.collection, json=body, op="create", idempotent=self.create_is_idempotent
        )
        remote = self.read(json_body(response))
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
        await self.prepare(customer)
        body = self.only(self.to_payload(customer, external_id, create=False), fields)
        response = await self.request(self.update_method, self.record_path(remote_id), json=body, op="update")
        return self.answered_record(response)

    def answered_record(self, response: Response) -> RemoteCustomer | None:
        """The record a write answered with, or ``None`` when the body is not one."""
        body = body_or_none(response)
        remote = self.read(body) if isinstance(body, Mapping) else None
        return remote if remote is not None and remote.customer is not None else None

    def only(self, body: dict[str, Any], fields: frozenset[str] | None) -> dict[str, Any]:
        """Drop from a write body the vendor keys of kept fields outside ``fields``."""
        if fields is None:
            return body
        owners = {**self.vendor_fields, **(self.fields.owners if self.fields is not None else {})}
        return narrow(body, self.spec.fields - fields, owners)

    async def set_active(self, remote_id: str, active: bool) -> None:
        """Archive (``active=False``) or re-activate a record.

        Raises:
            NotSupportedError: the system has no archived state.
        """
        raise NotSupportedError(f"{self.system} has no archived state")

    async def delete(self, remote_id: str) -> None:
        """Delete a record permanently."""
        await self.request("DELETE", self.record_path(remote_id), op="delete")


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
