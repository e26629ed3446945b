"""What the store does to text before keeping it: the process's redactor.

The state store imports nothing of ours, yet no secret may reach it. The
composition root installs the redactor once (``worker`` installs
:func:`connectors.secrets.scrub` when it is imported); every error message
and quarantine reason the store keeps, and every :class:`StoreError`
message, passes through it.
"""

from __future__ import annotations

from collections.abc import Callable

_redactor: Callable[[str], str] | None = None


def install(redactor: Callable[[str], str]) -> None:
    """Set the function that masks secrets in text the store keeps or raises."""
    global _redactor
    _redactor = redactor


def redact(text: str) -> str:
    """``text`` through the installed redactor (unchanged when none is installed)."""
    redactor = _redactor
    return redactor(text) if redactor is not None and text else text


__all__ = ["install", "redact"]
