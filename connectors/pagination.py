"""Paginators: how a listing walks from its first page to its last.

A paginator turns one page's response body into its records and the next
request, or ``None`` at the end. Paginators refuse to loop: a repeated
request (the same URL and parameters twice) or passing ``max_pages`` raises
:class:`~connectors.errors.FatalError`, as the Singer SDK does.

Totals are never trusted to decide where a listing ends: a walk goes on
while pages come full and stops at the first empty or short one, whatever
the envelope claims. What the envelope claims is only checked afterwards
(:class:`PageTally`): a listing whose reported total disagrees with what
was read, that repeats records, or that sent a short page before its last
proves nothing about the records it did not show (the engine then deletes
nothing).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from connectors.errors import FatalError

Params = Mapping[str, str | int]


@dataclass(frozen=True)
class PageRequest:
    """One page to fetch: a path (or absolute URL) and its query parameters."""

    url: str
    params: Params = field(default_factory=dict)
    #: records a full page holds (``None``: the paginator's ``page_size``); a
    #: server that serves fewer than asked sets it after the first page.
    expect: int | None = None

    def key(self) -> tuple[str, tuple[tuple[str, str], ...]]:
        """A hashable identity, for loop detection."""
        return self.url, tuple(sorted((k, str(v)) for k, v in self.params.items()))


class Paginator(Protocol):
    """Walks one listing page by page."""

    def first(self, path: str, params: Params) -> PageRequest:
        """The request for the first page."""

    def records(self, body: Any) -> Sequence[Mapping[str, Any]]:
        """The records on a page."""

    def next(self, current: PageRequest, body: Any) -> PageRequest | None:
        """The request for the page after ``current``, or ``None`` at the end."""

    def reported(self, body: Any) -> tuple[int | None, int | None]:
        """(records, pages) the envelope says the whole listing has, when it says."""


def _items(body: Any, key: str | None) -> Sequence[Mapping[str, Any]]:
    items = body if key is None else (body or {}).get(key) if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise FatalError(f"listing answered an unexpected body: no {key or 'array'} of records")
    return items


@dataclass(frozen=True)
class PageNumberPaginator:
    """1-based page numbers with a total given somewhere in the envelope.

    Args:
        items_key: the envelope key holding the records.
        page_size: records per page to ask for.
        page_param: query parameter of the page number.
        size_param: query parameter of the page size.
        total_pages_path: keys leading to the total page count, when the
            envelope has one (Thredfi ``page_info.total_pages``).
        total_items_path: keys leading to the total record count, when the
            page count must be derived (Bigcapital ``pagination.total``).
    """

    items_key: str
    page_size: int = 100
    page_param: str = "page"
    size_param: str = "page_size"
    total_pages_path: tuple[str, ...] = ()
    total_items_path: tuple[str, ...] = ()

    def first(self, path: str, params: Params) -> PageRequest:
        """Ask for page 1."""
        return PageRequest(path, {**params, self.page_param: 1, self.size_param: self.page_size})

    def records(self, body: Any) -> Sequence[Mapping[str, Any]]:
        """The records under ``items_key``."""
        return _items(body, self.items_key)

    def next(self, current: PageRequest, body: Any) -> PageRequest | None:
        """The next page number while pages come full; the first empty or short page is the last.

        The envelope's total is not believed: a total too small must not cut
        the walk short, a total too large must not send it on through empty
        pages. It only helps with a first page shorter than asked: when the
        envelope says there is more, the server serves pages of that size.
        """
        page = int(current.params[self.page_param])
        count = len(self.records(body))
        size = current.expect or self.page_size
        if count == 0:
            return None
        if count < size:
            items, pages = self.reported(body)
            more = (items is not None and items > count) or (pages is not None and pages > 1)
            if page != 1 or current.expect is not None or not more:
                return None
            size = count
        return PageRequest(current.url, {**current.params, self.page_param: page + 1}, expect=size)

    def reported(self, body: Any) -> tuple[int | None, int | None]:
        """The total records and pages the envelope claims, when it has them."""
        items = _count(_dig(body, self.total_items_path)) if self.total_items_path else None
        pages = _count(_dig(body, self.total_pages_path)) if self.total_pages_path else None
        return items, pages


@dataclass(frozen=True)
class NextLinkPaginator:
    """Follows an absolute ``next`` URL in the envelope (Django REST style)."""

    items_key: str = "results"
    next_key: str = "next"
    page_size: int = 100
    size_param: str = "page_size"
    count_key: str | None = "count"

    def first(self, path: str, params: Params) -> PageRequest:
        """Ask for the first page at ``page_size``."""
        return PageRequest(path, {**params, self.size_param: self.page_size})

    def records(self, body: Any) -> Sequence[Mapping[str, Any]]:
        """The records under ``items_key``."""
        return _items(body, self.items_key)

    def next(self, current: PageRequest, body: Any) -> PageRequest | None:
        """The ``next`` link as sent (it carries every parameter); none after an empty page.

        The request loop follows a link only to the connection's own origin.
        """
        link = body.get(self.next_key) if isinstance(body, dict) else None
        if not link or not isinstance(link, str) or not self.records(body):
            return None
        return PageRequest(link)

    def reported(self, body: Any) -> tuple[int | None, int | None]:
        """The ``count`` of the envelope, when it has one."""
        return (_count(_dig(body, (self.count_key,))) if self.count_key else None), None


@dataclass(frozen=True)
class SinglePagePaginator:
    """The whole listing comes as one bare JSON array (Timbrix)."""

    def first(self, path: str, params: Params) -> PageRequest:
        """The one request."""
        return PageRequest(path, dict(params))

    def records(self, body: Any) -> Sequence[Mapping[str, Any]]:
        """The array itself."""
        return _items(body, None)

    def next(self, current: PageRequest, body: Any) -> PageRequest | None:
        """There is never a next page."""
        return None

    def reported(self, body: Any) -> tuple[int | None, int | None]:
        """A bare array claims nothing."""
        return None, None


def _count(value: Any) -> int | None:
    """A reported total as a count ≥ 0, or ``None`` when it is not one."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    try:
        number = int(value)
    except ValueError:
        return None
    return number if number >= 0 else None


