"""Why a connection could not be opened, in words (the one-line error of a connection that cannot be reached)."""

from __future__ import annotations

import socket


def unreachable(exc: BaseException) -> str:
    """Why a connection could not be opened, in words, from the OS errors under ``exc``."""
    seen: BaseException | None = exc
    for _ in range(10):  # the chain is short: httpx → httpcore → OSError → the socket's own
        if seen is None:
            break
        if isinstance(seen, socket.gaierror):
            return "the host name cannot be resolved"
        if isinstance(seen, ConnectionRefusedError):
            return "connection refused"
        seen = seen.__cause__ or seen.__context__
    text = str(exc).lower()
    if "name or service not known" in text or "nodename nor servname" in text or "name resolution" in text:
        return "the host name cannot be resolved"
    if "refused" in text:
        return "connection refused"
    return f"cannot connect ({type(exc).__name__})"


__all__ = ["unreachable"]
