"""Paginators: how a listing walks from its first page to its last.

A paginator turns one page's response body into its records and the next
request, or ``None`` at the end. Paginators refuse to loop: a repeated
request (the same URL and parameters twice) or passing ``max_pages`` raises
:class:`~connectors.errors.FatalError`, as the Singer SDK does.
"""

from __future__ import annotations

import math
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
        """The next page number, while the envelope says there is one."""
        page = int(current.params[self.page_param])
        total_pages = self._total_pages(body)
        if total_pages is None:
            # No total: a short page is the last one.
            if len(self.records(body)) < self.page_size:
                return None
        elif page >= total_pages:
            return None
        return PageRequest(current.url, {**current.params, self.page_param: page + 1})

    def _total_pages(self, body: Any) -> int | None:
        if self.total_pages_path:
            value = _dig(body, self.total_pages_path)
            return int(value) if value is not None else None
        if self.total_items_path:
            value = _dig(body, self.total_items_path)
            return math.ceil(int(value) / self.page_size) if value is not None else None
        return None


@dataclass(frozen=True)
class NextLinkPaginator:
    """Follows an absolute ``next`` URL in the envelope (Django REST style)."""

    items_key: str = "results"
    next_key: str = "next"
    page_size: int = 100
    size_param: str = "page_size"

    def first(self, path: str, params: Params) -> PageRequest:
        """Ask for the first page at ``page_size``."""
        return PageRequest(path, {**params, self.size_param: self.page_size})

    def records(self, body: Any) -> Sequence[Mapping[str, Any]]:
        """The records under ``items_key``."""
        return _items(body, self.items_key)

    def next(self, current: PageRequest, body: Any) -> PageRequest | None:
        """The ``next`` link as sent (it carries every parameter)."""
        link = body.get(self.next_key) if isinstance(body, dict) else None
        return PageRequest(str(link)) if link else None


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


__all__ = [
    "LoopGuard",
    "NextLinkPaginator",
    "PageNumberPaginator",
    "PageRequest",
    "Paginator",
    "Params",
    "SinglePagePaginator",
]
