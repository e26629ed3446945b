"""The engine's types: what a run reports, and what became of each record.

A record of a page ends in exactly one *outcome*. The plan step
(:mod:`worker.engine.plan`) gives :class:`Unchanged`, :class:`Held`,
:class:`Quarantine` or :class:`Write`; the execute step
(:mod:`worker.engine.execute`) turns a :class:`Write` into :class:`Written`,
:class:`Refused` or :class:`Deferred`. The counts of a run are derived from
these outcomes (:func:`count_of`), so each record counts once by construction.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from connectors.model import Customer, FieldProblem, RemoteCustomer
from state.models import QuarantineEntry
from state.store import LinkWrite
from worker.diff import Decision, LinkState

Progress = Callable[[int], None]
#: the :class:`Counts` field a record's outcome counts under.
CountKey = Literal["created", "updated", "archived", "unchanged", "failed", "matched"]
#: how a record whose writes went through counts.
WrittenAs = Literal["created", "updated", "archived", "unchanged", "matched"]


@dataclass
class Counts:
    """Per-run counts; each source record counts exactly once."""

    pulled: int = 0
    created: int = 0
    updated: int = 0
    archived: int = 0
    unchanged: int = 0
    failed: int = 0
    #: found already in the target (lost state store, lost answer, idempotent create) and linked, not created.
    matched: int = 0

    @classmethod
    def of(cls, pulled: int, outcomes: Iterable[CountKey], *, vanished: int = 0) -> Counts:
        """The counts of ``pulled`` records whose outcomes (one each) are given, plus the vanished archived."""
        tally = Counter(outcomes)
        return cls(
            pulled=pulled,
            created=tally["created"],
            updated=tally["updated"],
            archived=tally["archived"] + vanished,
            unchanged=tally["unchanged"],
            failed=tally["failed"],
            matched=tally["matched"],
        )


@dataclass(frozen=True)
class PlannedChange:
    """One change a dry run would make; a would-be quarantine has a ``reason``."""

    action: str
    external_id: str
    source_id: str
    target_id: str | None
    fields: tuple[str, ...] = ()
    reason: str | None = None


@dataclass
class RunResult:
    """What a run did; ``summary()`` is the ``--json`` object."""

    pipeline: str
    run_id: str
    status: str
    counts: Counts
    duration_s: float
    error: str | None = None
    dry_run: bool = False
    planned: list[PlannedChange] = field(default_factory=list)
    #: the run failed on a transient error that outlasted the retry budget: a task may retry it.
    retriable: bool = False

    @property
    def matched(self) -> int:
        """Records found already in the target and linked instead of created."""
        return self.counts.matched

    @property
    def exit_code(self) -> int:
        """0 all went through, 1 some quarantined, 3 could not finish."""
        return {"succeeded": 0, "partial": 1}.get(self.status, 3)

    def summary(self) -> dict[str, Any]:
        """The one object ``--json`` prints (product.md)."""
        out: dict[str, Any] = {"pipeline": self.pipeline, "run_id": self.run_id, "status": self.status}
        out.update(asdict(self.counts))
        out["duration_s"] = round(self.duration_s, 3)
        if self.error:
            out["error"] = self.error
        if self.dry_run:
            out["dry_run"] = True
            out["planned"] = [asdict(p) for p in self.planned]
        return out


@dataclass(frozen=True)
class RunHooks:
    """Callbacks at the engine's two durable points, for tests (the kill tests inject a SIGKILL here).

    Attributes:
        on_write: called right after each remote write, before the state commit that records it.
        on_commit: called right after each state commit of the run.
    """

    on_write: Callable[[], None] | None = None
    on_commit: Callable[[], None] | None = None

    def wrote(self) -> None:
        if self.on_write is not None:
            self.on_write()

    def committed(self) -> None:
        if self.on_commit is not None:
            self.on_commit()


@dataclass(frozen=True)
class EngineOptions:
    """How one run goes; frozen, built by :mod:`worker.runner`.

    Attributes:
        dry_run: plan only; write nothing to the target or the store.
        full: rewrite every linked record even when its fingerprint is unchanged.
        retry_quarantined: push quarantined records even if unchanged (``custsync retry``).
        hooks: test callbacks after each remote write and state commit.
        progress: called with the running ``pulled`` count after each page.
    """

    dry_run: bool = False
    full: bool = False
    retry_quarantined: bool = False
    hooks: RunHooks = field(default_factory=RunHooks)
    progress: Progress | None = None


# -- a record on its way ------------------------------------------------------


@dataclass(frozen=True)
class Record:
    """A source record with its identity: ``identity_id`` is ``None`` until the store holds one."""

    remote: RemoteCustomer
    external_id: str
    identity_id: int | None = None
    #: (fingerprint, active) of the source link as stored: saved again only when it changed.
    seen: tuple[str | None, bool | None] = (None, None)


@dataclass(frozen=True)
class Prepared:
    """A record shaped for the target and fingerprinted, with its target link."""

    record: Record
    shaped: Customer
    fingerprint: str
    source_fingerprint: str
    link: LinkState | None
    #: fields a side of this identity did not store: never written nor fingerprinted.
    not_stored: frozenset[str] = frozenset()


# -- outcomes of the plan -----------------------------------------------------


@dataclass(frozen=True)
class Unchanged:
    """Nothing to write."""

    prepared: Prepared

    @property
    def record(self) -> Record:
        return self.prepared.record


@dataclass(frozen=True)
class Write:
    """Writes to make, in order (``decision.actions``)."""

    prepared: Prepared
    decision: Decision

    @property
    def record(self) -> Record:
        return self.prepared.record


@dataclass(frozen=True)
class Quarantine:
    """Refused before any write; ``prepared`` when it got as far as being shaped."""

    record: Record
    problem: FieldProblem
    source_fingerprint: str | None = None
    prepared: Prepared | None = None


@dataclass(frozen=True)
class Held:
    """Quarantined earlier and unchanged since: it would fail again, so it is not pushed."""

    record: Record
    entry: QuarantineEntry


# -- outcomes of a write ------------------------------------------------------


@dataclass(frozen=True)
class Written:
    """The writes went through (or, in a dry run, would): counted under ``outcome``."""

    write: Write
    outcome: WrittenAs
    link: LinkWrite | None
    fingerprint: str

    @property
    def record(self) -> Record:
        return self.write.record


@dataclass(frozen=True)
class Refused:
    """The target refused the record for good; ``link`` keeps a record it created or found."""

    write: Write
    problem: FieldProblem
    link: LinkWrite | None
    fingerprint: str

    @property
    def record(self) -> Record:
        return self.write.record


@dataclass(frozen=True)
class Deferred:
    """A transient failure outlasted the retry budget: the next run (or a retry pass) tries again.

    Attributes:
        lost_create: a create failed without an answer and was not found in the target.
    """

    write: Write
    error: str
    link: LinkWrite | None
    fingerprint: str
    lost_create: bool = False

    @property
    def record(self) -> Record:
        return self.write.record


Planned = Unchanged | Write | Quarantine | Held
Executed = Written | Refused | Deferred
Outcome = Unchanged | Quarantine | Held | Written | Refused | Deferred


def count_of(outcome: Outcome) -> CountKey:
    """The one count a record's final outcome adds to."""
    if isinstance(outcome, Unchanged):
        return "unchanged"
    if isinstance(outcome, Written):
        return outcome.outcome
    return "failed"


def problem_of(outcome: Outcome) -> FieldProblem | None:
    """Why a record is quarantined by this outcome, if it is."""
    return outcome.problem if isinstance(outcome, Quarantine | Refused) else None


__all__ = [
    "CountKey",
    "Counts",
    "Deferred",
    "EngineOptions",
    "Executed",
    "Held",
    "Outcome",
    "Planned",
    "PlannedChange",
    "Prepared",
    "Progress",
    "Quarantine",
    "Record",
    "Refused",
    "RunHooks",
    "RunResult",
    "Unchanged",
    "Write",
    "Written",
    "WrittenAs",
    "count_of",
    "problem_of",
]
