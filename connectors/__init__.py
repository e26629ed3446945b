"""Connectors: one module per system, registered here by name.

Registering a connector class in :data:`REGISTRY` is all it takes for the
config loader to accept its system, the engine to use it, and the contract
suite (``tests/contract``) to test it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import httpx

from connectors.base import ConnectionSettings, Connector
from connectors.bigcapital import BigcapitalConnector
from connectors.piriod import PiriodConnector
from connectors.ratelimit import LocalRateLimiter, RateLimiter
from connectors.thredfi import ThredfiConnector
from connectors.timbrix import TimbrixConnector

if TYPE_CHECKING:
    from worker.config import AppConfig

REGISTRY: dict[str, type[Connector]] = {
    "bigcapital": BigcapitalConnector,
    "thredfi": ThredfiConnector,
    "piriod": PiriodConnector,
    "timbrix": TimbrixConnector,
}


def get_connector(system: str) -> type[Connector]:
    """The connector class of a system.

    Raises:
        KeyError: unknown system; the message lists the known ones.
    """
    try:
        return REGISTRY[system]
    except KeyError:
        raise KeyError(f"unknown system {system!r} (known: {', '.join(sorted(REGISTRY))})") from None


def build_connector(
    config: AppConfig,
    name: str,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    limiter_factory: Callable[[str, float], RateLimiter] | None = None,
) -> Connector:
    """Build the connector of a configured connection.

    Args:
        config: the loaded config.
        name: the connection's name.
        transport: an httpx transport (tests and the demo pass the emulator's).
        limiter_factory: builds the shared limiter when ``requests_per_second`` is set
            (the service passes a Redis-backed one; default: in process).
    """
    settings: ConnectionSettings = config.connections[name]
    limiter: RateLimiter | None = None
    if settings.requests_per_second:
        factory = limiter_factory or (lambda _key, rate: LocalRateLimiter(rate))
        limiter = factory(name, settings.requests_per_second)
    return get_connector(settings.system)(name, settings, transport=transport, limiter=limiter)


__all__ = ["REGISTRY", "build_connector", "get_connector"]
