"""What a connector reads: its listings, walked to the end and judged, and one record mapped.

- :func:`walk` follows one listing page by page (loops refused, repeated
  records dropped) and fails the :class:`ScanReport` of the walk when what the
  listing claimed disagrees with what was read;
- :func:`read_record` maps one vendor record to a
  :class:`~connectors.model.RemoteCustomer`; a record that cannot be mapped
  comes back with a ``problem`` naming the canonical field, never as an exception.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog
from pydantic import ValidationError

from connectors import secrets
from connectors.errors import FatalError, FieldMappingError
from connectors.http import json_body, release
from connectors.model import TEXT_FIELDS, Customer, FieldProblem, NotTextError, RemoteCustomer
from connectors.pagination import LoopGuard, PageRequest, PageTally

if TYPE_CHECKING:
    from connectors.base import Connector

log = structlog.get_logger("custsync.connector")


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
class Fetched:
    """One page of a listing as fetched: its raw records (repeats dropped) and what identifies them.

    ``digest`` covers the listing's path and the page's parameters, the answer's bytes
    as received, and which of its records the walk kept: two pages with one digest
    hold the same records, byte for byte (the no-op fast path, :mod:`worker.engine.memo`).
    """

    records: Sequence[Mapping[str, Any]]
    digest: str | None
    #: the page as read already, from a connector that lists its own way (its ``pages()``): no digest then
    customers: list[RemoteCustomer] | None = None
    #: each kept record's id as the walk read it (``None``: none readable), in ``records`` order
    ids: Sequence[str | None] = ()
    #: when the page was asked for (UTC): the records are as the system held them at some moment after it.
    #: A two-way run reads a record again whose state-store memory moved after this (:mod:`worker.engine.fresh`).
    listed_at: datetime | None = None

    def read(self, connector: Connector[Any]) -> list[RemoteCustomer]:
        """The page's records, each mapped (:func:`read_record`)."""
        return self.customers if self.customers is not None else [connector.read(raw) for raw in self.records]


def read_record(connector: Connector[Any], raw: Any) -> RemoteCustomer:
    """Map one listed record; failures become a ``problem``, never raise."""
    if not isinstance(raw, Mapping):
        return RemoteCustomer(id="?", customer=None, problem=FieldProblem("id", "record is not an object"))
    try:
        remote_id = connector.record_id(raw)
    except (KeyError, TypeError, ValueError):
        return RemoteCustomer(id="?", customer=None, problem=FieldProblem("id", "record has no id"))
    if why := _unkeepable(remote_id, ID_LIMIT):
        return RemoteCustomer(id="?", customer=None, problem=FieldProblem("id", f"the record id {why}"))
    external_id = _safe(lambda: connector.external_id_of(raw))
    updated_at = _safe(lambda: connector.updated_at_of(raw))
    if external_id is not None and (why := _unkeepable(external_id, EXTERNAL_ID_LIMIT)):
        # Never stored (it is the key of the state store): the record waits in quarantine.
        problem = FieldProblem("external_id", f"the {connector.system} external id {why}")
        return RemoteCustomer(remote_id, None, problem, None, updated_at)
    try:
        customer = connector.to_canonical(raw)
    except FieldMappingError as exc:
        problem = FieldProblem(exc.field, exc.reason)
    except NotTextError as exc:
        problem = FieldProblem(exc.field, f"holds a JSON {exc.kind}, not text (in {connector.system})")
    except ValidationError as exc:
        first = exc.errors()[0]
        where = str(first["loc"][0]) if first["loc"] else "record"
        problem = FieldProblem(where, f"{first['msg']} (in {connector.system})")
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        problem = FieldProblem("record", f"unreadable {connector.system} record: {type(exc).__name__}")
    else:
        unreadable = _not_unicode_field(customer)
        if unreadable is None:
            return RemoteCustomer(remote_id, customer, None, external_id, updated_at)
        # Lone surrogates (an escaped "\ud800" in the JSON) can be neither hashed nor sent on.
        problem = FieldProblem(unreadable, f"holds characters that are not valid unicode (in {connector.system})")
    return RemoteCustomer(remote_id, None, problem, external_id, updated_at)


async def walk(
    connector: Connector[Any], listing: Listing, *, op: str = "list", scan: ScanReport | None = None
) -> AsyncIterator[Sequence[Mapping[str, Any]]]:
    """Yield the raw records of one listing, page by page, to its end (see :func:`fetch`)."""
    async for fetched in fetch(connector, listing, op=op, scan=scan):
        yield fetched.records


