"""What every part of the store shares: its engine, its sessions, and bulk reads in chunks.

Every read the engine makes per page is a bulk read (``IN`` lists in
chunks of :data:`CHUNK`), never a query per record. :meth:`Sessions.transaction`
makes the writes of a block one transaction (a page's commit).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy import Engine
from sqlmodel import Session

if TYPE_CHECKING:
    from state.clock import ServerClock

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
    """The base of the store's parts: an engine, sessions over it, and its time."""

    engine: Engine
    #: the store's time (:mod:`state.clock`): what a link's ``updated_at`` is stamped in
    clock: ServerClock

    @property
    def _open(self) -> threading.local:
        """This store's session of an open :meth:`transaction`, per thread."""
        local: threading.local | None = self.__dict__.get("_sessions")
        if local is None:
            local = self.__dict__.setdefault("_sessions", threading.local())
        return local

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session committed on success, rolled back on error (within a :meth:`transaction`: that one's)."""
        current: Session | None = getattr(self._open, "session", None)
        if current is not None:
            yield current
            return
        with Session(self.engine, expire_on_commit=False) as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Every store call of the block (in this thread) in one transaction: all of it commits, or none."""
        if getattr(self._open, "session", None) is not None:
            yield  # already in one
            return
        with self.session() as session:
            self._open.session = session
            try:
                yield
            finally:
                self._open.session = None


__all__ = ["CHUNK", "Sessions", "chunks", "now"]
