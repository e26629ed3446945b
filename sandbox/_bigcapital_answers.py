"""What the Bigcapital server answers besides the rows, as recorded (see :mod:`sandbox.bigcapital`):
its throttlers (NestJS, two limits per route and client), the current organization, and the
bodies of its errors (a crash, a missing record, a business error, a validation failure).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.responses import JSONResponse, Response

from sandbox._core import json_error


@dataclass(frozen=True)
class Throttle:
    """The server's two throttlers, each counted per route and client.

    Attributes:
        auth_limit: requests a window on one route (``THROTTLE_AUTH_LIMIT``, default 10).
        global_limit: the same, for the global throttler (``THROTTLE_GLOBAL_LIMIT``, default 100).
        window_s: the window and the block after a refusal, in seconds (default 60).
    """

    auth_limit: int = 10
    global_limit: int = 100
    window_s: float = 60.0


RECORDED_THROTTLE = Throttle()
"""The server's defaults, as recorded: 10 (and 100) requests a minute per route."""
UNTHROTTLED = Throttle(auth_limit=100_000, global_limit=100_000)
"""What the recordings' functional probes ran with; the emulator's default."""


@dataclass
class Window:
    start: float
    hits: int = 0
    blocked_until: float = 0.0


@dataclass
class Throttler:
    """Counts hits per (throttler, route, client); says when to refuse."""

    settings: Throttle
    clock: Callable[[], float]
    windows: dict[tuple[str, str, str], Window] = field(default_factory=dict)

    def hit(self, tier: str, limit: int, route: str, client: str) -> tuple[dict[str, str], float | None]:
        """Count one request: (headers to send, seconds to wait when refused)."""
        now, span = self.clock(), self.settings.window_s
        key = (tier, route, client)
        window = self.windows.get(key)
        if window is None or now >= window.start + span:
            window = self.windows[key] = Window(start=now)
        if window.blocked_until > now:
            return {}, window.blocked_until - now
        window.hits += 1
        if window.hits > limit:
            window.blocked_until = now + span
            return {}, span
        suffix = "" if tier == "default" else f"-{tier}"
        return {
            f"X-RateLimit-Limit{suffix}": str(limit),
            f"X-RateLimit-Remaining{suffix}": str(max(limit - window.hits, 0)),
            f"X-RateLimit-Reset{suffix}": str(max(math.ceil(window.start + span - now), 0)),
        }, None


def organization(organization_id: str) -> dict[str, Any]:
    stamp = "2026-12-01T19:14:52.000Z"
    subscription = {
        "id": 1, "slug": "main", "active": True, "inactive": False, "ended": False, "canceled": False,
        "status": "active", "plan_id": 1, "tenant_id": 1, "starts_at": "2026-12-01T19:14:24.000Z",
        "ends_at": None, "canceled_at": None, "created_at": None, "updated_at": None,
        "lemon_subscription_id": None, "trial_ends_at": None, "payment_status": None, "on_trial": False,
        "is_payment_failed": False, "is_payment_succeed": False,
    }  # fmt: skip
    metadata = {
        "id": 1, "name": "Custsync Sandbox Org", "industry": None, "location": "US", "language": "en",
        "timezone": "America/New_York", "address": None, "tenant_id": 1, "base_currency": "USD",
        "date_format": "DD MMM yyyy", "fiscal_year": "january", "tax_number": None, "primary_color": None,
        "logo_key": None,
    }  # fmt: skip
    return {
        "id": 1, "subscriptions": [subscription], "metadata": metadata, "organization_id": organization_id,
        "under_maintenance_since": None, "initialized_at": stamp, "seeded_at": stamp, "built_at": stamp,
        "build_job_id": None, "database_batch": None, "upgrade_job_id": None, "created_at": None,
        "updated_at": None, "is_ready": True, "is_build_running": False, "is_upgrade_running": False,
    }  # fmt: skip


def crash() -> Response:
    return json_error(500, {"statusCode": 500, "message": "Internal server error"})


def not_found() -> Response:
    return json_error(404, {"statusCode": 404, "message": "NotFoundError"})


def too_many(headers: Mapping[str, str]) -> Response:
    body = {"statusCode": 429, "message": "ThrottlerException: Too Many Requests"}
    return JSONResponse(body, status_code=429, headers=dict(headers))


def business_error(kind: str) -> Response:
    return json_error(400, {"errors": [{"statusCode": 400, "type": kind, "message": None}]})


def invalid(errors: list[dict[str, Any]]) -> Response:
    return json_error(400, {"message": errors, "error": "Bad Request", "statusCode": 400})


def unparsable() -> Response:
    return json_error(400, {"message": "Unexpected token in JSON body", "error": "Bad Request", "statusCode": 400})


def throttle_from_env() -> Throttle | None:
    raw = os.environ.get("CUSTSYNC_SANDBOX_BIGCAPITAL_THROTTLE")
    if not raw:
        return None
    if raw == "recorded":
        return RECORDED_THROTTLE
    auth, global_, window = raw.split(",")
    return Throttle(auth_limit=int(auth), global_limit=int(global_), window_s=float(window))


__all__ = [
    "RECORDED_THROTTLE",
    "UNTHROTTLED",
    "Throttle",
    "Throttler",
    "Window",
    "business_error",
    "crash",
    "invalid",
    "not_found",
    "organization",
    "throttle_from_env",
    "too_many",
    "unparsable",
]
