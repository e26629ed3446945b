"""What becomes of each record of a page: one *outcome* each.

The plan step (:mod:`worker.engine.plan`) gives :class:`Unchanged`,
:class:`Held`, :class:`Quarantine` or :class:`Write`; the execute step
(:mod:`worker.engine.execute`) turns a :class:`Write` into :class:`Written`,
:class:`Refused` or :class:`Deferred`. The counts of a run are derived from
these outcomes (:func:`count_of`), so each record counts once by construction.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from connectors.model import Customer, FieldProblem, RemoteCustomer
from state.models import QuarantineEntry
from state.store import LinkWrite
from worker.diff import Decision, LinkState
from worker.engine.results import CountKey
from worker.engine.twoway import FirstContact

#: how a record whose writes went through counts.
WrittenAs = Literal["created", "updated", "archived", "unchanged", "matched"]


# -- a record on its way ------------------------------------------------------


@dataclass(frozen=True)
class Record:
    """A source record with its identity: ``identity_id`` is ``None`` until the store holds one."""

    remote: RemoteCustomer
    external_id: str
    identity_id: int | None = None
    #: (fingerprint, active) of the source link as stored: saved again only when it changed.
    seen: tuple[str | None, bool | None] = (None, None)
    #: the store knew no identity of it before this run.
    fresh: bool = False


@dataclass(frozen=True)
class Sides:
    """A two-way record's view of both sides (:mod:`worker.engine.twoway`).

    Attributes:
        edited: fields edited in the source since its last sync with the target, that may flow.
        passed: fields edited in the source that do not flow (lossy there, not kept, defaulted): only remembered.
        forced: fields the source's connection owns that the target holds marked dirty: written back.
        memory: field → hash of what the target held at its last sync with the source.
        first: set when the source has no memory of the target yet (a copy that reached it another
            way round a ring, a link older than memories, a store lost): each field that differs
            goes by :func:`~worker.engine.twoway.first_contact` (``--full`` writes the source's values).
            Its ``exact`` fields are those exact in the source; the executor keeps those exact in the
            target too.
    """

    edited: frozenset[str] = frozenset()
    passed: frozenset[str] = frozenset()
    forced: frozenset[str] = frozenset()
    memory: Mapping[str, str] = dataclasses.field(default_factory=dict)
    first: FirstContact | None = None


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
    #: field → hash of the source's own value (before defaults): its memory of this sync.
    source_now: Mapping[str, str] = dataclasses.field(default_factory=dict)
    #: fields whose value came from the pipeline's ``defaults``: never written on update, never matched on.
    defaulted: frozenset[str] = frozenset()
    #: set for a two-way update (a linked target record): what to compare field by field.
    sides: Sides | None = None
    #: one way: what the target needs of it, decided once when it was shaped (``None``: decide it then).
    one_way: Decision | None = None


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
    #: two-way: fields held as conflicts (the record counts as failed, its other fields went through).
    conflicts: tuple[str, ...] = ()
    #: the source's memory of this sync with the target (field → hash); ``None``: left as it is.
    remembered: Mapping[str, str] | None = None

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
        return "failed" if outcome.conflicts else outcome.outcome
    return "failed"


def problem_of(outcome: Outcome) -> FieldProblem | None:
    """Why a record is quarantined by this outcome, if it is."""
    return outcome.problem if isinstance(outcome, Quarantine | Refused) else None


def quarantine_if(outcome: Planned, problems: Mapping[str, FieldProblem]) -> Planned:
    """A write turned into a quarantine when a problem was found for its record."""
    problem = problems.get(outcome.record.remote.id)
    if problem is None or not isinstance(outcome, Write):
        return outcome
    return Quarantine(outcome.record, problem, outcome.prepared.source_fingerprint, outcome.prepared)


def unsure_if(outcome: Planned, unsure: Mapping[str, str]) -> Planned:
    """A record not planned from what was read of it (:mod:`worker.engine.fresh`): quarantined for the next run.

    No fingerprint and nothing shaped, so nothing of it is written or remembered, and the next
    run plans it again (never held as "unchanged since").
    """
    why = unsure.get(outcome.record.remote.id)
    return outcome if why is None else Quarantine(outcome.record, FieldProblem("record", why))


def with_identity(outcome: Planned, ids: Mapping[str, int]) -> Planned:
    """A planned record whose identity the store just made."""
    if not isinstance(outcome, Write | Unchanged) or outcome.record.identity_id is not None:
        return outcome
    identity_id = ids.get(outcome.record.external_id)
    if identity_id is None:
        return outcome
    record = dataclasses.replace(outcome.record, identity_id=identity_id)
    return dataclasses.replace(outcome, prepared=dataclasses.replace(outcome.prepared, record=record))


__all__ = [
    "Deferred",
    "Executed",
    "Held",
    "Outcome",
    "Planned",
    "Prepared",
    "Quarantine",
    "Record",
    "Refused",
    "Sides",
    "Unchanged",
    "Write",
    "Written",
    "WrittenAs",
    "count_of",
    "problem_of",
    "quarantine_if",
    "unsure_if",
    "with_identity",
]
