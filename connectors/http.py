"""The one HTTP client and request loop every connector sends through.

The only generic module that imports httpx (auth flows aside): connectors name
its types through the aliases here (:data:`Response`, :data:`Transport`,
:data:`Auth`).

- :meth:`HttpClient.request` sends through one ``httpx.AsyncClient`` with
  adaptive concurrency (AIMD, :mod:`connectors.concurrency`: it halves on a 429
  or a nearly spent budget and grows back to ``max_concurrency``; only a budget
  the headers show spent holds the connection, and only repeated 429s teach it
  a pace) over the transport of :mod:`connectors.transport`, and an optional
  rate limiter; it turns a non-2xx answer into
  an error through the connector's ``classify`` and retries transient failures
  with stamina (exponential backoff with jitter, bounded in attempts and time;
  429 waits ``Retry-After`` when the API sent one, unless that is past the budget).
- A request that is not idempotent (a create without an identity slot) is
  retried only when it provably never reached the server, or was refused
  with 429; otherwise the engine recovers the identity before creating again.
- ``timeout_s`` bounds a whole exchange, body included; an answer that says
  the quota is spent (``X-RateLimit-Remaining: 0``) holds the next request
  until its reset. Requests go only to the base URL's origin, and a
  connection that cannot be reached at all fails within seconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import Any

import httpx
import stamina
import structlog

from connectors import secrets
from connectors.auth import origin_of, restrict_to_origin
from connectors.concurrency import AIMDLimiter, StateStore
from connectors.errors import (
    ConnectorError,
    FatalError,
    NotFoundError,
    RateLimitedError,
    RetriableError,
)
from connectors.ratelimit import RateLimiter, ThrottleGate
from connectors.reach import unreachable
from connectors.settings import ConnectionSettings, masked_url
from connectors.transport import CookielessClient, default_transport

log = structlog.get_logger("custsync.connector")

Response = httpx.Response
Transport = httpx.AsyncBaseTransport
Auth = httpx.Auth
#: turns a non-2xx response of an operation into the error the caller acts on.
Classify = Callable[[httpx.Response, str], ConnectorError]

#: Transport errors raised before the request could have reached the server: safe to retry even for a create.
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
#: the deadline of the exchange this task is in: waiting for a turn (``requests_per_second``) is not counted in it.
_EXCHANGE: ContextVar[asyncio.Timeout | None] = ContextVar("custsync_exchange", default=None)
#: reads of one record or of a side catalog: their 404 says that thing is missing, not that base_url is wrong.
_ONE_THING_OPS = frozenset({"get", "states"})
#: how many parsed URLs a client keeps (a create's or a listing's path repeats; a record's path does not).
_KNOWN_URLS = 256


class HttpClient:
    """One connection's client: its request loop, pacing and origin guard.

    Args:
        name: the connection's name in the config file.
        system: the system, for messages.
        settings: the connection's settings (base URL, limits, budgets).
        classify: turns a refused answer into the error the caller acts on.
        transport: an httpx transport (tests pass ``httpx.ASGITransport``).
        limiter: shared requests-per-second limiter, when configured.
    """

    def __init__(
        self,
        name: str,
        system: str,
        settings: ConnectionSettings,
        *,
        classify: Classify,
        transport: httpx.AsyncBaseTransport | None = None,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.name = name
        self.system = system
        self.settings = settings
        self._classify = classify
        self._transport = transport
        self._limiter = limiter
        #: requests in flight: adaptive (AIMD) up to max_concurrency; in process unless shared.
        self.concurrency = AIMDLimiter(name, ceiling=settings.max_concurrency)
        self._client: httpx.AsyncClient | None = None
        self._throttle = ThrottleGate()
        #: no answer came yet: a 404 now more likely means a wrong base_url than a missing record.
        self.answered = False
        #: URLs already parsed and checked (:meth:`_refuse_foreign`), and relative ones merged with the base URL.
        self._urls: dict[str, httpx.URL] = {}
        self._merged: dict[bytes, httpx.URL] = {}

    @property
    def where(self) -> str:
        """The connection as messages name it: ``name (system)``."""
        return f"{self.name} ({self.system})"

    @property
    def shown_url(self) -> str:
        """The base URL as messages may show it: no password, query or fragment."""
        return masked_url(self.settings.base_url)

    def share_concurrency(self, store: StateStore) -> None:
        """Keep the in-flight limit in ``store`` (Redis on the service: every worker's tasks share it)."""
        # Releases in this process wake its waiters at once; others' are polled for, gently.
        self.concurrency = AIMDLimiter(self.name, ceiling=self.settings.max_concurrency, store=store, poll_s=0.1)

    def open(self, auth: httpx.Auth) -> None:
        """Create the client, its credentials bound to the base URL's origin."""
        restrict_to_origin(auth, self.settings.base_url)
        self._client = CookielessClient(
            base_url=self.settings.base_url.rstrip("/"),
            auth=auth,
            timeout=self.settings.timeout_s,
            transport=self._transport
            if self._transport is not None
            else default_transport(max_connections=self.settings.max_concurrency),
            headers={"User-Agent": "custsync/0.1", "Accept": "application/json"},
            limits=httpx.Limits(max_connections=self.settings.max_concurrency),
            # Every request the client sends takes its turn, an auth flow's token requests too (an API
            # counts them against the same quota), inside the in-flight slot: never bunched behind a full window.
            event_hooks={"request": [self._take_turn]} if self._limiter is not None else {},
        )

    async def _take_turn(self, request: httpx.Request) -> None:
        """Wait for this connection's ``requests_per_second`` to allow one more request.

        The wait moves the exchange's deadline (``timeout_s`` bounds the exchange, not the queue).
        """
        assert self._limiter is not None
        loop = asyncio.get_running_loop()
        exchange = _EXCHANGE.get()
        when = exchange.when() if exchange is not None else None
        if exchange is None or when is None:
            await self._limiter.acquire()
            return
        started = loop.time()
        exchange.reschedule(None)  # the deadline stands still while the request waits for its turn
        try:
            await self._limiter.acquire()
        finally:
            exchange.reschedule(when + (loop.time() - started))

    async def aclose(self) -> None:
        """Close the client."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None

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
        target = self._refuse_foreign(url, op)
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
            try:  # the first attempt outside stamina: most requests need no retry, and its set-up costs
                return await self._send(
                    method, target, op=op, params=params, json=json, headers=headers, ok=ok, deadline=deadline
                )
            except Exception as exc:  # replayed below, where stamina decides what it is
                first = exc
            left = self.settings.retry_timeout_s - (loop.time() - started)
            if left <= 0:  # the budget went in the first attempt: no retry, the failure read as stamina would
                backoff(first)
                raise first
            failed: Exception | None = first
            # Retrying: stamina takes the first failure as its own first attempt, so that its count, its
            # waits and its budget (less the time the first attempt took) are what they would have been.
            async for attempt in stamina.retry_context(
                on=backoff,
                attempts=self.settings.retry_attempts,
                timeout=left,
                wait_initial=0.2,
                wait_max=20.0,
            ):
                with attempt:
                    if failed is not None:
                        replayed, failed = failed, None
                        raise replayed
                    return await self._send(
                        method, target, op=op, params=params, json=json, headers=headers, ok=ok, deadline=deadline
                    )
        except RetriableError as exc:
            if isinstance(exc.__cause__, httpx.ConnectError):
                raise FatalError(f"{self.where}: cannot reach {self.shown_url}: {unreachable(exc.__cause__)}") from exc
            raise
        except NotFoundError as exc:
            if not self.answered and method == "GET" and op not in _ONE_THING_OPS:
                raise FatalError(
                    f"{self.where} {op}: {self.shown_url} answered 404 to its first call: check base_url "
                    "(a missing path prefix, such as Timbrix's /api?)"
                ) from exc
            raise
        raise AssertionError("unreachable")  # pragma: no cover - stamina re-raises

    def _refuse_foreign(self, url: str, op: str) -> httpx.URL:
        """Refuse an absolute URL (a ``next`` link) outside the base URL's scheme, host and port.

        Returns:
            ``url`` parsed (parsed once per URL: a create's path is the same for every record).
        """
        known = self._urls.get(url)
        if known is not None:
            return known
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
        if len(self._urls) >= _KNOWN_URLS:
            self._urls.clear()
        self._urls[url] = target
        return target

    def _absolute(self, client: httpx.AsyncClient, target: httpx.URL) -> httpx.URL:
        """``target`` under the client's base URL, merged as httpx merges a relative URL (once per URL)."""
        if target.is_absolute_url:
            return target
        key = target.raw_path  # relative: its path (and query) is the whole of it
        merged = self._merged.get(key)
        if merged is None:
            base = client.base_url  # httpx keeps it ending in "/"
            merged = base.copy_with(raw_path=base.raw_path + target.raw_path.lstrip(b"/"))
            if len(self._merged) >= _KNOWN_URLS:
                self._merged.clear()
            self._merged[key] = merged
        return merged

    async def _send(
        self,
        method: str,
        url: httpx.URL,
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
        async with self.concurrency.slot() as permit:
            try:
                # One deadline for the whole exchange: httpx's timeout is per read, so an
                # answer trickling a byte at a time would otherwise never time out.
                async with asyncio.timeout(self.settings.timeout_s) as exchange:
                    current = _EXCHANGE.set(exchange)
                    try:
                        response = await self._client.request(
                            method,
                            self._absolute(self._client, url),
                            params=dict(params) if params else None,
                            json=json,
                            headers=headers,
                        )
                    finally:
                        _EXCHANGE.reset(current)
                permit.observe(response.status_code, response.headers)
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
            self.answered = True
            if (method == "GET" or op in _READ_OPS) and response.content.strip():
                parse(response, f"{self.system} answered the {op} with a body that is not JSON")
            return response
        if response.status_code in ok:
            self.answered = True
            return response
        raise self._classify(response, op)

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


def parse(response: httpx.Response, unreadable: str) -> Any:
    """The JSON body of a response, parsed once; an unreadable one (deep nesting too) is a RetriableError.

    The cause is the parse error, never a "never sent" transport error, so a
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


def parsed(response: httpx.Response) -> Any:
    """``response.json()``, without parsing again a body the request loop parsed (a 2xx of a read or write)."""
    if _PARSED in response.extensions:
        return response.extensions[_PARSED]
    return response.json()


def release(response: httpx.Response) -> None:
    """Let a read response go now, not at the next cyclic collection: its parsed body dropped, and the
    response ↔ stream cycle httpx's client makes broken (listed pages piled up in the no-op fast path)."""
    response.extensions.pop(_PARSED, None)
    response.stream = httpx.ByteStream(b"")


def body_or_none(response: httpx.Response) -> Any:
    """The JSON body of a response, or ``None`` when it has none (an error answer, read leniently)."""
    try:
        return response.json()
    except ValueError:
        return None


def json_body(response: httpx.Response) -> Any:
    """The JSON body of a 2xx response (a RetriableError when unreadable)."""
    return parse(response, "unreadable JSON body")


__all__ = [
    "Auth",
    "Classify",
    "HttpClient",
    "Response",
    "Transport",
    "body_or_none",
    "json_body",
    "parse",
    "parsed",
    "release",
]
