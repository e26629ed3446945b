"""Vanished source records: archived (or deleted) in the target only on proof.

A record missing from a listing is not proof that it is gone: a page can
silently lack records while its total says otherwise, a record can move from
the active to the inactive listing mid-walk, a record can be listed without
its id. So a record counts as vanished only when

1. the source's scan of every listing is complete (``source.scan.complete``),
2. no record of this run was listed without an id, and
3. a lookup by its id answers "no such record" (``NotFoundError``).

The share guard (``max_delete_share``) is counted over the target's *linked*
records only: pending intents and deleted links are not records a share of
which may go.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import structlog

from connectors.base import Connector
from connectors.errors import ConnectorError, FatalError, NotFoundError, RecordError
from state.models import StoredLink
from state.store import LinkWrite, Store
from worker.config import PipelineConfig
from worker.engine.twoway import value_hash

log = structlog.get_logger("custsync.deletes")


@dataclass
class VanishedOutcome:
    """What the vanished step did."""

    archived: int = 0
    #: the guard refused the step: the run's error (partial).
    error: str | None = None
    #: dry run: target ids that would be archived (or deleted).
    planned: list[str] = field(default_factory=list)


class Vanished:
    """Find, confirm and archive the targets of vanished source records.

    Args:
        pipeline: the pipeline's config.
        source: the source connection (its ``scan`` was just walked).
        target: the target connection.
        store: the state store.
        seen: every source id listed in this run.
        unidentified: how many records were listed without a usable id.
        dry_run: plan only.
    """

    def __init__(
        self,
        *,
        pipeline: PipelineConfig,
        source: Connector,
        target: Connector,
        store: Store,
        seen: set[str],
        unidentified: int,
        dry_run: bool,
    ) -> None:
        self.pipeline, self.source, self.target, self.store = pipeline, source, target, store
        self.seen, self.unidentified, self.dry_run = seen, unidentified, dry_run

    async def run(self) -> VanishedOutcome:
        """Archive what provably vanished; the outcome says what was done or refused."""
        outcome = VanishedOutcome()
        gone = [
            link
            for link in self.store.links_of(self.source.name)
            if link.remote_id and link.remote_id not in self.seen and link.status == "linked"
        ]
        if not gone:
            return outcome
        if self.unidentified:
            # A record listed without its id may be one of these: the scan does not prove they are gone.
            log.warning("deletes_skipped", reason="records listed without an id", missing=len(gone))
            return outcome
        if not self.source.scan.complete:
            log.warning("deletes_skipped", reason=self.source.scan.reason or "incomplete scan", missing=len(gone))
            return outcome
        source_of = {link.identity_id: link.remote_id for link in gone}
        source_links = {link.identity_id: link for link in gone}
        target_links = self.store.links_by_identity(self.target.name, list(source_of))
        candidates = [
            t for t in target_links.values() if t.remote_id and t.active is not False and t.status == "linked"
        ]
        total = self.store.count_linked(self.target.name)
        limit = int(self.pipeline.max_delete_share * total)
        log.info("source_records_vanished", count=len(gone), to_archive=len(candidates))
        if len(candidates) > limit:
            outcome.error = (
                f"refused to archive {len(candidates)} of {total} linked {self.target.system} records whose source "
                f"records vanished (max_delete_share={self.pipeline.max_delete_share}); check the source, "
                "then raise the share for one run if it is right"
            )
            log.error("delete_guard_tripped", candidates=len(candidates), linked=total)
            return outcome
        confirmed = await self._confirm(candidates, source_of)
        if self.dry_run:
            outcome.planned = [t.remote_id for t in confirmed if t.remote_id]
            outcome.archived = len(outcome.planned)
            return outcome
        writes: list[LinkWrite] = []
        gone_links: list[LinkWrite] = []
        for t in confirmed:
            assert t.remote_id is not None
            try:
                if self.target.spec.archive:
                    await self.target.set_active(t.remote_id, False)
                elif self.pipeline.delete_on_archive:
                    await self.target.delete(t.remote_id)
                else:
                    continue
            except RecordError as exc:
                log.warning("vanished_archive_failed", target_id=t.remote_id, error=str(exc))
                continue
            log.info("record_written", action="archive_vanished", target_id=t.remote_id)
            # Both sides remember it inactive: a source record that comes back is an edit (a reactivation).
            inactive = {"active": value_hash(False)}
            writes.append(
                LinkWrite(t.identity_id, t.remote_id, t.fingerprint, False, memory={self.source.name: inactive})
            )
            was = source_links[t.identity_id]
            gone_links.append(
                LinkWrite(
                    t.identity_id, was.remote_id, was.fingerprint, was.active, memory={self.target.name: inactive}
                )
            )
            outcome.archived += 1
        self.store.save_links(self.target.name, writes)
        self.store.save_links(self.source.name, gone_links)
        return outcome

    async def _confirm(self, candidates: list[StoredLink], source_of: dict[int, str | None]) -> list[StoredLink]:
        """Keep the candidates whose source record a lookup by id says is gone."""

        async def gone(link: StoredLink) -> bool:
            remote_id = source_of.get(link.identity_id)
            if not remote_id:
                return False
            try:
                await self.source.get(remote_id)
            except NotFoundError:
                return True
            except FatalError:
                raise
            except ConnectorError as exc:
                # Neither found nor refused: no proof either way, so it stays.
                log.warning("deletes_skipped", reason=f"lookup failed ({type(exc).__name__})", count=1)
                return False
            # Found (active or not): listed late, or moved between listings mid-walk.
            log.info("vanished_record_found", source_id=remote_id)
            return False

        verdicts = await asyncio.gather(*(gone(c) for c in candidates))
        return [c for c, verdict in zip(candidates, verdicts, strict=True) if verdict]


__all__ = ["Vanished", "VanishedOutcome"]
