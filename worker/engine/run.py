"""One run of one pipeline over connectors already built: pull → plan → write → commit, page by page.

The write path is built for the no-duplicate promise:

1. Before a create, the intent is committed as a *pending* link (:meth:`Ledger.intents`).
2. Before creating, the identity is recovered in the target (:mod:`worker.engine.identity`).
3. Only then is the record created, and the link saved as *linked*.

A crash anywhere leaves at worst a pending link, which the next run resolves
through step 2. No Celery and no connector building here: :mod:`worker.runner`
composes the run.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from connectors.base import Connector
from connectors.model import RemoteCustomer
from state.models import QuarantineEntry
from state.store import LinkWrite, Store
from worker.config import PipelineConfig
from worker.diff import LinkState, decide
from worker.engine.ahead import ahead
from worker.engine.commit import Ledger
from worker.engine.deletes import Vanished
from worker.engine.dry import plan_dry
from worker.engine.execute import Executor
from worker.engine.fresh import REREADS, aware, moved, read_again, unsure_reason
from worker.engine.identity import Claim, Identity, usable_id
from worker.engine.memo import PageMemory, config_digest
from worker.engine.outcomes import (
    Deferred,
    Executed,
    Outcome,
    Planned,
    Unchanged,
    Write,
    quarantine_if,
    unsure_if,
    with_identity,
)
from worker.engine.plan import PlanContext, Snapshot, plan_page, positional
from worker.engine.results import Counts, EngineOptions, PlannedChange, plus
from worker.engine.shared import SharedPages
from worker.engine.snapshot import read_snapshot
from worker.topology import ONE_WAY, Rules

log = structlog.get_logger("custsync.sync")


@dataclass(frozen=True)
class _Flight:
    """Some records of a page whose writes were sent (:meth:`Engine._send`), waiting to be recorded."""

    outcomes: Sequence[Planned]
    writes: Sequence[Write]
    sent: asyncio.Future[list[Executed | BaseException]]
    quarantined: Mapping[str, QuarantineEntry]


class Engine(SharedPages):
    """One run of one pipeline; :func:`worker.runner.run_pipeline` builds and runs it."""

    #: records planned, committed as intents and sent at a time: a page's first writes leave while the rest is planned
    CHUNK = 100
    #: the most records planned at once: after a chunk with nothing to send the next is twice as large, up to this
    #: (a quiet page costs fewer reads of the store); after a chunk with writes, :attr:`CHUNK` again
    QUIET_CHUNK = 800

    #: how many more times, in the same run, a create that got no answer is looked up and retried
    UNANSWERED_PASSES = 2

    def __init__(
        self,
        *,
        name: str,
        pipeline: PipelineConfig,
        source: Connector,
        target: Connector,
        store: Store,
        run_id: str,
        options: EngineOptions,
        rules: Rules = ONE_WAY,
    ) -> None:
        self.name, self.pipeline, self.source, self.target, self.store = name, pipeline, source, target, store
        self.run_id, self.options, self.rules = run_id, options, rules
        self.planned: list[PlannedChange] = []
        self.seen_source_ids: set[str] = set()
        self.pulled = 0
        self.deletes_error: str | None = None
        self._vanished = 0
        # The fields this pipeline speaks for: those both systems keep. Symmetric, so
        # the opposite pipeline fingerprints the same fields and sees no echo; the
        # target's other fields are left as they are (defaults fill them on create).
        kept = frozenset((source.spec.fields & target.spec.fields) | {"kind", "name"})
        if pipeline.match_on is not None:
            match_on: tuple[str, ...] = tuple(pipeline.match_on)
        else:
            match_on = () if target.spec.identity_slot else target.spec.natural_keys
        # In a pair or ring a copy may reach a target with an identity slot from a system without one:
        # after a lost state store only a natural key finds the record it came from. The e-mail only
        # (a tax id is shared by customers a company keeps apart), for identities new to the store.
        copies = (
            ("email",)
            if rules.two_way and target.spec.identity_slot and not source.spec.identity_slot and not match_on
            else ()
        )
        self.identity = Identity(
            source=source,
            target=target,
            store=store,
            kept=kept,
            match_on=match_on,
            copies_by=copies,
            split_guard=rules.two_way,
        )
        self.executor = Executor(
            pipeline=pipeline,
            target=target,
            identity=self.identity,
            kept=kept,
            full=options.full,
            hooks=options.hooks,
            source=source.name,
            rules=rules,
        )
        self.ledger = Ledger(
            store, pipeline=name, run_id=run_id, source=source.name, target=target.name, hooks=options.hooks
        )
        self.context = PlanContext(
            kept=kept,
            shape=lambda c: target.shape(c, truncate=pipeline.truncate),
            problems=target.problems,
            external_id_for=source.external_id_for,
            source_system=source.system,
            archive=pipeline.archive,
            target_archives=target.spec.archive,
            defaults=pipeline.defaults,
            delete_on_archive=pipeline.delete_on_archive,
            force=options.full,
            retry_quarantined=options.retry_quarantined,
            dry_run=options.dry_run,
            rules=rules,
            source_name=source.name,
            target_name=target.name,
            source_lossy=source.spec.lossy,
        )
        self._unidentified = 0  # source records listed without a usable id
        self._unanswered: list[Deferred] = []  # creates without an answer, retried once every page is done
        self._duplicates = 0  # records listed again in this run (same id): counted once
        # Creates that would match an unlinked target record by a natural key wait for the whole
        # source: a second source record with the same key on a later page makes both ambiguous.
        self._waiting: list[tuple[Claim, QuarantineEntry | None]] = []
        self._shared = Counts()  # the counts of pages other processes ran for this run (fan-out)

    @property
    def counts(self) -> Counts:
        """The run's counts, derived from the final outcome of each record."""
        return plus(self.ledger.counts(self.pulled, vanished=self._vanished), self._shared)

    # -- the run ------------------------------------------------------------

    async def run(self) -> None:
        """Walk every source page; then handle vanished records if enabled.

        A page listed as a quiet run listed it is not planned again (:mod:`worker.engine.memo`).
        """
        memory = self._memory()
        page_no = 0
        async with aclosing(ahead(self.source.listed())) as pages:
            async for fetched in pages:
                page_no += 1
                ids = memory.skippable(fetched, self.seen_source_ids)
                if ids is not None:
                    self._unchanged(ids)
                    quiet, count = True, len(ids)
                else:
                    records = fetched.read(self.source)
                    quiet, count = await self.page(records, listed_at=fetched.listed_at), len(records)
                memory.note(fetched, quiet=quiet)
                log.info("page_synced", page=page_no, records=count, pulled=self.pulled, planned=ids is None)
                if self.options.progress is not None:
                    self.options.progress(self.pulled)
        await self.finish()
        memory.leave(complete=self.source.scan.complete and self.deletes_error is None)

    def _memory(self) -> PageMemory:
        """The fast path's memory of this run; it skips nothing unless the run is a plain one (not dry, full...)."""
        o = self.options
        if o.dry_run or o.full or o.retry_quarantined or self.source.since is not None:
            return PageMemory.nothing()
        return PageMemory(self.store, self.name, config_digest(self.pipeline, self.source, self.target, self.rules))

    def _unchanged(self, ids: list[str]) -> None:
        """A page the fast path skipped: its records counted as pulled, seen and unchanged."""
        self.pulled += len(ids)
        self.seen_source_ids.update(ids)
        self.ledger.unchanged(ids)

    async def finish(self) -> None:
        """The end of a run, once every page is in: natural-key creates, unanswered creates, vanished records."""
        await self._settle_natural_keys()
        await self._retry_unanswered()
        if self.pipeline.propagate_deletes:
            await self.vanished()
        if self._duplicates:
            log.warning("duplicate_records_ignored", count=self._duplicates)
        self.executor.check.report()

    async def page(self, records: list[RemoteCustomer], *, listed_at: datetime | None = None) -> bool:
        """Plan, push and record one page; the state is saved once per page.

        Args:
            records: the page as listed.
            listed_at: when its listing was asked for (two-way: a record whose link moved since is read again).

        Returns:
            whether the page was quiet: every record listed once, with an id, and unchanged.
        """
        listed = len(records)
        records = self._once(records)
        self.pulled += len(records)
        ids = [r.id for r in records if r.id != "?"]
        records = positional(records, self.pulled)
        self._unidentified += len(records) - len(ids)
        quiet = await self._plan_and_push(records, ids, listed_at)
        return quiet and len(ids) == listed

    async def _plan_and_push(
        self, records: list[RemoteCustomer], ids: list[str], listed_at: datetime | None = None
    ) -> bool:
        """The page after its bookkeeping, in chunks of :attr:`CHUNK`: each planned, its intents committed and its
        writes sent while the next is planned; the page is recorded once, when every write is answered.
        A chunk that sends nothing makes the next one twice as large, up to :attr:`QUIET_CHUNK`.

        Returns:
            whether every record was unchanged.
        """
        listed, flights, quiet = set(ids), [], not self.options.dry_run
        start, size = 0, self.CHUNK
        try:
            while start < len(records):
                chunk = records[start : start + size]
                start += len(chunk)
                planned = await self._plan(chunk, [r.id for r in chunk if r.id in listed], listed_at)
                sends = False
                if planned is not None:
                    outcomes, quarantined, waits = planned
                    quiet = quiet and not waits and all(isinstance(o, Unchanged) for o in outcomes)
                    sends = any(isinstance(o, Write) for o in outcomes)
                    flights.append(self._send(outcomes, quarantined))
                    await asyncio.sleep(0)  # the writes go out before the next chunk is planned
                size = self.CHUNK if sends else min(2 * size, self.QUIET_CHUNK)
        finally:
            if flights:  # what was sent is recorded, even when planning a later chunk failed
                await self._land(flights)
        return quiet

    async def _plan(
        self, records: list[RemoteCustomer], ids: list[str], listed_at: datetime | None = None
    ) -> tuple[list[Planned], Mapping[str, QuarantineEntry], bool] | None:
        """Snapshot and plan some records of a page: their outcomes, quarantine entries, and whether some wait.

        A dry run's records are planned to the end here (``None``: nothing to send).
        """
        snapshot = self._snapshot(records, ids)
        unsure: dict[str, str] = {}
        if listed_at is not None and self.rules.two_way:
            records, snapshot, unsure = await self._settled(records, ids, snapshot, listed_at)
        plan = plan_page(records, snapshot, self.context)
        first = [unsure_if(o, unsure) for o in plan.outcomes] if unsure else plan.outcomes
        outcomes = list(self._ensure_identities(first, plan.fresh, plan.linking))
        self.seen_source_ids.update(r.id for r in records)
        writes = [o for o in outcomes if isinstance(o, Write)]
        problems, claims = await self.identity.collisions(writes, dry_run=self.options.dry_run)
        outcomes = [quarantine_if(o, problems) for o in outcomes]
        if self.options.dry_run:
            final, planned = await plan_dry(outcomes, self.identity)
            self.planned.extend(planned)
            self.ledger.tally(final)
            return None
        if claims:
            waiting = {c.write.record.remote.id for c in claims}
            self._waiting.extend((c, snapshot.quarantined.get(c.write.record.remote.id)) for c in claims)
            outcomes = [o for o in outcomes if o.record.remote.id not in waiting]
        return outcomes, snapshot.quarantined, bool(claims)

    def _snapshot(self, records: Sequence[RemoteCustomer], ids: Sequence[str]) -> Snapshot:
        return read_snapshot(
            self.store, records, ids, pipeline=self.name, source=self.source, target=self.target, ctx=self.context
        )

    async def _settled(
        self, records: list[RemoteCustomer], ids: list[str], snapshot: Snapshot, listed_at: datetime
    ) -> tuple[list[RemoteCustomer], Snapshot, dict[str, str]]:
        """Two-way: the records read again whose memory another run moved after they were listed
        (:mod:`worker.engine.fresh`), the snapshot they are planned against, and why any still waits.
        """
        clock = self.store.clock  # links are stamped in the store's time: this host's listing times go into it
        read_at = dict.fromkeys((r.id for r in records), clock.earlier(aware(listed_at)))
        unsure: dict[str, str] = {}
        for reread in range(REREADS + 1):
            suspects = [remote_id for remote_id in moved(records, snapshot, read_at) if remote_id not in unsure]
            if not suspects:
                break
            if reread == REREADS:
                unsure.update(dict.fromkeys(suspects, unsure_reason()))
                break
            log.info("records_read_again", count=len(suspects), reason="written by another run since listed")
            at = clock.earlier(datetime.now(UTC))
            fresh, failed = await read_again(self.source, suspects)
            unsure.update({remote_id: unsure_reason(why) for remote_id, why in failed.items()})
            read_at.update(dict.fromkeys(fresh, at))
            records = [fresh.get(r.id, r) for r in records]
            snapshot = self._snapshot(records, ids)
        return records, snapshot, unsure

    def _ensure_identities(
        self, outcomes: Sequence[Planned], fresh: Sequence[str], linking: Mapping[str, str]
    ) -> Sequence[Planned]:
        """Give the planned records without an identity one (not in a dry run), and link them to their source."""
        if self.options.dry_run:
            return outcomes
        ids = self.store.ensure_identities(list(fresh)) if fresh else {}
        linked = [LinkWrite(ids[e], remote_id, None, None) for e, remote_id in linking.items()]
        self.store.save_links(self.source.name, linked)
        return [with_identity(o, ids) for o in outcomes]

    def _once(self, records: list[RemoteCustomer]) -> list[RemoteCustomer]:
        """The page without records already listed in this run (a listing may repeat one): each counts once."""
        fresh: list[RemoteCustomer] = []
        ids: set[str] = set()
        for record in records:
            if usable_id(record.id) and (record.id in self.seen_source_ids or record.id in ids):
                self._duplicates += 1
                continue
            ids.add(record.id)
            fresh.append(record)
        return fresh

    # -- writing --------------------------------------------------------------

    async def _push_and_record(self, outcomes: Sequence[Planned], quarantined: Mapping[str, QuarantineEntry]) -> None:
        """Commit the intents, push, and record every record given."""
        await self._land([self._send(outcomes, quarantined)])

    def _send(self, outcomes: Sequence[Planned], quarantined: Mapping[str, QuarantineEntry]) -> _Flight:
        """Commit the intents of these records' creates, then send their writes (in flight when this returns)."""
        writes = [o for o in outcomes if isinstance(o, Write)]
        self.ledger.intents(writes)
        sent = asyncio.gather(*(self.executor.execute(w) for w in writes), return_exceptions=True)
        return _Flight(outcomes, writes, sent, quarantined)

    async def _land(self, flights: Sequence[_Flight]) -> None:
        """Wait for every write sent, then record every record of the flights in one commit."""
        results: dict[int, Executed] = {}
        crashed: list[BaseException] = []
        for flight in flights:
            for write, result in zip(flight.writes, await flight.sent, strict=True):
                if isinstance(result, BaseException):
                    crashed.append(result)
                else:
                    results[id(write)] = result
        self._unanswered.extend(r for r in results.values() if isinstance(r, Deferred) and r.lost_create)
        # Every record, including those refused before any push: each is counted, quarantined or
        # released here, never dropped. An unexpected error in one push must not throw away the
        # links of the others (they would all be recovered again).
        # A write whose push raised stays a Write: linked to its source as planned, counted nowhere.
        outcomes = [results.get(id(o), o) if isinstance(o, Write) else o for f in flights for o in f.outcomes]
        self._record(outcomes, {k: v for f in flights for k, v in f.quarantined.items()})
        if crashed:
            raise crashed[0]

    def _record(self, outcomes: Sequence[Outcome | Write], quarantined: Mapping[str, QuarantineEntry]) -> None:
        """The page's commit (:meth:`Ledger.page`); the crash-safety tests break in here."""
        self.ledger.page(outcomes, quarantined)

    async def _settle_natural_keys(self) -> None:
        """Push the creates that wait on a natural-key match, now that every source record was seen."""
        if not self._waiting:
            return
        waiting, self._waiting = self._waiting, []
        problems = self.identity.settle([claim for claim, _ in waiting])
        outcomes = [quarantine_if(claim.write, problems) for claim, _ in waiting]
        quarantined = {claim.write.record.remote.id: entry for claim, entry in waiting if entry is not None}
        await self._push_and_record(outcomes, quarantined)

    async def _retry_unanswered(self) -> None:
        """Creates that failed without an answer, and were not found: look again, then create.

        A create that is not idempotent is never resent blindly; a 5xx may or may not have
        applied it. Once every page is pushed (and recorded), and if the target answered
        other writes of this run, each such record is looked up again (by external_id, or
        by natural keys and content over one fresh listing of the target per pass) and
        created only if it is still missing, a bounded number of times. What still fails
        stays pending for the next run, as it was recorded with its page.
        """
        for _ in range(self.UNANSWERED_PASSES):
            lost, self._unanswered = self._unanswered, []
            if not lost or not self.executor.answered:
                return
            if not self.target.spec.identity_slot or self.identity.match_on:
                self.identity.forget_index()  # a fresh listing: an applied create is in it now, every link saved
            writes = [self._again(d) for d in lost]
            log.info("unanswered_creates_retried", count=len(lost))
            results = await asyncio.gather(*(self.executor.execute(w, resent=True) for w in writes))
            self._unanswered = [r for r in results if isinstance(r, Deferred) and r.lost_create]
            self.ledger.retried(results)

    def _again(self, deferred: Deferred) -> Write:
        """A lost create as it is tried again: pending, decided afresh."""
        prepared = dataclasses.replace(
            deferred.write.prepared,
            fingerprint=deferred.fingerprint,
            link=LinkState(None, "pending", None, None),
            one_way=None,  # decided afresh below
        )
        decision = decide(
            prepared.link,
            fingerprint=prepared.fingerprint,
            active=prepared.shaped.active,
            archive=self.pipeline.archive,
            target_archives=self.target.spec.archive,
        )
        return Write(prepared, decision)

    # -- vanished source records -------------------------------------------------

    async def vanished(self) -> None:
        """Archive targets of source records that provably vanished (:mod:`worker.engine.deletes`)."""
        outcome = await Vanished(
            pipeline=self.pipeline,
            source=self.source,
            target=self.target,
            store=self.store,
            seen=self.seen_source_ids,
            unidentified=self._unidentified,
            dry_run=self.options.dry_run,
        ).run()
        self.deletes_error = outcome.error
        self._vanished += outcome.archived
        self.planned.extend(PlannedChange("archive", "", "", target_id) for target_id in outcome.planned)


__all__ = ["Engine"]
