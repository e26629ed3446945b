"""Piriod's listings, as django-filter and DRF do them: the query filters and the page-number pagination.

Used by :mod:`sandbox.piriod`, the emulator (which orders the rows).
"""

from __future__ import annotations

import math
import operator
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sandbox._core import json_error
from sandbox.piriod_catalog import country_object
from sandbox.piriod_rules import BAD_CHOICE, STATUSES

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
_EXACT_FILTERS = ("email", "name", "tax_id", "status", "reference")
_SEARCH_FIELDS = ("name", "email", "tax_id", "reference")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def filter_rows(rows: list[dict[str, Any]], params: QueryParams) -> list[dict[str, Any]] | Response:
    """Apply the query's filters and ``search`` in turn; a bad filter value is the 400 answered."""
    for key, raw in params.multi_items():
        if not raw:  # django-filter skips empty values
            continue
        field, _, lookup = key.partition("__")
        values = raw.split(",") if lookup == "in" else [raw]
        if field == "country" and lookup in ("", "in"):
            if any(country_object(v) is None for v in values):
                return json_error(400, {key: [BAD_CHOICE]})
            rows = [r for r in rows if r["country"] and r["country"]["id"] in values]
        elif field == "status" and lookup in ("", "in"):
            if bad := [v for v in values if v not in STATUSES]:
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
            rows = [r for r in rows if all(any(t in str(r[f] or "").lower() for f in _SEARCH_FIELDS) for t in terms)]
    return rows


def paginate(request: Request, rows: list[dict[str, Any]]) -> Response:
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


def _parse_moment(raw: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