def _dig(body: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(body, dict):
            return None
        body = body.get(key)
    return body


class LoopGuard:
    """Raises when a listing repeats a request or runs past ``max_pages``."""

    def __init__(self, max_pages: int = 100_000) -> None:
        self._seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
        self._max_pages = max_pages

    def check(self, request: PageRequest) -> None:
        """Record a request about to be sent, refusing repeats."""
        key = request.key()
        if key in self._seen:
            raise FatalError(f"paging loop: {request.url} was already fetched with the same parameters")
        if len(self._seen) >= self._max_pages:
            raise FatalError(f"paging stopped after {self._max_pages} pages")
        self._seen.add(key)


class PageTally:
    """What one walk of a listing read, against what its envelopes claimed.

    Args:
        listing: how the listing is named in reasons (its path; never values).
    """

    def __init__(self, listing: str) -> None:
        self.listing = listing
        self.pulled = 0
        self.pages = 0
        self.repeated = 0
        self.short_before_last = False
        self.full = 0
        self.claimed: tuple[int | None, int | None] = (None, None)
        self._seen: set[str] = set()

    def fresh(self, ids: Sequence[str | None]) -> list[bool]:
        """For each record id of a page, whether it was not read before in this walk."""
        keep: list[bool] = []
        for record_id in ids:
            if record_id is not None and record_id in self._seen:
                self.repeated += 1
                keep.append(False)
                continue
            if record_id is not None:
                self._seen.add(record_id)
            keep.append(True)
        return keep

    def page(self, kept: int, listed: int, claimed: tuple[int | None, int | None], *, last: bool) -> None:
        """Count one page: ``kept`` new records of the ``listed`` ones.

        The first page sets what a full page holds (a server may serve fewer
        than asked); a page with fewer that is not the last is suspect.
        """
        if self.pages == 0:
            self.full = listed
        elif not last and listed < self.full:
            self.short_before_last = True
        self.pulled += kept
        self.pages += 1 if listed else 0
        if claimed != (None, None):
            self.claimed = claimed  # the latest claim: records created during the walk land last

    def verdict(self) -> str | None:
        """Why this walk is no proof of the whole listing, or ``None`` when it is."""
        items, pages = self.claimed
        if self.repeated:
            return f"the listing {self.listing} repeated {self.repeated} records already read"
        if self.short_before_last:
            return f"the listing {self.listing} sent a short page before its last"
        if items is not None and items != self.pulled:
            return f"the listing {self.listing} reported {items} records, {self.pulled} were read"
        # An empty listing is still one (empty) page to Django-style servers.
        if pages is not None and pages != max(self.pages, 1):
            return f"the listing {self.listing} reported {pages} pages, {self.pages} were read"
        return None


__all__ = [
    "LoopGuard",
    "NextLinkPaginator",
    "PageNumberPaginator",
    "PageRequest",
    "PageTally",
    "Paginator",
    "Params",
    "SinglePagePaginator",
]
