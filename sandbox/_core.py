"""What every emulator shares: record storage, request log, faults, admin routes.

An emulator is a small Starlette app over an in-memory store. The same
object serves three uses: tests mount ``emulator.app`` in process through
``httpx.ASGITransport``, ``custsync sandbox`` / the demo / benchmarks serve it
on loopback with uvicorn, and tests drive it directly (``emulator.seed``,
``emulator.faults.add``) or over HTTP through the ``/_admin`` surface, the way
a user of the real system would edit records in its web app.

The fault rules and the rate limit are in :mod:`sandbox._faults`, the record
store and the request log in :mod:`sandbox._store`, the middleware that applies
them in :mod:`sandbox._middleware`; every name stays importable from here.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any, ClassVar

from email_validator import EmailNotValidError, validate_email
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sandbox._faults import WRITE_METHODS, ConnectionDropped, FaultKind, FaultRule, Faults, RateLimit
from sandbox._middleware import FaultMiddleware
from sandbox._store import LoggedRequest, OrderCache, Record, Records, new_record


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

    def seed(self, payloads: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Create records through ``admin_seed`` (tests call this directly)."""
        return [self.admin_seed(p) for p in payloads]

    def seed_fake(self, count: int, seed: int = 7) -> list[dict[str, Any]]:
        """Seed ``count`` generated customers (:mod:`sandbox.fake`, reproducible by ``seed``), as a user would.

        Each of the four emulators implements it; an emulator without a fake generator refuses.
        """
        raise NotImplementedError(f"the {self.system} emulator generates no fake customers")

    def server_errors(self) -> list[int]:
        """The statuses of every 5xx answered so far (the real server's crashes)."""
        return [r.status for r in self.requests if r.status >= 500]

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
        outer.mount("/", FaultMiddleware(inner, self))
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
