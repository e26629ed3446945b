"""The connection layer of every connector: opening and closing, the request loop, refusals classified.

:class:`Session` is the base :class:`~connectors.base.Connector` builds on. It
holds what a connection needs before any record is read or written: the
validated settings, the :class:`~connectors.http.HttpClient` (retries, pacing,
deadlines, the origin guard), the auth flow, and the turning of a refused
answer into the error the caller acts on (:mod:`connectors.errors`).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Generic, Self

from typing_extensions import TypeVar

from connectors import secrets
from connectors.auth import retry_after_seconds
from connectors.errors import (
    DEFAULT_ERROR_TABLE,
    ConnectorError,
    ErrorRule,
    RateLimitedError,
    body_problems,
    refusal,
    rule_for,
)
from connectors.http import Auth, HttpClient, Response, Transport
from connectors.ratelimit import RateLimiter
from connectors.settings import ConnectionSettings, masked_url, refuse_unusable, secret_values

#: The settings type of a connector: ``class ThredfiConnector(Connector[ThredfiSettings])``.
#: Covariant, and ``ConnectionSettings`` by default, so a bare ``Connector`` is any connector.
SettingsT = TypeVar("SettingsT", bound=ConnectionSettings, default=ConnectionSettings, covariant=True)


class Session(ABC, Generic[SettingsT]):
    """One open connection to a system: settings, HTTP client, auth, refusals.

    Args:
        name: the connection's name in the config file.
        settings: the connection's validated settings.
        transport: an httpx transport (tests pass ``httpx.ASGITransport``).
        limiter: shared requests-per-second limiter, when configured.
        clock: monotonic seconds for token expiry; a seam for tests.
    """

    system: ClassVar[str]
    error_table: ClassVar[Mapping[int, ErrorRule]] = DEFAULT_ERROR_TABLE
    #: vendor field name → canonical field, to name fields in refusals (by default, the table's).
    vendor_fields: ClassVar[Mapping[str, str]] = {}

    def __init__(
        self,
        name: str,
        settings: SettingsT,
        *,
        transport: Transport | None = None,
        limiter: RateLimiter | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self._settings = settings
        #: monotonic seconds, for token expiry; a seam for tests.
        self.clock = clock
        self.http = HttpClient(
            name, self.system, settings, classify=self.classify, transport=transport, limiter=limiter
        )
        # Configured secrets are masked wherever a message quotes them (an error body echoing the key).
        secrets.remember(*secret_values(settings))

    # -- lifecycle ---------------------------------------------------------

    @property
    def settings(self) -> SettingsT:
        """The connection's validated settings, typed as the system declares them."""
        return self._settings

    async def __aenter__(self) -> Self:
        refuse_unusable(self.settings, self.where)
        self.http.open(self.auth())
        try:
            await self.start()
        except BaseException:
            await self.aclose()  # __aexit__ never runs when __aenter__ raises
            raise
        return self

    @property
    def where(self) -> str:
        """The connection as messages name it: ``name (system)``."""
        return f"{self.name} ({self.system})"

    @property
    def shown_url(self) -> str:
        """The base URL as messages may show it: no password, query or fragment."""
        return masked_url(self.settings.base_url)

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self.http.aclose()

    @abstractmethod
    def auth(self) -> Auth:
        """The auth flow for every request."""

    async def start(self) -> None:
        """Called once when the connection opens, before any other request.

        Bigcapital asks its organization here (``GET /api/organization/current``)
        so that its external ids name the tenant, not the host.
        """
        return None

    # -- the one request loop ---------------------------------------------

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
    ) -> Response:
        """Send one request with retries; return a 2xx (or ``ok``) response (see :class:`HttpClient`)."""
        return await self.http.request(
            method, url, op=op, params=params, json=json, headers=headers, idempotent=idempotent, ok=ok
        )

    def classify(self, response: Response, op: str) -> ConnectorError:
        """Turn a non-2xx response into the error the caller acts on.

        Messages quote the vendor's reasons, scrubbed of every remembered
        secret, and never the values of the record.
        """
        rule = rule_for(self.error_table, response.status_code)
        head = f"{self.system} {rule.message} ({op}, HTTP {response.status_code})"
        if rule.error is RateLimitedError:
            return RateLimitedError(head, retry_after_seconds(response))
        return refusal(rule, head, self.parse_error(response), self.vendor_fields)

    def parse_error(self, response: Response) -> list[tuple[str | None, str]]:
        """(vendor field or None, message) pairs from any of the vendors' error shapes, scrubbed."""
        try:
            body = response.json()
        except (ValueError, RecursionError):
            return []
        return [(f, secrets.scrub(m)) for f, m in body_problems(body)]


__all__ = ["Session", "SettingsT"]
