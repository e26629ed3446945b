"""``httpx.Auth`` flows: static API keys and renewable bearer tokens.

Token flows renew shortly before expiry and, once, on a 401: a token the
server forgot early (restart, revocation) costs one extra request, not a
failed run. A second 401 in a row goes back to the caller, which classifies
it as an :class:`~connectors.errors.AuthError`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Callable, Generator, Mapping
from typing import Any

import httpx

from connectors.errors import AuthError, RateLimitedError, RetriableError


class HeaderAuth(httpx.Auth):
    """Sets fixed headers on every request (API keys, workspace headers).

    Args:
        headers: header name → value. Values are secrets: never log them.
    """

    def __init__(self, headers: Mapping[str, str]) -> None:
        self._headers = dict(headers)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Add the headers and send."""
        request.headers.update(self._headers)
        yield request


class TokenAuth(httpx.Auth):
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
        body: Any = response.json()
        token = body.get("access_token") if isinstance(body, dict) else None
        if not token:
            raise AuthError("token endpoint answered without an access_token")
        raw_lifetime = body.get("expires_in")
        # Missing: assume the documented hour. Zero or less: renew before every request.
        lifetime = 3600.0 if raw_lifetime is None else max(float(raw_lifetime), 0.0)
        # A margin longer than a short-lived token would renew on every call.
        margin = min(self._renew_margin_s, lifetime / 4)
        self._token = str(token)
        self._renew_at = self._clock() + lifetime - margin
        self.renewals += 1

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        """Attach a fresh token; renew once and resend on a 401."""
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


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds from a ``Retry-After`` header; ``None`` when absent, bad or ≤ 0."""
    for name in ("Retry-After", "Retry-After-auth"):
        raw = response.headers.get(name)
        if raw is None:
            continue
        try:
            seconds = float(raw)
        except ValueError:
            return None  # HTTP-date form: fall back to ordinary backoff
        return seconds if seconds > 0 else None
    return None


retry_after_seconds = _retry_after

__all__ = ["HeaderAuth", "TokenAuth", "retry_after_seconds"]
