"""What every emulator shares: record storage, request log, faults, admin routes.

An emulator is a small Starlette app over an in-memory store. The same
object serves three uses: tests mount ``emulator.app`` in process through
``httpx.ASGITransport``, ``custsync sandbox`` / the demo / benchmarks serve it
on loopback with uvicorn, and tests drive it directly (``emulator.seed``,
``emulator.faults.add``) or over HTTP through the ``/_admin`` surface, the way
a user of the real system would edit records in its web app.

Faults (``FaultRule``) are matched per request, in order:

- ``error_before``: answer ``status`` (500 by default) without applying anything;
- ``error_after``: apply the write, then answer ``status``: a lost response;
- ``rate_limit``: answer 429 with ``Retry-After: retry_after`` when set;
- ``slow``: wait ``delay_s`` seconds, then answer normally;
- ``drop``: drop the connection (after applying the write when ``after`` is set);
- ``drop_field``: silently drop ``field`` from a write body before the
  emulator reads it (the write succeeds without it: a target that loses a
  field). ``field`` is a vendor key (``office_phone``, dotted for a nested
  one: ``metadata.notes``) or a canonical field the emulator maps in
  ``field_aliases`` (Thredfi's ``phone`` is ``office_phone``). It combines
  with one other rule on the same request;
- ``kill``: apply the write, then SIGKILL the process serving the emulator
  before it answers (loopback only: in process it would kill the test run;
  tests replace ``Emulator.kill``).

Each rule fires on requests matching ``method`` and the ``path`` regular
expression, ``times`` times at most (``None``: forever), after skipping the
first ``skip`` matches, and with ``probability`` drawn from a seeded RNG so a
fault run is reproducible. ``drop_field`` and ``kill`` without a ``method``
match record writes only (never a read or a token request).

A rate limit (:meth:`Emulator.limit_rate`) is separate from the faults: a
fixed window of ``requests`` per ``window_s`` over every non-admin request,
the way Django REST framework's throttles count. A request over it gets 429
with ``Retry-After`` (whole seconds until the window ends); with
``headers=True`` every answer also carries ``X-RateLimit-Limit``,
``-Remaining`` and ``-Reset``. The benchmark uses it; it is off by default.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import re
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

import httpx
from email_validator import EmailNotValidError, validate_email
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

FaultKind = Literal["error_before", "error_after", "rate_limit", "slow", "drop", "drop_field", "kill"]
#: kinds that, without a ``method``, match record writes only.
_WRITE_KINDS = frozenset({"drop_field", "kill"})
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class ConnectionDropped(httpx.ReadError):
    """Raised inside the app to drop the connection.

    In process (``ASGITransport``) the client sees it as the transport error
    it subclasses; over uvicorn the half-sent response makes the server close
    the socket, so the client sees a real protocol error.
    """


@dataclass
class FaultRule:
    """One fault to inject; see the module docstring."""

    kind: FaultKind
    method: str | None = None
    path: str = ".*"
    status: int = 500
    retry_after: float | None = None
    delay_s: float = 0.0
    times: int | None = 1
    skip: int = 0
    probability: float = 1.0
    after: bool = False
    field: str | None = None
    fired: int = 0
    seen: int = 0

    def __post_init__(self) -> None:
        if self.kind == "drop_field" and not self.field:
            raise ValueError("a drop_field fault needs a field")

    def matches(self, method: str, path: str, *, write: bool = True) -> bool:
        """Tell whether this rule applies to a request (does not consume it).

        Args:
            method: the request's method.
            path: the request's path.
            write: whether the request is a record write (not a read or a token request).
        """
        if self.method and self.method.upper() != method.upper():
            return False
        if not self.method and self.kind in _WRITE_KINDS and not write:
            return False
        return re.search(self.path, path) is not None

    @property
    def exhausted(self) -> bool:
        """True once the rule fired ``times`` times."""
        return self.times is not None and self.fired >= self.times


@dataclass
class RateLimit:
    """A fixed-window request limit; see the module docstring."""

    requests: int
    window_s: float = 1.0
    headers: bool = False
    clock: Callable[[], float] = time.monotonic
    window_start: float = 0.0
    hits: int = 0
    refused: int = 0

    def hit(self) -> tuple[float | None, dict[str, str]]:
        """Count one request: (seconds to wait, or None when admitted; headers to send)."""
        now = self.clock()
        if now - self.window_start >= self.window_s:
            self.window_start, self.hits = now, 0
        left = self.window_start + self.window_s - now
        admitted = self.hits < self.requests
        if admitted:
            self.hits += 1
        else:
            self.refused += 1
        headers: dict[str, str] = {}
        if self.headers:
            headers = {
                "X-RateLimit-Limit": str(self.requests),
                "X-RateLimit-Remaining": str(max(self.requests - self.hits, 0)),
                "X-RateLimit-Reset": str(math.ceil(left)),
            }
        return (None if admitted else left), headers


class Faults:
    """The active fault rules of one emulator."""

    def __init__(self, seed: int = 0) -> None:
        self.rules: list[FaultRule] = []
        self._rng = random.Random(seed)  # reproducible fault runs

    def add(self, kind: FaultKind, **options: Any) -> FaultRule:
        """Add a rule and return it (its ``fired`` counter is live)."""
        rule = FaultRule(kind=kind, **options)
        self.rules.append(rule)
        return rule

    def clear(self) -> None:
        """Remove every rule."""
        self.rules.clear()

    def pick(self, method: str, path: str, *, write: bool = True, rewrite: bool = False) -> FaultRule | None:
        """Return the rule that fires for this request, consuming it, or None.

        Args:
            method: the request's method.
            path: the request's path.
            write: whether the request is a record write.
            rewrite: pick among ``drop_field`` rules (which change the body and
                combine with another fault) instead of among the others.
        """
        for rule in self.rules:
            if (rule.kind == "drop_field") != rewrite:
                continue
            if rule.exhausted or not rule.matches(method, path, write=write):
                continue
            rule.seen += 1
            if rule.seen <= rule.skip:
                continue
            if rule.probability < 1.0 and self._rng.random() >= rule.probability:
                continue
            rule.fired += 1
            return rule
        return None


class Record(dict[str, Any]):
    """A stored record: a ``dict`` that counts its changes on its emulator's counter (for :class:`OrderCache`).

    A change nested deeper (``record["metadata"]["x"] = 1``) is not counted:
    the cached orders sort on top-level fields only.
    """

    __slots__ = ("_changes",)

    def __init__(self, *args: Any, changes: list[int] | None = None, **kwargs: Any) -> None:
        self._changes = changes if changes is not None else [0]
        super().__init__(*args, **kwargs)

    def _bump(self) -> None:
        counter = getattr(self, "_changes", None)  # unset while a copy is being rebuilt
        if counter is not None:
            counter[0] += 1

    def __setitem__(self, key: str, value: Any) -> None:
        self._bump()
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        self._bump()
        super().__delitem__(key)

    def __ior__(self, other: Any) -> Record:  # type: ignore[override,misc]
        self._bump()
        super().update(other)
        return self

    def update(self, *args: Any, **kwargs: Any) -> None:
        self._bump()
        super().update(*args, **kwargs)

    def pop(self, *args: Any) -> Any:
        self._bump()
        return super().pop(*args)

    def popitem(self) -> tuple[str, Any]:
        self._bump()
        return super().popitem()

    def setdefault(self, key: str, default: Any = None) -> Any:
        self._bump()
        return super().setdefault(key, default)

    def clear(self) -> None:
        self._bump()
        super().clear()


class Records(dict[str, dict[str, Any]]):
    """An emulator's records by id; ``changes`` counts additions, removals and :class:`Record` changes."""

    __slots__ = ("changes",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.changes = [0]
        super().__init__(*args, **kwargs)

    def record(self, data: Mapping[str, Any]) -> Record:
        """A new record counting its changes here (not stored yet)."""
        return Record(data, changes=self.changes)

    def _bump(self) -> None:
        counter = getattr(self, "changes", None)
        if counter is not None:
            counter[0] += 1

    def __setitem__(self, key: str, value: dict[str, Any]) -> None:
        self._bump()
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        self._bump()
        super().__delitem__(key)

    def __ior__(self, other: Any) -> Records:  # type: ignore[override,misc]
        self._bump()
        super().update(other)
        return self

    def update(self, *args: Any, **kwargs: Any) -> None:
        self._bump()
        super().update(*args, **kwargs)

    def pop(self, *args: Any) -> Any:
        self._bump()
        return super().pop(*args)

    def popitem(self) -> tuple[str, dict[str, Any]]:
        self._bump()
        return super().popitem()

    def setdefault(self, key: str, default: Any = None) -> Any:
        self._bump()
        return super().setdefault(key, default)

    def clear(self) -> None:
        self._bump()
        super().clear()


def new_record(records: Mapping[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
    """A record for ``records``: a :class:`Record` counting on it when it is :class:`Records`, else a dict."""
    return records.record(data) if isinstance(records, Records) else dict(data)


class OrderCache:
    """Listing orders of an emulator's records, computed once per state of the records.

    A listing that sorts every record per page request makes a full walk
    quadratic: the emulator, not the client, would set the pace. The order of
    *all* records under one sort is kept here until they change (a
    :class:`Record` or :class:`Records` change, or another records object); each page
    then filters it, which gives the same rows as sorting the filtered rows
    when the sort is a total order (every emulator's ends on the id).
    """

    def __init__(self) -> None:
        self._orders: dict[Any, tuple[tuple[int, int, int], list[dict[str, Any]]]] = {}

    def order(
        self,
        records: Mapping[str, dict[str, Any]],
        key: Any,
        sort: Callable[[list[dict[str, Any]]], list[dict[str, Any]]],
    ) -> list[dict[str, Any]]:
        """Every record in the order ``sort`` gives (``key`` names the sort); do not change the list.

        Records that are not :class:`Records` (a test replaced them) are sorted every time.
        """
        if not isinstance(records, Records):
            return sort(list(records.values()))
        stamp = (records.changes[0], id(records), len(records))
        held = self._orders.get(key)
        if held is not None and held[0] == stamp:
            return held[1]
        ordered = sort(list(records.values()))
        self._orders[key] = (stamp, ordered)
        return ordered


@dataclass(frozen=True)
class LoggedRequest:
    """One request the emulator answered (admin requests are not logged)."""

    method: str
    path: str
    query: str
    status: int

    @property
    def is_write(self) -> bool:
        """True for a method that changes records."""
        return self.method in WRITE_METHODS


def utcnow() -> datetime:
    """Now, in UTC, to the second (as the vendors' timestamps are)."""
    return datetime.now(UTC).replace(microsecond=0)


def iso(moment: datetime) -> str:
    """Format a timestamp the way the vendor APIs do (``...Z``)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


Handler = Callable[[Request], Awaitable[Response]]


class Emulator:
    """Base of the four emulators: storage, request log, faults, admin.

    Subclasses set ``system``, store records in ``self.records`` (id → the
    record in the shape the vendor *returns*), and implement ``routes()``,
    ``admin_seed(payload)`` (make a record from a vendor-shaped body as a user
    of that system would) and ``admin_edit(record, changes)``.

    Args:
        fault_seed: seed of the fault RNG.
        kill_after_writes: SIGKILL the process that *serves* the emulator
            after this many applied writes (only meaningful on loopback,
            for kill tests; never in process). The ``kill`` fault does the
            same per matched request; ``custsync sandbox --fault
            SYSTEM:kill:skip=N`` reaches it from the command line.
    """

    system: str = "emulator"
    #: paths whose POSTs are not record writes (token endpoints).
    non_write_paths: tuple[str, ...] = ()
    #: canonical field → the vendor write keys holding it, for ``drop_field`` faults.
    field_aliases: ClassVar[Mapping[str, tuple[str, ...]]] = {}

    def __init__(self, *, fault_seed: int = 0, kill_after_writes: int | None = None) -> None:
        self.records: dict[str, dict[str, Any]] = Records()
        self.requests: list[LoggedRequest] = []
        self.faults = Faults(fault_seed)
        self._lock = threading.Lock()
        self.write_count = 0
        self.kill_after_writes = kill_after_writes
        #: what a ``kill`` does; tests that run the emulator in process replace it.
        self.kill: Callable[[], None] = _sigkill
        #: a request rate limit over every non-admin request (:meth:`limit_rate`); none by default.
        self.rate_limit: RateLimit | None = None
        self.app = self._build_app()

    # -- subclass surface -------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        """The vendor API's routes."""
        raise NotImplementedError

    def admin_seed(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """Create a record from a vendor-shaped body, bypassing API validation."""
        raise NotImplementedError

    def admin_edit(self, record: dict[str, Any], changes: Mapping[str, Any]) -> None:
        """Apply a user's edit to a stored record (in its read shape)."""
        record.update(changes)

    # -- helpers for subclasses ------------------------------------------

    def reset(self) -> None:
        """Forget every record, logged request and fault."""
        self.records.clear()
        self.requests.clear()
        self.faults.clear()
        self.write_count = 0

    def limit_rate(self, requests: int, window_s: float = 1.0, *, headers: bool = False) -> RateLimit:
        """Refuse requests over ``requests`` per ``window_s`` with 429 (see the module docstring)."""
        self.rate_limit = RateLimit(requests, window_s, headers)
        return self.rate_limit

    def seed(self, payloads: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Create records through ``admin_seed`` (tests call this directly)."""
        return [self.admin_seed(p) for p in payloads]

    def writes(self) -> list[LoggedRequest]:
        """The record writes answered so far (token requests excluded)."""
        return [r for r in self.requests if self.is_record_write(r.method, r.path)]

    def is_record_write(self, method: str, path: str) -> bool:
        """Whether a request changes records (a token request does not)."""
        return method in WRITE_METHODS and not any(path.endswith(p) for p in self.non_write_paths)

    def vendor_keys(self, field: str) -> tuple[str, ...]:
        """The write-body keys a ``drop_field`` fault on ``field`` removes."""
        return (field, *self.field_aliases.get(field, ()))

    def count_write(self) -> None:
        """Call once a write is applied; honours ``kill_after_writes``."""
        self.write_count += 1
        if self.kill_after_writes is not None and self.write_count >= self.kill_after_writes:
            self.kill()

    # -- app -------------------------------------------------------------

    def _build_app(self) -> Starlette:
        admin: list[BaseRoute] = [
            Route("/_admin/customers", self._admin_list, methods=["GET"]),
            Route("/_admin/customers", self._admin_create, methods=["POST"]),
            Route("/_admin/customers/{id}", self._admin_get, methods=["GET"]),
            Route("/_admin/customers/{id}", self._admin_patch, methods=["PATCH"]),
            Route("/_admin/customers/{id}", self._admin_delete, methods=["DELETE"]),
            Route("/_admin/faults", self._admin_faults, methods=["GET", "POST", "DELETE"]),
            Route("/_admin/requests", self._admin_requests, methods=["GET", "DELETE"]),
            Route("/_admin/reset", self._admin_reset, methods=["POST"]),
        ]
        inner = Starlette(routes=[*admin, *self.routes()])
        outer = Starlette()
        outer.mount("/", _FaultMiddleware(inner, self))
        return outer

    async def _admin_list(self, request: Request) -> Response:
        return JSONResponse(list(self.records.values()))

    async def _admin_get(self, request: Request) -> Response:
        record = self.records.get(request.path_params["id"])
        if record is None:
            return JSONResponse({"detail": "not found"}, status_code=404)
        return JSONResponse(record)

    async def _admin_create(self, request: Request) -> Response:
        body = await request.json()
        payloads = body if isinstance(body, list) else [body]
        created = self.seed(payloads)
        return JSONResponse(created if isinstance(body, list) else created[0], status_code=201)

    async def _admin_patch(self, request: Request) -> Response:
        record = self.records.get(request.path_params["id"])
        if record is None:
            return JSONResponse({"detail": "not found"}, status_code=404)
        self.admin_edit(record, await request.json())
        return JSONResponse(record)

    async def _admin_delete(self, request: Request) -> Response:
        if self.records.pop(request.path_params["id"], None) is None:
            return JSONResponse({"detail": "not found"}, status_code=404)
        return Response(status_code=204)

    async def _admin_faults(self, request: Request) -> Response:
        if request.method == "POST":
            body = await request.json()
            try:
                for spec in body if isinstance(body, list) else [body]:
                    self.faults.add(**spec)
            except (TypeError, ValueError) as exc:  # an unknown option, or a drop_field without a field
                return JSONResponse({"detail": str(exc)}, status_code=400)
        elif request.method == "DELETE":
            self.faults.clear()
        return JSONResponse([asdict(r) for r in self.faults.rules])

    async def _admin_requests(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.requests.clear()
        return JSONResponse([{**asdict(r), "is_write": r.is_write} for r in self.requests])

    async def _admin_reset(self, request: Request) -> Response:
        self.reset()
        return Response(status_code=204)


class _FaultMiddleware:
    """ASGI middleware: logs requests and injects the configured faults."""

    def __init__(self, app: Starlette, emulator: Emulator) -> None:
        self.app = app
        self.emulator = emulator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        method: str = scope["method"]
        if "/_admin/" in path:
            await self.app(scope, receive, send)
            return
        query = scope.get("query_string", b"").decode("latin-1")
        if (limit := self.emulator.rate_limit) is not None:
            wait, limit_headers = limit.hit()
            if wait is not None:
                retry = {"Retry-After": str(max(math.ceil(wait), 1))}
                refused = JSONResponse({"detail": "Request was throttled."}, status_code=429,
                                       headers={**limit_headers, **retry})  # fmt: skip
                await refused(scope, receive, send)
                self.emulator.requests.append(LoggedRequest(method, path, query, 429))
                return
            if limit_headers:
                send = _with_headers(send, limit_headers)
        write = self.emulator.is_record_write(method, path)
        dropping = self.emulator.faults.pick(method, path, write=write, rewrite=True)
        if dropping is not None and dropping.field:
            receive = await _without_field(receive, self.emulator.vendor_keys(dropping.field))
        rule = self.emulator.faults.pick(method, path, write=write)
        status_box: list[int] = []

        async def logging_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                status_box.append(int(message["status"]))
            await send(message)

        def log(status: int) -> None:
            self.emulator.requests.append(LoggedRequest(method, path, query, status))

        if rule is None:
            await self.app(scope, receive, logging_send)
            log(status_box[0] if status_box else 0)
            return
        if rule.kind == "slow":
            await asyncio.sleep(rule.delay_s)
            await self.app(scope, receive, logging_send)
            log(status_box[0] if status_box else 0)
            return
        if rule.kind == "error_before" or rule.kind == "rate_limit" or (rule.kind == "drop" and not rule.after):
            await _respond_fault(rule, scope, receive, send)
            log(rule.status if rule.kind == "error_before" else 429 if rule.kind == "rate_limit" else 0)
            return
        # error_after / drop after / kill: apply the write, then lose the response.
        await self.app(scope, receive, _discard)
        if rule.kind == "kill":
            log(0)
            self.emulator.kill()
            raise ConnectionDropped("sandbox fault: the emulator was killed")
        await _respond_fault(rule, scope, receive, send)
        log(rule.status if rule.kind == "error_after" else 0)


def _with_headers(send: Send, headers: Mapping[str, str]) -> Send:
    """``send`` adding ``headers`` to the response start."""
    extra = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]

    async def sending(message: Any) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), *extra]}
        await send(message)

    return sending


async def _discard(message: Any) -> None:
    return None


async def _without_field(receive: Receive, keys: tuple[str, ...]) -> Receive:
    """Read the whole body, drop ``keys`` (dotted: nested) from a JSON object, replay it."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break  # the client went away: nothing to rewrite
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    raw = b"".join(chunks)
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = None
    if isinstance(body, dict):
        for key in keys:
            *parents, last = key.split(".")
            holder: Any = body
            for parent in parents:
                holder = holder.get(parent) if isinstance(holder, dict) else None
            if isinstance(holder, dict):
                holder.pop(last, None)
        raw = json.dumps(body).encode()
    sent = False

    async def replay() -> Any:
        nonlocal sent
        if sent:
            return await receive()  # the disconnect, once the app waits for it
        sent = True
        return {"type": "http.request", "body": raw, "more_body": False}

    return replay


async def _respond_fault(rule: FaultRule, scope: Scope, receive: Receive, send: Send) -> None:
    if rule.kind == "drop":
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"100")],
            }
        )
        await send({"type": "http.response.body", "body": b'{"partial', "more_body": True})
        raise ConnectionDropped("sandbox fault: connection dropped")
    if rule.kind == "rate_limit":
        headers = {} if rule.retry_after is None else {"Retry-After": _fmt(rule.retry_after)}
        response: Response = JSONResponse({"detail": "Request was throttled."}, status_code=429, headers=headers)
    else:
        response = JSONResponse(
            {"error": "internal_error", "message": "sandbox fault injected"},
            status_code=rule.status,
        )
    await response(scope, receive, send)


def _fmt(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else str(seconds)


def _sigkill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def is_email(value: str) -> bool:
    """Whether a vendor would accept ``value`` as an e-mail address (syntax only)."""
    try:
        validate_email(value, check_deliverability=False)
    except EmailNotValidError:
        return False
    return True


def json_error(status: int, body: Mapping[str, Any] | list[Any]) -> JSONResponse:
    """A JSON error response with the vendor's body shape."""
    return JSONResponse(body, status_code=status)


async def read_json(request: Request) -> Any:
    """Parse a request body as JSON; ``None`` when it is not JSON."""
    raw = await request.body()
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except ValueError:
        return None


__all__ = [
    "WRITE_METHODS",
    "ConnectionDropped",
    "Emulator",
    "FaultKind",
    "FaultRule",
    "Faults",
    "LoggedRequest",
    "OrderCache",
    "RateLimit",
    "Record",
    "Records",
    "is_email",
    "iso",
    "json_error",
    "new_record",
    "read_json",
    "utcnow",
]
