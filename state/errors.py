"""The state store's errors: one line each, naming the URL with its password masked."""

from __future__ import annotations

from state.redaction import redact as scrub


class StoreError(Exception):
    """The state store cannot be opened; one line, naming the URL with its password masked.

    Attributes:
        unreachable: True when the store exists in principle but cannot be
            reached or written (a server down, a missing folder, a read-only
            file, an unknown database): the run could not happen (exit 3).
            False when the URL itself is wrong (exit 2).
    """

    unreachable = False

    def __init__(self, message: str) -> None:
        super().__init__(scrub(message))


class StoreUnreachableError(StoreError, ConnectionError):
    """The state store cannot be reached or written (exit 3). A ConnectionError: the Celery tasks retry it."""

    unreachable = True


__all__ = ["StoreError", "StoreUnreachableError"]
