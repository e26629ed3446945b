"""What every part of the store shares: its engine, its sessions, and bulk reads in chunks.

Every read the engine makes per page is a bulk read (``IN`` lists in
chunks of :data:`CHUNK`), never a query per record.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TypeVar

from sqlalchemy import Engine
from sqlmodel import Session

CHUNK = 500
T = TypeVar("T")


def now() -> datetime:
    """The current time, in UTC."""
    return datetime.now(UTC)


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    """``items`` in slices of at most ``size`` (one ``IN`` list each)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Sessions:
    """The base of the store's parts: an engine, and sessions over it."""

    engine: Engine

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session committed on success, rolled back on error."""
        with Session(self.engine, expire_on_commit=False) as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise


__all__ = ["CHUNK", "Sessions", "chunks", "now"]
