"""custsync's state store: identities, links, runs, quarantine and the run lock, over SQL.

It imports nothing of ours (``lint-imports`` holds it to that); secrets are
scrubbed through :mod:`state.redaction`, which the composition root fills.

The public names below are loaded on first use, so that importing one light
module (``from state import redaction``, as ``worker`` does) loads neither
SQLAlchemy nor Alembic.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from state.database import mask_url, normalise_url, sqlite_file
    from state.errors import StoreError, StoreUnreachableError
    from state.links import LinkWrite
    from state.lock import StoreLock
    from state.models import Identity, Link, QuarantineEntry, Run
    from state.quarantine import QuarantineWrite
    from state.store import Store

#: public name → the module that defines it.
_HOMES = {
    "Identity": "state.models",
    "Link": "state.models",
    "LinkWrite": "state.links",
    "QuarantineEntry": "state.models",
    "QuarantineWrite": "state.quarantine",
    "Run": "state.models",
    "Store": "state.store",
    "StoreError": "state.errors",
    "StoreLock": "state.lock",
    "StoreUnreachableError": "state.errors",
    "mask_url": "state.database",
    "normalise_url": "state.database",
    "sqlite_file": "state.database",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOMES))


__all__ = [
    "Identity",
    "Link",
    "LinkWrite",
    "QuarantineEntry",
    "QuarantineWrite",
    "Run",
    "Store",
    "StoreError",
    "StoreLock",
    "StoreUnreachableError",
    "mask_url",
    "normalise_url",
    "sqlite_file",
]
