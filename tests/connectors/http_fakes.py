"""Misbehaving servers for the HTTP-layer tests: tiny ASGI apps and a transport that routes by host.

These are seams we own: each app plays one answer the recordings (or an
attacker) could send, and every request that reaches one is kept.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

Handler = Callable[[Request], Awaitable[Response]]
ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]

#: ``GET /api/organization/current`` as the real Bigcapital answered it (abridged).
BIGCAPITAL_ORGANIZATION = {
    "id": 1,
    "metadata": {"id": 1, "name": "Custsync Test Org", "base_currency": "USD", "tenant_id": 1},
    "organization_id": "3b2ozldmpmx52sv9a",
    "is_ready": True,
}


class Seen:
    """The requests an app received, as (method, path with query, headers)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str]]] = []

    def paths(self, method: str | None = None) -> list[str]:
        return [path for m, path, _ in self.requests if method is None or m == method]


def app(handler: Handler, seen: Seen | None = None, *, bigcapital: bool = False) -> Starlette:
    """An ASGI app that sends every request to ``handler``.

    With ``bigcapital``, the connection's organization call is answered first and
    not recorded in ``seen``: the tests count the customer requests.
    """

    async def endpoint(request: Request) -> Response:
        if bigcapital and request.url.path == "/api/organization/current":
            return JSONResponse(BIGCAPITAL_ORGANIZATION)
        if seen is not None:
            query = f"?{request.url.query}" if request.url.query else ""
            seen.requests.append((request.method, request.url.path + query, dict(request.headers)))
        return await handler(request)

    return Starlette(routes=[Route("/{path:path}", endpoint, methods=ALL_METHODS)])


class Hosts(httpx.AsyncBaseTransport):
    """Routes each request to the app of its host; an unknown host is a connection error."""

    def __init__(self, apps: dict[str, Any]) -> None:
        self._transports = {host: httpx.ASGITransport(app=a) for host, a in apps.items()}
        self.sent: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        transport = self._transports.get(request.url.host)
        if transport is None:
            raise httpx.ConnectError(f"no such host {request.url.host}", request=request)
        return await transport.handle_async_request(request)

    def hosts(self) -> list[str]:
        return [r.url.host for r in self.sent]


def json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON answer."""
    return JSONResponse(body, status_code=status, headers=headers)


def bigcapital_record(record_id: int, **changes: Any) -> dict[str, Any]:
    """A customer as Bigcapital lists it."""
    return {
        "id": record_id,
        "customer_type": "business",
        "display_name": f"Customer {record_id}",
        "email": f"c{record_id}@example.test",
        "currency_code": "USD",
        "active": True,
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:00Z",
        **changes,
    }
