"""Timbrix's credentials: the OAuth2 token endpoint (throttled), the API key check and the guards.

A mixin of :class:`sandbox.timbrix.TimbrixEmulator`, which sets the attributes declared here.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sandbox import timbrix_rules as rules
from sandbox._core import read_json


class TimbrixAuth:
    """``POST /api/oauth/token``, ``POST /api/api-keys/validate`` and the customer routes' guards."""

    api_key: str
    client_id: str
    client_secret: str
    organization_id: str
    scopes: tuple[str, ...]
    token_ttl_s: float
    token_rate_limit: int
    token_rate_window_s: float
    clock: Callable[[], float]
    tokens: dict[str, tuple[float, frozenset[str]]]  # token → (expiry, scopes)
    _window: tuple[float, int] | None  # (start, hits) of the token limiter

    async def _token(self, request: Request) -> Response:
        if request.method != "POST":
            return rules.no_route(request)
        # @nestjs/throttler: a fixed window opened by the first request, every request counts.
        now = self.clock()
        if self._window is None or now - self._window[0] >= self.token_rate_window_s:
            self._window = (now, 0)
        start, hits = self._window[0], self._window[1] + 1
        self._window = (start, hits)
        if hits > self.token_rate_limit:
            wait = max(1, math.ceil(start + self.token_rate_window_s - now))
            return JSONResponse(
                {"statusCode": 429, "message": "ThrottlerException: Too Many Requests"},
                status_code=429,
                headers={"Retry-After": str(wait)},
            )
        body = await read_json(request)
        body = body if isinstance(body, dict) else {}
        scopes: list[str] = body.get("scopes") or []
        messages = [
            f"{k} must be a string"
            for k in ("clientId", "clientSecret")
            if not isinstance(body.get(k), str) or not body[k]
        ]
        if not isinstance(scopes, list) or not scopes or not all(isinstance(s, str) for s in scopes):
            messages.append("scopes must be a non-empty array of strings")
        if "userId" in body and not isinstance(body["userId"], str):
            messages.append("userId must be a string")
        if messages:
            return rules.error(400, messages, "Bad Request")
        if (body["clientId"], body["clientSecret"]) != (self.client_id, self.client_secret):
            return rules.unauthorized("Invalid client credentials")
        if unknown := [s for s in scopes if s not in self.scopes]:
            return rules.error(400, f"Scopes not configured on this OAuth app: {', '.join(unknown)}", "Bad Request")
        token = secrets.token_urlsafe(32)
        self.tokens[token] = (now + self.token_ttl_s, frozenset(scopes))
        return JSONResponse(
            {
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": int(self.token_ttl_s),
                "scope": " ".join(scopes),
            }
        )

    async def _validate(self, request: Request) -> Response:
        if request.method != "POST":
            return rules.no_route(request)
        body = await read_json(request)
        key = (body.get("apiKey") or body.get("key") if isinstance(body, dict) else None) or (
            request.headers.get("x-api-key")
        )
        if key != self.api_key:
            return rules.unauthorized("Invalid API key")
        return JSONResponse({"valid": True, "organizationId": self.organization_id, "environment": "sandbox"})

    def _authorize(self, request: Request) -> Response | None:
        """Guards in NestJS order: authentication (401), membership, then scope (403)."""
        scopes: frozenset[str] | None = None  # None: an API key may do everything
        key = request.headers.get("x-api-key")
        keyword, _, token = request.headers.get("authorization", "").partition(" ")
        if key is not None:
            if key != self.api_key:
                return rules.unauthorized()
        elif keyword.lower() == "bearer" and token.strip() in self.tokens:
            expiry, scopes = self.tokens[token.strip()]
            if self.clock() >= expiry:
                return rules.unauthorized()
        else:
            return rules.unauthorized()
        if request.path_params["org"] != self.organization_id:
            return rules.error(403, "User is not a member of this organization", "Forbidden")
        needed = "customers:read" if request.method == "GET" else "customers:write"
        if scopes is not None and needed not in scopes:
            return rules.error(403, "Forbidden resource", "Forbidden")
        return None
