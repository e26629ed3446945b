"""Imported first by the bench's custsync runs: every ``httpx.AsyncClient`` built without a transport gets
``connectors.transport.default_transport()``, what ``connectors/base.py`` will pass once it is hooked in.
"""

from __future__ import annotations

from typing import Any

import httpx

from connectors.transport import default_transport

_init = httpx.AsyncClient.__init__


def _with_transport(self: httpx.AsyncClient, *args: Any, **kwargs: Any) -> None:
    if kwargs.get("transport") is None:
        limits = kwargs.get("limits")
        kwargs["transport"] = default_transport(max_connections=limits.max_connections if limits else None)
    _init(self, *args, **kwargs)


httpx.AsyncClient.__init__ = _with_transport  # type: ignore[method-assign]
