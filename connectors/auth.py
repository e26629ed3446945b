"""``httpx.Auth`` flows: static API keys and renewable bearer tokens.

Token flows renew shortly before expiry and, once, on a 401: a token the
server forgot early (restart, revocation) costs one extra request, not a
failed run. A second 401 in a row goes back to the caller, which classifies
it as an :class:`~connectors.errors.AuthError`.

Credentials go only to their own origin: once :func:`restrict_to_origin`
bound a flow to the connection's base URL, a request for any other scheme,
host or port leaves without them (the request loop refuses such requests
before this; this is the second line). Every token a flow is issued is
remembered by :mod:`connectors.secrets` the moment it arrives.
"""

from __future__ import annotations

import asyncio
import base64
import math
import re
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from connectors import secrets
from connectors.errors import AuthError, FatalError, NotFoundError, RateLimitedError, RejectedError, RetriableError

_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str | httpx.URL) -> str:
    """``scheme://host:port`` of a URL, the port always explicit (``http://a`` is ``http://a:80``)."""
    parsed = httpx.URL(url) if isinstance(url, str) else url
    port = parsed.port or _DEFAULT_PORTS.get(parsed.scheme)
    return f"{parsed.scheme}://{parsed.host}:{port}" if port else f"{parsed.scheme}://{parsed.host}"


class _OriginBound:
    """An auth flow that attaches credentials only to requests for one origin."""

    _origin: str | None = None

    def bind_origin(self, origin: str) -> None:
        """Attach credentials only to requests whose :func:`origin_of` is ``origin``."""
        self._origin = origin

    def _foreign(self, request: httpx.Request) -> bool:
        return self._origin is not None and origin_of(request.url) != self._origin


def restrict_to_origin(auth: httpx.Auth, base_url: str) -> None:
    """Bind ``auth`` (and the flows it wraps, one level down) to the origin of ``base_url``."""
    origin = origin_of(base_url)
    for flow in (auth, *vars(auth).values()):
        if isinstance(flow, _OriginBound):
            flow.bind_origin(origin)


