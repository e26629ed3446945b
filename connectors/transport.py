"""The HTTP transport under every connection's ``httpx.AsyncClient``.

custsync keeps the httpx API (auth flows, retries, timeouts are written
against it) and picks what moves the bytes here, by the numbers in
``docs/benchmarks.md``: httpx over an aiohttp transport (``httpx-aiohttp``, a
dependency) makes the same Thredfi creates with a fraction of the CPU of
httpx's own transport (httpcore), and custsync's first sync over it needs
about two thirds of the engine CPU. :func:`default_transport` therefore returns
it; ``CUSTSYNC_HTTP_TRANSPORT=httpx`` switches back to httpx's own.

Two differences from httpcore are mended here, so that the suite passes over
either: a URL's credentials (``http://user:pass@host``) are dropped before
aiohttp sees them, as httpcore never sends them (aiohttp would refuse them
beside the Authorization header); and connection errors are translated as
below, so that a refused connection or an unresolvable host reads as the same
one-line cause ``custsync check`` promises.

The one thing not taken as httpx-aiohttp ships it is the translation of
aiohttp's errors: it names every ``ClientConnectionError`` a
``ConnectTimeout``, so a connection dropped *after* a create was sent would
read as "never sent" and be retried (a duplicate), and a refused connection
would not read as ``ConnectError``. :class:`AiohttpTransport` maps them the
way httpcore does: only a connection that was never opened is a connect
error; a drop, a reset or a bad body once the request went out is a read
error; a socket timeout is a read (or connect) timeout.

Every transport shares one TLS context (:data:`TRUST`), whose trust anchors
are read at the first ``https`` request rather than when a client is built:
reading certifi's bundle costs about 50 ms of CPU, and a run opened two
clients, each reading it, before its first page. The context verifies from the
start (``CERT_REQUIRED``, host names checked): until its anchors are read it
trusts nothing, so it fails closed, never open. ``SSL_CERT_FILE`` and
``SSL_CERT_DIR`` are honoured as httpx honours them.

Above the transport, :class:`CookielessClient` is httpx's client without a
cookie jar: no API custsync speaks uses cookies, so none a server sets is kept
or sent back (nor parsed: a share of the CPU of every answer).
"""

from __future__ import annotations

import os
import ssl
import threading
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import certifi
import httpx
from httpx_aiohttp import AiohttpTransport as _Base


class _Jar(httpx.Cookies):
    """A cookie jar that keeps nothing a server sets."""

    def extract_cookies(self, response: httpx.Response) -> None:
        """Keep none: no API custsync speaks uses cookies, and a cookie is state a server would have us send back."""


class CookielessClient(httpx.AsyncClient):
    """httpx's client without a cookie jar: a ``Set-Cookie`` answer is never sent on (and costs no parsing)."""

    _jar = _Jar()

    @property
    def cookies(self) -> httpx.Cookies:
        """Always empty."""
        return self._jar

    @cookies.setter
    def cookies(self, cookies: Any) -> None:
        """Ignored: the client keeps no cookies."""


#: ``httpx`` for httpx's own transport; anything else (or unset): httpx-aiohttp's (see the module docstring).
ENV = "CUSTSYNC_HTTP_TRANSPORT"


def default_transport(*, max_connections: int | None = None) -> httpx.AsyncBaseTransport | None:
    """The transport a connection's client is built with; ``None`` means httpx's own.

    Args:
        max_connections: the most connections kept open at once (httpx ignores
            the client's ``limits`` when it is given a transport, so pass the
            connection's ``max_concurrency`` here).
    """
    if os.environ.get(ENV, "").strip().lower() == "httpx":
        return None
    return AiohttpTransport(limits=httpx.Limits(max_connections=max_connections))


def _translated(exc: httpx.TransportError, request: httpx.Request | None) -> httpx.TransportError:
    """The httpx error httpcore would have raised for the aiohttp error under ``exc``."""
    cause = exc.__cause__
    if not isinstance(cause, aiohttp.ClientError):
        return exc
    message = str(cause) or type(cause).__name__
    kind: type[httpx.TransportError]
    if isinstance(cause, aiohttp.ClientConnectorError):  # DNS, refused, TLS: the request never went out
        kind = httpx.ConnectError
    elif isinstance(cause, getattr(aiohttp, "ConnectionTimeoutError", ())):
        kind = httpx.ConnectTimeout
    elif isinstance(cause, aiohttp.ServerTimeoutError):
        kind = httpx.ReadTimeout
    elif isinstance(cause, aiohttp.ClientConnectionError | aiohttp.ClientPayloadError):
        kind = httpx.ReadError  # dropped, reset or cut short: it may have been applied
    else:
        return exc
    return kind(message, request=request)


class Trust:
    """A verifying TLS context whose trust anchors are read once, when the first ``https`` request needs them."""

    def __init__(self) -> None:
        # PROTOCOL_TLS_CLIENT verifies by default: CERT_REQUIRED, check_hostname. With no anchors yet it trusts none.
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self._read = False
        self._lock = threading.Lock()

    @property
    def read(self) -> bool:
        """Whether the anchors were read."""
        return self._read

    def need(self) -> None:
        """Read the anchors, if not yet: ``SSL_CERT_FILE``, else ``SSL_CERT_DIR``, else certifi's bundle (as httpx)."""
        if self._read:
            return
        with self._lock:
            if self._read:
                return
            if os.environ.get("SSL_CERT_FILE"):
                self.context.load_verify_locations(cafile=os.environ["SSL_CERT_FILE"])
            elif os.environ.get("SSL_CERT_DIR"):
                self.context.load_verify_locations(capath=os.environ["SSL_CERT_DIR"])
            else:
                self.context.load_verify_locations(cafile=certifi.where())
            self._read = True


#: the process's one TLS context: every :class:`AiohttpTransport` verifies with it.
TRUST = Trust()


class _Stream(httpx.AsyncByteStream):
    """A response body whose read errors are translated as the request's are."""

    def __init__(self, inner: httpx.AsyncByteStream, request: httpx.Request) -> None:
        self._inner = inner
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._inner:
                yield chunk
        except httpx.TransportError as exc:
            raise _translated(exc, self._request) from exc.__cause__

    async def aclose(self) -> None:
        await self._inner.aclose()


class AiohttpTransport(_Base):
    """httpx-aiohttp's transport with httpcore's reading of connection errors and a shared TLS context.

    Args:
        trust: whose TLS context verifies ``https`` (the process's :data:`TRUST` unless given).
    """

    def __init__(self, *, trust: Trust | None = None, **options: Any) -> None:
        self.trust = TRUST if trust is None else trust
        super().__init__(verify=self.trust.context, **options)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.scheme == "https":
            self.trust.need()
        if request.url.userinfo:
            # httpcore never sends a URL's credentials (httpx made them the client's auth, if it had
            # none); aiohttp would, and refuses them beside an Authorization header. Drop them here.
            request.url = request.url.copy_with(userinfo=b"")
        try:
            response: httpx.Response = await super().handle_async_request(request)
        except httpx.TransportError as exc:
            raise _translated(exc, request) from exc.__cause__
        stream = response.stream
        if isinstance(stream, httpx.AsyncByteStream):
            response.stream = _Stream(stream, request)
        return response


__all__ = ["ENV", "TRUST", "AiohttpTransport", "CookielessClient", "Trust", "default_transport"]
