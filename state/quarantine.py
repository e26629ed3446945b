"""The store's quarantine: the source records a pipeline could not write, and why."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import func
from sqlmodel import col, delete, select

from state.models import QuarantineEntry
from state.redaction import redact as scrub
from state.session import Sessions, chunks, now


@dataclass(frozen=True)
class QuarantineWrite:
    """One record to quarantine."""

    source_id: str
    external_id: str | None
    field: str
    reason: str
    source_fingerprint: str | None


class Quarantine(Sessions):
    """Quarantine entries, one per source record (a part of :class:`~state.store.Store`)."""

    def quarantine(self, pipeline: str, run_id: str, entries: Iterable[QuarantineWrite]) -> None:
        """Add or refresh quarantine entries (one per source record)."""
        entries = list(entries)
        if not entries:
            return
        at = now()
        with self.session() as s:
            existing: dict[str, QuarantineEntry] = {}
            for chunk in chunks([e.source_id for e in entries]):
                query = select(QuarantineEntry).where(
                    QuarantineEntry.pipeline == pipeline, col(QuarantineEntry.source_id).in_(chunk)
                )
                existing.update({q.source_id: q for q in s.exec(query)})
            for e in entries:
                row = existing.get(e.source_id)
                if row is None:
                    row = QuarantineEntry(
                        pipeline=pipeline,
                        source_id=e.source_id,
                        field=e.field,
                        reason=scrub(e.reason)[:2000],
                        run_id=run_id,
                        first_seen=at,
                        last_seen=at,
                        attempts=0,
                    )
                    existing[e.source_id] = row
                held = (e.external_id, e.field, scrub(e.reason)[:2000], e.source_fingerprint)
                if row.changed_at is None or (row.external_id, row.field, row.reason, row.source_fingerprint) != held:
                    row.changed_at = at  # what a plan reads of the entry changed (the store's stamp moves)
                row.external_id, row.field, row.reason, row.source_fingerprint = held
                row.run_id, row.last_seen = run_id, at
                row.attempts += 1
                s.add(row)

    def release(self, pipeline: str, source_ids: Sequence[str]) -> None:
        """Remove the quarantine entries of records that went through."""
        with self.session() as s:
            for chunk in chunks(list(source_ids)):
                s.exec(
                    delete(QuarantineEntry).where(
                        col(QuarantineEntry.pipeline) == pipeline, col(QuarantineEntry.source_id).in_(chunk)
                    )
                )

    def quarantined(self, pipeline: str, source_ids: Sequence[str] | None = None) -> list[QuarantineEntry]:
        """Quarantine entries of a pipeline (optionally only these source ids)."""
        with self.session() as s:
            query = select(QuarantineEntry).where(QuarantineEntry.pipeline == pipeline)
            if source_ids is None:
                return list(s.exec(query.order_by(col(QuarantineEntry.source_id))))
            found: list[QuarantineEntry] = []
            for chunk in chunks(list(source_ids)):
                found.extend(s.exec(query.where(col(QuarantineEntry.source_id).in_(chunk))))
            return found

    def count_quarantined(self, pipeline: str) -> int:
        """How many records of a pipeline are in quarantine."""
        with self.session() as s:
            query = select(func.count()).select_from(QuarantineEntry).where(QuarantineEntry.pipeline == pipeline)
            return int(s.exec(query).one())


__all__ = ["Quarantine", "QuarantineWrite"]