class HeaderAuth(_OriginBound, httpx.Auth):
    """Sets fixed headers on every request for its origin (API keys, workspace headers).

    Args:
        headers: header name → value. Values are secrets: never log them.
    """

    def __init__(self, headers: Mapping[str, str]) -> None:
        self._headers = dict(headers)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Add the headers and send (without them to another origin)."""
        if not self._foreign(request):
            request.headers.update(self._headers)
        yield request


class TokenAuth(_OriginBound, httpx.Auth):
    """A bearer token fetched from a token endpoint and renewed on time.

    Subclasses say how to ask for a token (:meth:`token_request`) and where
    its lifetime is in the answer; this class handles expiry, the renewal
    margin, one retry on 401, and concurrent requests sharing one renewal.

    Args:
        renew_margin_s: renew this long before the token expires.
        clock: monotonic seconds; a seam for tests.
    """

    def __init__(self, *, renew_margin_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._token: str | None = None
        self._renew_at = 0.0
        self._renew_margin_s = renew_margin_s
        self._clock = clock
        self._lock = asyncio.Lock()
        self.renewals = 0
        #: the token endpoint refused the credentials: every later request fails the same
        #: way at once, instead of each asking again (token endpoints are rate limited).
        self._refused: AuthError | None = None

    def token_request(self) -> httpx.Request:
        """Build the request that returns a new token."""
        raise NotImplementedError

    def _expired(self) -> bool:
        return self._token is None or self._clock() >= self._renew_at

    def _store(self, response: httpx.Response) -> None:
        if response.status_code == 429:
            raise RateLimitedError("token endpoint rate limited", _retry_after(response))
        if response.status_code >= 500:
            raise RetriableError(f"token endpoint answered {response.status_code}")
        if response.status_code != 200:
            self._refused = AuthError(f"token request refused ({response.status_code})")
            raise self._refused
        try:
            body: Any = response.json()
        except (ValueError, RecursionError) as exc:
            # A proxy's error page, a truncated answer: may be right on the next try.
            raise RetriableError("token endpoint answered a body that is not JSON (HTTP 200)") from exc
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise AuthError("token endpoint answered without an access_token")
        secrets.remember(token, issued=True)
        # Missing or unreadable: assume the documented hour. Zero or less: renew before every request.
        lifetime = _seconds(body.get("expires_in"), default=3600.0)
        # A margin longer than a short-lived token would renew on every call.
        margin = min(self._renew_margin_s, lifetime / 4)
        self._token = str(token)
        self._renew_at = self._clock() + lifetime - margin
        self.renewals += 1

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        """Attach a fresh token; renew once and resend on a 401 (no token to another origin)."""
        if self._foreign(request):
            yield request
            return
        async with self._lock:
            if self._refused is not None:
                raise AuthError(str(self._refused))
            if self._expired():
                answer = yield self._timed(self.token_request(), request)
                await answer.aread()
                self._store(answer)
            token = self._token
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code != 401:
            return
        async with self._lock:
            if self._token == token:  # nobody renewed meanwhile
                answer = yield self._timed(self.token_request(), request)
                await answer.aread()
                self._store(answer)
            token = self._token
        request.headers["Authorization"] = f"Bearer {token}"
        yield request

    @staticmethod
    def _timed(token_request: httpx.Request, request: httpx.Request) -> httpx.Request:
        # Requests built inside an auth flow get no client timeout: lend the caller's.
        if "timeout" in request.extensions:
            token_request.extensions.setdefault("timeout", request.extensions["timeout"])
        return token_request

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """custsync only uses async clients."""
        raise RuntimeError("TokenAuth supports httpx.AsyncClient only")


class ClientCredentialsAuth(TokenAuth):
    """An OAuth2 client-credentials token, the client id and secret sent over HTTP Basic.

    Args:
        url: the token endpoint.
        client_id: the Basic-auth user.
        secret: the Basic-auth password.
        timeout_s: the token request's timeout (requests an auth flow makes get none from the client).
        options: :class:`TokenAuth`'s.
    """

    def __init__(self, url: str, client_id: str, secret: str, timeout_s: float, **options: Any) -> None:
        super().__init__(**options)
        self._url = url
        self._basic = f"Basic {base64.b64encode(f'{client_id}:{secret}'.encode()).decode()}"
        self.timeout = httpx.Timeout(timeout_s).as_dict()

    def token_request(self) -> httpx.Request:
        """``POST`` ``grant_type=client_credentials`` with the Basic credentials."""
        return httpx.Request(
            "POST",
            self._url,
            headers={"Authorization": self._basic},
            data={"grant_type": "client_credentials"},
            extensions={"timeout": self.timeout},
        )


class ExchangedTokenAuth(TokenAuth):
    """A narrower token (Thredfi's business token), asked for with (and through) another token flow.

    Args:
        url: the endpoint that exchanges the outer token for this one.
        outer: the flow whose token the exchange request carries.
        options: :class:`TokenAuth`'s.
    """

    def __init__(self, url: str, outer: ClientCredentialsAuth, **options: Any) -> None:
        super().__init__(**options)
        self._url = url
        self._outer = outer
        #: parsed once: every request of the connection is compared with it.
        self._parsed = httpx.URL(url)

    def token_request(self) -> httpx.Request:
        """``POST`` to the exchange endpoint (the outer flow adds its token)."""
        return httpx.Request("POST", self._url, extensions={"timeout": self._outer.timeout})

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        """Send the exchange request through the outer flow; every other request with this token."""
        # Our own token request goes through the outer flow, which renews the
        # outer token as it must; every other request passes straight through.
        # Both flows are closed explicitly: an abandoned one would keep its lock.
        flow = super().async_auth_flow(request)
        try:
            outgoing = await flow.__anext__()
            while True:
                if outgoing.url != self._parsed:
                    response = yield outgoing
                else:
                    inner = self._outer.async_auth_flow(outgoing)
                    try:
                        sent = await inner.__anext__()
                        while True:
                            response = yield sent
                            try:
                                sent = await inner.asend(response)
                            except StopAsyncIteration:
                                break
                    finally:
                        await inner.aclose()
                outgoing = await flow.asend(response)
        except StopAsyncIteration:
            return
        finally:
            await flow.aclose()


async def ask_tenant(
    request: Callable[..., Awaitable[httpx.Response]], system: str, path: str, key: str, pattern: re.Pattern[str]
) -> str:
    """The tenant the credentials belong to, asked once from a "who am I" route (Bigcapital's organization).

    Args:
        request: the connector's request loop.
        system: the system, for messages.
        path: the route; its JSON answer holds the tenant under ``key``.
        key: the answer's key, and the setting that names the tenant instead.
        pattern: what a usable tenant id looks like.

    Raises:
        AuthError: the server refused the credentials.
        FatalError: the server has no such route, or answered no usable id.
    """
    try:
        response = await request("GET", path, op="organization")
    except NotFoundError:
        raise FatalError(
            f"{system} organization: GET {path} answered 404; check base_url, or set {key} in the connection"
        ) from None
    except RejectedError as exc:
        raise FatalError(f"{system} organization: the server refused the request ({exc.args[0]})") from None
    try:
        body = response.json()
    except ValueError:
        body = None
    found = body.get(key) if isinstance(body, dict) else None
    if not isinstance(found, str) or pattern.fullmatch(found) is None:
        raise FatalError(f"{system} organization: the answer names no usable {key}")
    return found


def _seconds(raw: object, *, default: float) -> float:
    """A token lifetime as seconds ≥ 0; ``default`` when missing, not a number, or not finite."""
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        return default
    try:
        value = float(raw)
    except ValueError:
        return default
    return max(value, 0.0) if math.isfinite(value) else default


def parse_delay(raw: str | None, *, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> float | None:
    """Seconds from a ``Retry-After`` value: delay-seconds or an HTTP-date (RFC 9110 10.2.3).

    Returns:
        The delay, or ``None`` for a missing, unreadable, infinite, NaN or
        negative value (ordinary backoff applies then). A date in the past is 0.
    """
    if raw is None or not raw.strip():
        return None
    text = raw.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # RFC 9110 dates are GMT
            when = when.replace(tzinfo=UTC)
        return max((when - now()).total_seconds(), 0.0)
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds a 429 asks to wait (``Retry-After``, or Bigcapital's ``Retry-After-auth``).

    The longest of the two when both come; ``None`` when neither is usable or
    the wait is zero (ordinary backoff applies).
    """
    waits = [parse_delay(response.headers.get(name)) for name in ("Retry-After", "Retry-After-auth")]
    usable = [w for w in waits if w is not None and w > 0]
    return max(usable) if usable else None


retry_after_seconds = _retry_after

__all__ = [
    "ClientCredentialsAuth",
    "ExchangedTokenAuth",
    "HeaderAuth",
    "TokenAuth",
    "ask_tenant",
    "origin_of",
    "parse_delay",
    "restrict_to_origin",
    "retry_after_seconds",
]
