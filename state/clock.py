"""The store's time: this host's clock set by the database server's, so that hosts sharing a store agree.

Two-way runs compare a link's ``updated_at``, stamped by whichever process
wrote it, with when a listing was asked for on this host
(:mod:`worker.engine.fresh`). On one host both come from one clock; workers
on several hosts sharing a PostgreSQL store may not agree by seconds. So the
store measures how far this host's clock is from the server's (the server's
``clock_timestamp()`` against the middle of the round trip, the fastest of a
few) and stamps in the server's time. What the measure cannot tell (half the
round trip) goes the safe way: a write's stamp is taken late, a listing's time
early, so a write is never judged older than a listing it followed.

SQLite is a file on this host: its clock is this host's, nothing to measure.
The measure is taken again every :data:`REFRESH_S` (clocks drift; NTP steps them).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from state.session import now

#: how often the offset to the server's clock is measured again
REFRESH_S = 600.0
_SAMPLES = 3
_NONE = timedelta(0)


class ServerClock:
    """This host's time in the store's terms (see the module's text).

    Args:
        engine: the store's engine.
        local: this host's clock (a test stands in a skewed host's).
    """

    def __init__(self, engine: Engine, local: Callable[[], datetime] = now) -> None:
        self.engine, self.local = engine, local
        self.offset, self.error = _NONE, _NONE
        self._measured: float | None = None

    def later(self) -> datetime:
        """Now in the store's time, at the latest it can be: a write's stamp."""
        offset, error = self._current()
        return self.local() + offset + error

    def earlier(self, local: datetime) -> datetime:
        """``local`` in the store's time, at the earliest it can be: when a listing was asked for."""
        offset, error = self._current()
        return local + offset - error

    def measure(self) -> None:
        """Measure the offset to the server's clock now (PostgreSQL; nothing to do on SQLite)."""
        self._measured = time.monotonic()
        if self.engine.dialect.name != "postgresql":
            return
        best: tuple[timedelta, timedelta] | None = None
        try:
            with self.engine.connect() as connection:
                for _ in range(_SAMPLES):
                    sent = self.local()
                    server = connection.exec_driver_sql("SELECT clock_timestamp()").scalar_one()
                    trip = self.local() - sent
                    if best is None or trip < best[1]:
                        best = (server - (sent + trip / 2), trip)
        except SQLAlchemyError:
            self._measured = None  # the store's own call says what is wrong; measured on the next one
            return
        assert best is not None
        self.offset, self.error = best[0], best[1] / 2

    def _current(self) -> tuple[timedelta, timedelta]:
        if self._measured is None or time.monotonic() - self._measured > REFRESH_S:
            self.measure()
        return self.offset, self.error


__all__ = ["REFRESH_S", "ServerClock"]
