"""Connectors: one module per system, registered here by name.

Registering a connector class in :data:`REGISTRY` is all it takes for the
config loader to accept its system, the engine to use it, and the contract
suite (``tests/contract``) to test it. A configured connection is built by
:func:`worker.runner.build_connector`.
"""

from __future__ import annotations

from connectors.base import Connector
from connectors.bigcapital import BigcapitalConnector
from connectors.piriod import PiriodConnector
from connectors.thredfi import ThredfiConnector
from connectors.timbrix import TimbrixConnector

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


__all__ = ["REGISTRY", "get_connector"]