async def fetch(
    connector: Connector[Any], listing: Listing, *, op: str = "list", scan: ScanReport | None = None
) -> AsyncIterator[Fetched]:
    """Yield the pages of one listing, to its end (loops refused), each with its digest.

    Records already yielded by this walk (a repeated page) are dropped.
    What the listing claimed is checked against what was read; when they
    disagree, ``scan`` (the customer walk's report) is failed with why.
    """
    guard = LoopGuard()
    tally = PageTally(listing.path)
    page: PageRequest | None = connector.paginator.first(listing.path, listing.params)
    fetched = 0
    while page is not None:
        try:
            guard.check(page)
        except FatalError as exc:
            raise FatalError(f"{connector.where} {op}: {secrets.scrub(str(exc))}") from None
        # Django-style servers answer a page past the end with 404: after page one, that is the end.
        ok = frozenset({404}) if fetched else frozenset()
        asked = datetime.now(UTC)
        response = await connector.request("GET", page.url, params=page.params, op=op, ok=ok)
        fetched += 1
        if response.status_code == 404:
            break
        body = json_body(response)
        try:
            listed = connector.paginator.records(body)
        except FatalError as exc:
            raise FatalError(f"{connector.where} {op}: {exc}") from None
        found = [_id_or_none(connector, raw) for raw in listed]
        keep = tally.fresh(found)
        records = [raw for raw, fresh in zip(listed, keep, strict=True) if fresh]
        following = connector.paginator.next(page, body)
        tally.page(len(records), len(listed), connector.paginator.reported(body), last=following is None)
        ids = [record_id for record_id, fresh in zip(found, keep, strict=True) if fresh]
        read = Fetched(records, _digest(page, response.content, keep), ids=ids, listed_at=asked)
        release(response)  # the records are all that is kept of the page
        yield read
        page = following
    verdict = tally.verdict()
    if verdict is not None:
        log.warning("listing_unproven", connection=connector.name, system=connector.system, op=op, reason=verdict)
        if scan is not None:
            scan.fail(f"{connector.system}: {verdict}")


def _id_or_none(connector: Connector[Any], raw: Any) -> str | None:
    if not isinstance(raw, Mapping):
        return None
    try:
        return connector.record_id(raw)
    except (KeyError, TypeError, ValueError):
        return None


async def pages(connector: Connector[Any]) -> AsyncIterator[list[RemoteCustomer]]:
    """Yield every customer, page by page, across all listings (see :func:`listed`)."""
    async for fetched in listed(connector):
        yield fetched.read(connector)


async def already_read(pages: AsyncIterator[list[RemoteCustomer]]) -> AsyncIterator[Fetched]:
    """The pages of a connector that lists its own way, as :class:`Fetched` without a digest.

    Such a connector may have read a page before it was asked for it: each page is taken as
    listed when the walk began (the earliest moment it can hold), never later.
    """
    began = datetime.now(UTC)
    async for page in pages:
        yield Fetched((), None, page, listed_at=began)


async def listed(connector: Connector[Any]) -> AsyncIterator[Fetched]:
    """Yield every page of customers as fetched, across all listings, unread.

    ``connector.scan`` says afterwards whether the walk was complete: it is
    ``complete`` only when every listing reached its end and nothing
    (totals, repeats, short pages, :meth:`ScanReport.fail` from anywhere)
    contradicted it.
    """
    # No reason yet: the first ``fail`` of the walk sets it (``fail`` keeps the first one).
    connector.scan = ScanReport(complete=False, reason=None)
    finished = False
    try:
        for listing in connector.listings():
            async for fetched in fetch(connector, listing, scan=connector.scan):
                connector.scan.records += len(fetched.records)
                yield fetched
        finished = True
    except Exception as exc:
        connector.scan.fail(f"the {connector.system} listing stopped on an error ({type(exc).__name__})")
        raise
    finally:
        if finished and connector.scan.reason is None:
            connector.scan.complete = True
        elif connector.scan.reason is None:
            connector.scan.fail("the scan did not reach its end")


def _digest(page: PageRequest, content: bytes, keep: Sequence[bool]) -> str:
    """A page's digest (:class:`Fetched`): what was asked, what came back, what was kept."""
    asked = repr(page.key())
    digest = hashlib.blake2b(asked.encode(), digest_size=16)
    digest.update(content)
    digest.update(bytes(keep))
    return digest.hexdigest()


def updated_at(raw: Mapping[str, Any]) -> datetime | None:
    """A record's last-modified time, from the first of the usual keys it has as text."""
    for key in ("updated_at", "updatedAt", "updated"):
        value = raw.get(key)
        if isinstance(value, str):
            try:
                return datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                return None
    return None


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


def _not_unicode_field(customer: Customer) -> str | None:
    """The first text field of ``customer`` that is not valid unicode (a lone surrogate), if any."""
    values = customer.__dict__
    try:
        # One encode of them all: a surrogate fails to encode wherever it stands, alone or beside another.
        "".join([v for f in TEXT_FIELDS if (v := values[f]) is not None]).encode("utf-8")
    except UnicodeEncodeError:
        return next(f for f in TEXT_FIELDS if _not_unicode(values[f]))
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


__all__ = ["EXTERNAL_ID_LIMIT", "ID_LIMIT", "Listing", "ScanReport", "pages", "read_record", "updated_at", "walk"]
