"""Recording what a page did in the state store, and the run's counts derived from it.

Each record's final outcome is kept by source id (:class:`Ledger`): a later
pass over the same record (an unanswered create retried) replaces it, so
each record counts once by construction and :meth:`Ledger.counts` is a
tally, never a sum of increments and decrements.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import structlog

from state.store import LinkWrite, QuarantineWrite, Store
from worker.engine.outcomes import Deferred, Outcome, Prepared, Quarantine, Refused, Unchanged, Write, Written, count_of
from worker.engine.results import CountKey, Counts, RunHooks
from worker.engine.twoway import conflict_reason

log = structlog.get_logger("custsync.sync")


def _shaped(outcome: Outcome | Write) -> tuple[Prepared, str] | None:
    """The record as shaped for the target and its latest fingerprint, when it got that far."""
    if isinstance(outcome, Unchanged | Write):
        return outcome.prepared, outcome.prepared.fingerprint
    if isinstance(outcome, Quarantine):
        return (outcome.prepared, outcome.prepared.fingerprint) if outcome.prepared is not None else None
    if isinstance(outcome, Written | Refused | Deferred):
        return outcome.write.prepared, outcome.fingerprint
    return None


def _source_fingerprint(outcome: Outcome) -> str | None:
    if isinstance(outcome, Quarantine):
        return outcome.source_fingerprint
    if isinstance(outcome, Refused):
        return outcome.write.prepared.source_fingerprint
    return None


class Ledger:
    """The state-store writes of one run and the final outcome of each of its records.

    Args:
        store: the state store.
        pipeline: the pipeline's name.
        run_id: the run recorded.
        source: the source connection's name.
        target: the target connection's name.
        hooks: called after each commit.
    """

    def __init__(self, store: Store, *, pipeline: str, run_id: str, source: str, target: str, hooks: RunHooks) -> None:
        self.store, self.pipeline, self.run_id, self.source, self.target = store, pipeline, run_id, source, target
        self.hooks = hooks
        self._final: dict[str, CountKey] = {}

    def tally(self, outcomes: Iterable[Outcome]) -> None:
        """Take these as the records' final outcomes (replacing earlier ones of the same records)."""
        for outcome in outcomes:
            self._final[outcome.record.remote.id] = count_of(outcome)

    def unchanged(self, source_ids: Iterable[str]) -> None:
        """Take these records as unchanged: a page the fast path did not plan (nothing to record)."""
        self._final.update(dict.fromkeys(source_ids, "unchanged"))

    def counts(self, pulled: int, *, vanished: int = 0) -> Counts:
        """The run's counts so far."""
        return Counts.of(pulled, self._final.values(), vanished=vanished)

    def intents(self, writes: Sequence[Write]) -> None:
        """Commit a pending link for each create before it is sent: a crash leaves at worst an intent."""
        intents = [
            LinkWrite(w.record.identity_id, None, None, None, status="pending")
            for w in writes
            if w.record.identity_id is not None
            and "create" in w.decision.actions
            and (w.prepared.link is None or w.prepared.link.status != "pending")
        ]
        self.store.save_links(self.target, intents)
        if intents:
            self.hooks.committed()

    def page(self, outcomes: Sequence[Outcome | Write], quarantined: Mapping[str, object]) -> None:
        """Record every record of a page: counted, linked, quarantined or released here, never dropped.

        A :class:`Write` here is one whose push raised (the run stops): linked and released
        like one that went through, counted nowhere.
        """
        with self.store.transaction():  # the page's links, quarantine and releases: all of it, or none
            self._page(outcomes, quarantined)
        self.hooks.committed()

    def _page(self, outcomes: Sequence[Outcome | Write], quarantined: Mapping[str, object]) -> None:
        # What the source holds now, so the opposite pipeline sees no difference to echo.
        source_links: list[LinkWrite] = []
        for outcome in outcomes:
            shaped = _shaped(outcome)
            if shaped is None:
                continue
            prepared, fp = shaped
            record = prepared.record
            remembered = _remembered(outcome, prepared)
            if record.identity_id is not None and (record.seen != (fp, prepared.shaped.active) or remembered):
                memory = {self.target: remembered} if remembered else None
                source_links.append(
                    LinkWrite(record.identity_id, record.remote.id, fp, prepared.shaped.active, memory=memory)
                )
        # A create refused for good keeps its pending intent: the next run looks it up once more, harmlessly.
        saves = [(self.source, source_links), (self.target, _links(outcomes))]
        # The page is one transaction: the links of its two connections are locked in the same order
        # whichever way the pipeline runs, so the two pipelines of a pair committing at once never deadlock.
        for connection, links in sorted(saves, key=lambda save: save[0]):
            self.store.save_links(connection, links)
        self.tally(o for o in outcomes if not isinstance(o, Write))
        self.quarantine(outcomes)
        # A record held back unchanged stays in quarantine.
        released = [
            o.record.remote.id
            for o in outcomes
            if isinstance(o, Unchanged | Write) or (isinstance(o, Written) and not o.conflicts)
        ]
        self.store.release(self.pipeline, [source_id for source_id in released if source_id in quarantined])

    def retried(self, outcomes: Sequence[Outcome]) -> None:
        """Record a retry pass of unanswered creates (their source links were saved with their page)."""
        with self.store.transaction():
            self.store.save_links(self.target, _links(outcomes))
            self.quarantine(outcomes)
            self.store.release(
                self.pipeline, [o.record.remote.id for o in outcomes if isinstance(o, Written) and not o.conflicts]
            )
        self.tally(outcomes)
        self.hooks.committed()

    def quarantine(self, outcomes: Sequence[Outcome | Write]) -> None:
        """Quarantine (and log) the records refused, and those with held conflicts, in one call."""
        entries: list[QuarantineWrite] = []
        for outcome in outcomes:
            if isinstance(outcome, Quarantine | Refused):
                log.warning(
                    "record_quarantined",
                    external_id=outcome.record.external_id,
                    source_id=outcome.record.remote.id,
                    field=outcome.problem.field,
                )
                problem = outcome.problem
                entries.append(
                    QuarantineWrite(
                        outcome.record.remote.id,
                        outcome.record.external_id,
                        problem.field,
                        problem.reason,
                        _source_fingerprint(outcome),
                    )
                )
            elif isinstance(outcome, Written) and outcome.conflicts:
                # Held, never "unchanged since": the next run looks at both sides again (no fingerprint).
                for name in outcome.conflicts:
                    log.warning(
                        "conflict_held",
                        external_id=outcome.record.external_id,
                        field=name,
                        source=self.source,
                        target=self.target,
                    )
                reason = "; ".join(conflict_reason(n, self.source, self.target) for n in outcome.conflicts)
                record = outcome.record
                entries.append(
                    QuarantineWrite(record.remote.id, record.external_id, outcome.conflicts[0], reason, None)
                )
        self.store.quarantine(self.pipeline, self.run_id, entries)


def _remembered(outcome: Outcome | Write, prepared: Prepared) -> dict[str, str] | None:
    """What the source remembers of this sync with the target (field → hash), if anything changed."""
    if isinstance(outcome, Written) and outcome.remembered:
        return dict(outcome.remembered)
    sides = prepared.sides
    if isinstance(outcome, Unchanged) and sides is not None and sides.passed:
        return {n: prepared.source_now[n] for n in sides.passed if n in prepared.source_now}
    return None


def _links(outcomes: Iterable[Outcome | Write]) -> list[LinkWrite]:
    return [o.link for o in outcomes if isinstance(o, Written | Refused | Deferred) and o.link is not None]


__all__ = ["Ledger"]
