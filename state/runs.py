"""The store's record of runs: started, finished (with their counts), skipped."""

from __future__ import annotations

import uuid

from sqlmodel import col, select

from state.models import Run
from state.redaction import redact as scrub
from state.session import Sessions, now


class Runs(Sessions):
    """The runs of every pipeline (a part of :class:`~state.store.Store`)."""

    def start_run(self, pipeline: str, *, kind: str = "run", dry_run: bool = False) -> str:
        """Record a run as started; return its id."""
        run_id = str(uuid.uuid4())
        with self.session() as s:
            s.add(Run(id=run_id, pipeline=pipeline, kind=kind, dry_run=dry_run, started_at=now()))
        return run_id

    def finish_run(self, run_id: str, *, status: str, counts: dict[str, int], error: str | None = None) -> None:
        """Record a run's outcome and counts."""
        with self.session() as s:
            run = s.get(Run, run_id)
            if run is None:
                return
            for name, value in counts.items():
                setattr(run, name, value)
            # An API's error body may quote a credential: never store one.
            run.status, run.error, run.finished_at = status, scrub(error) if error else error, now()
            s.add(run)

    def record_skipped_run(self, pipeline: str, *, kind: str, reason: str) -> str:
        """Record a run that did not start (lock held)."""
        run_id = self.start_run(pipeline, kind=kind)
        self.finish_run(run_id, status="skipped", counts={}, error=reason)
        return run_id

    def runs(self, pipeline: str | None = None, *, limit: int = 10) -> list[Run]:
        """The newest runs, newest first."""
        with self.session() as s:
            query = select(Run).order_by(col(Run.started_at).desc()).limit(limit)
            if pipeline is not None:
                query = query.where(Run.pipeline == pipeline)
            return list(s.exec(query))

    def get_run(self, run_id: str) -> Run | None:
        """One run by id."""
        with self.session() as s:
            return s.get(Run, run_id)


__all__ = ["Runs"]
