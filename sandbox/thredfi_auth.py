"""Thredfi's OAuth2: the partner and business token endpoints, and the guards of the customer routes.

A mixin of :class:`sandbox.thredfi.ThredfiEmulator`, which sets the attributes declared here.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sandbox import thredfi_rules as rules
from sandbox._core import read_json

FOREIGN_BUSINESS_ID = "05a53f46-08c0-50a1-bbb0-5cd3263b3656"
"""A business that exists but belongs to another partner: 403 ``permission_denied``."""


@dataclass(frozen=True)
class Token:
    business_id: str | None  # None: a partner token
    expires_at: float


class ThredfiAuth:
    """``POST /v1/platform/oauth2/token/``, ``POST /v1/platform/{business_id}/oauth2/token/`` and the guards."""

    partner_uuid: str
    api_key: str
    business_id: str
    token_ttl_s: float
    clock: Callable[[], float]
    require_business_token: bool
    tokens: dict[str, Token]

    async def _partner_token(self, request: Request) -> Response:
        if _basic_credentials(request) != (self.partner_uuid, self.api_key):
            return rules.invalid({}, 401, "invalid_client", "authentication_required")
        grant = await _grant_type(request)
        if grant != "client_credentials":
            details = {"grant_type": [f'"{grant}" is not supported.']}
            return rules.invalid(details, 400, "unsupported_grant_type")
        return self._issue(None)

    async def _business_token(self, request: Request) -> Response:
        token, error = self._token(request)
        if error:
            return error
        if token.business_id is not None:
            return rules.error(403, "permission_denied", "A partner token is required.")
        return self._check_business(request, token) or self._issue(request.path_params["business_id"])

    def _issue(self, business_id: str | None) -> Response:
        access = secrets.token_urlsafe(32)
        self.tokens[access] = Token(business_id, self.clock() + self.token_ttl_s)
        return JSONResponse({"access_token": access, "token_type": "Bearer", "expires_in": int(self.token_ttl_s)})

    def _token(self, request: Request) -> tuple[Token, Response | None]:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not value:
            return Token(None, 0), rules.error(
                401, "authentication_required", "Authentication credentials were not provided."
            )
        token = self.tokens.get(value)
        if token is None or self.clock() >= token.expires_at:
            return Token(None, 0), rules.error(401, "invalid_token", "Token is invalid or expired.")
        return token, None

    def _check_business(self, request: Request, token: Token) -> Response | None:
        business_id = request.path_params["business_id"]
        if business_id not in (self.business_id, FOREIGN_BUSINESS_ID):
            return rules.error(404, "business_not_found", "Business not found.")
        if business_id != self.business_id or token.business_id not in (None, business_id):
            return rules.error(403, "permission_denied", "The token does not cover this business.")
        return None

    def _guard(self, request: Request) -> Response | None:
        token, error = self._token(request)
        if error or (error := self._check_business(request, token)):
            return error
        if token.business_id is None and self.require_business_token:
            return rules.error(403, "permission_denied", "Customer routes need a business-scoped token.")
        return None


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return user, password


async def _grant_type(request: Request) -> str:
    raw = (await request.body()).decode("utf-8", "replace")
    if "json" in request.headers.get("content-type", ""):
        body = await read_json(request)
        return str(body.get("grant_type", "")) if isinstance(body, dict) else ""
    return parse_qs(raw).get("grant_type", [""])[0]
