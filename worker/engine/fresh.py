"""Two-way: a record listed before another run moved its memory is read again before it is planned.

A two-way run tells an edit from an echo by comparing the source record with
the source's memory of its last sync (:mod:`worker.engine.twoway`). The
listing and the memory are read at two moments: the page is listed, then its
memories are read from the state store when it is planned (a page ahead, a
chunk later, a fan-out task later still). If the opposite pipeline of the
pair (or another run of a ring) wrote into this source in between and
committed what it wrote, the memory is newer than the listing: the old value
still listed would read as an edit made here, and be written back over the
other side's edit.

So a record whose source link changed after its listing was asked for
(``links.updated_at`` later than :attr:`~connectors.reading.Fetched.listed_at`)
is not planned from the listing: it is read again by id and planned against
memories read after that. Its link moving again during the re-read sends it
round once more, :data:`REREADS` times at most; a record still moving then, or
one that cannot be read again, is quarantined without a fingerprint (never
"unchanged since"): nothing of it is written or remembered, and the next run
syncs it.

Both times are taken in the store's time (:mod:`state.clock`): a link's
stamp late and a listing's time early by what the measure of this host's
clock cannot tell, so processes on hosts whose clocks differ agree
(``docs/api-assumptions.md``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import structlog

from connectors.base import Connector
from connectors.errors import ConnectorError, FatalError
from connectors.model import RemoteCustomer
from worker.engine.plan import Snapshot

log = structlog.get_logger("custsync.sync")

#: times a record whose link moved after its listing is read again in one run, before it waits for the next
REREADS = 2


def aware(moment: datetime) -> datetime:
    """``moment`` in UTC; a store without time zones (SQLite) gives naive UTC times."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def moved(records: Sequence[RemoteCustomer], snapshot: Snapshot, read_at: Mapping[str, datetime]) -> list[str]:
    """The ids of ``records`` whose source link changed after the record was read (``read_at``)."""
    found: list[str] = []
    for record in records:
        link = snapshot.source_links.get(record.id)
        at = read_at.get(record.id)
        if link is not None and at is not None and aware(link.updated_at) > at:
            found.append(record.id)
    return found


async def read_again(source: Connector, ids: Sequence[str]) -> tuple[dict[str, RemoteCustomer], dict[str, str]]:
    """Each record of ``ids`` read again by id, and why each that could not be was not.

    A refused connection (:class:`~connectors.errors.FatalError`) stops the run, as anywhere else.
    """

    async def one(remote_id: str) -> RemoteCustomer | str:
        try:
            found = await source.get(remote_id)
        except FatalError:
            raise
        except ConnectorError as exc:
            return f"reading it again failed ({type(exc).__name__})"
        if found.id != remote_id:
            return f"reading it again answered record {found.id!r} instead"
        return found

    answers = await asyncio.gather(*(one(remote_id) for remote_id in ids))
    fresh = {remote_id: a for remote_id, a in zip(ids, answers, strict=True) if isinstance(a, RemoteCustomer)}
    failed = {remote_id: a for remote_id, a in zip(ids, answers, strict=True) if isinstance(a, str)}
    return fresh, failed


def unsure_reason(why: str | None = None) -> str:
    """Why a record waits for the next run (:mod:`worker.engine.fresh`): one line, no values."""
    if why is None:
        why = f"it was still changing after {REREADS} fresh reads"
    return f"another run wrote this record while this run read it, and {why}; the next run syncs it"


__all__ = ["REREADS", "aware", "moved", "read_again", "unsure_reason"]
