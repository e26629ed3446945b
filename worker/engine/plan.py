"""The pure step: a page of source records and a snapshot of the state become one outcome per record.

No I/O and no awaits here. The engine reads the snapshot (links,
identities, quarantine entries) up front, in bulk; :func:`plan_page` then
shapes and validates each record for the target, fingerprints it and says
what the target needs (:func:`worker.diff.decide`):
:class:`~worker.engine.results.Unchanged`, :class:`~worker.engine.results.Write`,
:class:`~worker.engine.results.Quarantine` or :class:`~worker.engine.results.Held`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from connectors.model import CANONICAL_FIELDS, Customer, FieldProblem, RemoteCustomer, fingerprint
from state import memory
from state.models import LinkView, QuarantineEntry
from worker.diff import Action, Decision, LinkState, apply_defaults, decide
from worker.engine.outcomes import Held, Outcome, Planned, Prepared, Quarantine, Record, Sides, Unchanged, Write
from worker.engine.results import PlannedChange
from worker.engine.twoway import DIRTY, FirstContact, Hashes, edited, flowing
from worker.topology import ONE_WAY, Rules
from worker.verify import parse_fields


@dataclass(frozen=True)
class PlanContext:
    """What the plan needs of the pipeline and of the two connections (pure functions only).

    Attributes:
        kept: the fields this pipeline speaks for (both systems keep them).
        shape: the customer as the target will hold it (with the pipeline's truncation).
        problems: why the target cannot take a shaped customer.
        external_id_for: the external_id of a source record that has none yet.
        source_system: the source's system name, for messages.
    """

    kept: frozenset[str]
    shape: Callable[[Customer], Customer]
    problems: Callable[[Customer], Sequence[FieldProblem]]
    external_id_for: Callable[[str], str]
    source_system: str
    archive: bool
    target_archives: bool
    defaults: Mapping[str, str] = field(default_factory=dict)
    delete_on_archive: bool = False
    force: bool = False
    retry_quarantined: bool = False
    dry_run: bool = False
    #: the pair's or ring's rules (:data:`~worker.topology.ONE_WAY` outside them).
    rules: Rules = ONE_WAY
    #: the connections' names: the keys of each side's memory of the other.
    source_name: str = ""
    target_name: str = ""
    #: the source's lossy fields (``TargetSpec.lossy``): never written from it on a two-way update.
    source_lossy: Mapping[str, str] = field(default_factory=dict)

    @property
    def compared(self) -> frozenset[str]:
        """The fields remembered per side: those spoken for, and the state where it is carried."""
        return self.kept | ({"active"} if self.archive and self.target_archives else frozenset())


@dataclass(frozen=True)
class Snapshot:
    """The state a page is planned against, read in bulk before planning.

    Attributes:
        source_links: source id → its source link.
        external_ids: identity id → external_id, for the identities of ``source_links``.
        aliases: source id → an older external_id form the store holds an identity under.
        identities: external_id → identity id, for the records without a source link.
        claims: identity id → its source link, for ``identities``.
        target_links: identity id → its target link.
        quarantined: source id → its quarantine entry.
    """

    source_links: Mapping[str, LinkView] = field(default_factory=dict)
    external_ids: Mapping[int, str] = field(default_factory=dict)
    aliases: Mapping[str, str] = field(default_factory=dict)
    identities: Mapping[str, int] = field(default_factory=dict)
    claims: Mapping[int, LinkView] = field(default_factory=dict)
    target_links: Mapping[int, LinkView] = field(default_factory=dict)
    quarantined: Mapping[str, QuarantineEntry] = field(default_factory=dict)


@dataclass(frozen=True)
class PagePlan:
    """One outcome per record, in page order, and the identities the store must hold first.

    Attributes:
        outcomes: one per record.
        fresh: external_ids of planned records without a source link (their identities are ensured).
        linking: external_id → source id, for those of ``fresh`` whose source link is still to be saved.
    """

    outcomes: tuple[Planned, ...]
    fresh: tuple[str, ...] = ()
    linking: Mapping[str, str] = field(default_factory=dict)


def source_fingerprint(customer: Customer) -> str:
    """What a quarantine entry remembers of the source record: every field and the active flag, in 64 characters."""
    flagged = fingerprint(customer, CANONICAL_FIELDS) + ("1" if customer.active else "0")
    return hashlib.sha256(flagged.encode("ascii")).hexdigest()


def positional(records: Sequence[RemoteCustomer], pulled: int) -> list[RemoteCustomer]:
    """Records listed without an id (``?``) get a positional one, so they can be quarantined."""
    return [RemoteCustomer(f"?{pulled}-{n}", None, r.problem) if r.id == "?" else r for n, r in enumerate(records)]


def fresh_external_id(remote: RemoteCustomer, aliases: Mapping[str, str], ctx: PlanContext) -> str:
    """The external_id of a record without a source link: its own slot, an older form, or a new one."""
    return remote.external_id or aliases.get(remote.id) or ctx.external_id_for(remote.id)


def identify(remote: RemoteCustomer, snapshot: Snapshot, ctx: PlanContext) -> Record:
    """The record with its identity, as far as the store knows it."""
    link = snapshot.source_links.get(remote.id)
    if link is not None:
        return Record(
            remote, snapshot.external_ids[link.identity_id], link.identity_id, (link.fingerprint, link.active)
        )
    external_id = fresh_external_id(remote, snapshot.aliases, ctx)
    identity_id = snapshot.identities.get(external_id)
    return Record(remote, external_id, identity_id, fresh=identity_id is None)


def plan_page(records: Sequence[RemoteCustomer], snapshot: Snapshot, ctx: PlanContext) -> PagePlan:
    """Plan one page (records already numbered by :func:`positional`).

    Two records of the page (or one of the page and one linked earlier) that
    claim one identity are never let overwrite each other: the later one is
    quarantined. A dry run creates no identity, so it does not look for claims.
    """
    claimed: dict[str, str] = {}
    fresh: list[str] = []
    linking: dict[str, str] = {}
    outcomes: list[Planned] = []
    for remote in records:
        record = identify(remote, snapshot, ctx)
        prepared = _prepare(record, snapshot, ctx)
        if not isinstance(prepared, Prepared):
            outcomes.append(prepared)
            continue
        if remote.id not in snapshot.source_links and not ctx.dry_run:
            present = snapshot.claims.get(record.identity_id) if record.identity_id is not None else None
            holder = present.remote_id if present is not None else None
            owner = claimed.setdefault(record.external_id, holder or remote.id)
            if owner != remote.id:
                problem = FieldProblem(
                    "external_id",
                    f"{ctx.source_system} record {owner} already holds this identity; "
                    "remove the duplicate or clear its external id",
                )
                outcomes.append(Quarantine(record, problem, prepared.source_fingerprint))
                continue
            fresh.append(record.external_id)
            if holder is None:
                linking[record.external_id] = remote.id
        outcomes.append(_decide(prepared, ctx))
    return PagePlan(tuple(outcomes), tuple(fresh), linking)


def quarantine_change(outcome: Outcome) -> PlannedChange | None:
    """What a dry run reports of a record a real run would quarantine (or keep in quarantine)."""
    if isinstance(outcome, Quarantine):
        problem, prepared = outcome.problem, outcome.prepared
        target_id = prepared.link.remote_id if prepared is not None and prepared.link else None
        record = outcome.record
        return PlannedChange(
            "quarantine", record.external_id, record.remote.id, target_id, (problem.field,), problem.reason
        )
    if isinstance(outcome, Held):
        record, entry = outcome.record, outcome.entry
        return PlannedChange("quarantine", record.external_id, record.remote.id, None, (entry.field,), entry.reason)
    return None


def _prepare(record: Record, snapshot: Snapshot, ctx: PlanContext) -> Prepared | Quarantine | Held:
    """Shape and validate a record; a :class:`Quarantine` or :class:`Held` when it goes no further."""
    remote = record.remote
    if remote.customer is None:
        return Quarantine(record, remote.problem or FieldProblem("record", "could not be read"))
    customer = apply_defaults(remote.customer, ctx.defaults)
    defaulted = frozenset(n for n in ctx.defaults if getattr(remote.customer, n) in (None, ""))
    source_fp = source_fingerprint(customer)
    entry = snapshot.quarantined.get(remote.id)
    if entry is not None and not ctx.retry_quarantined and entry.source_fingerprint == source_fp:
        # Unchanged since it failed: it would fail again. `custsync retry` pushes it anyway.
        return Held(record, entry)
    shaped = ctx.shape(customer)
    source_link = snapshot.source_links.get(remote.id)
    not_stored = parse_fields(source_link.not_stored) if source_link is not None else frozenset()
    link = snapshot.target_links.get(record.identity_id) if record.identity_id is not None else None
    if link is not None and link.not_stored:
        not_stored |= parse_fields(link.not_stored)
    source_now = Hashes(remote.customer, ctx.compared)
    state = LinkState(link.remote_id, link.status, link.fingerprint, link.active) if link is not None else None
    target_fp = fingerprint(shaped, ctx.kept - not_stored)
    one_way = None if ctx.rules.two_way else _one_way(state, target_fp, shaped.active, ctx)
    if one_way is not None and not one_way.actions:
        # The target holds it as shaped (or it is not to be written): nothing is sent, so nothing is checked.
        problems: Sequence[FieldProblem] = ()
    else:
        problems = ctx.problems(shaped)
    unfit = frozenset(p.field for p in problems)
    sides = _sides(source_now, source_link, link, not_stored | defaulted, unfit, ctx)
    if sides is not None:
        # A two-way update writes only what flows: a field its source cannot hold is not carried, nor checked.
        # On first contact a value the target cannot take is not among the exact ones: never written, adopted.
        problems = [] if sides.first else [p for p in problems if p.field in sides.edited | sides.forced]
    if problems:
        return Quarantine(record, FieldProblem(problems[0].field, "; ".join(str(p) for p in problems)), source_fp)
    return Prepared(
        record,
        shaped,
        target_fp,
        source_fp,
        state,
        not_stored,
        source_now,
        defaulted,
        sides,
        one_way,
    )


def _sides(
    source_now: Mapping[str, str],
    source_link: LinkView | None,
    link: LinkView | None,
    withheld: frozenset[str],
    unfit: frozenset[str],
    ctx: PlanContext,
) -> Sides | None:
    """The two-way view of a record whose target record is linked (``None`` otherwise, or one-way).

    ``withheld``: fields whose source value never flows (not stored on a side, defaulted);
    ``unfit``: fields whose shaped value the target cannot take (not among the exact ones at first contact).
    """
    if not ctx.rules.two_way or link is None or link.remote_id is None or link.status != "linked":
        return None
    here = memory.parse(source_link.memory if source_link is not None else None)
    there = memory.parse(link.memory)
    mine, theirs = here.get(ctx.target_name, {}), there.get(ctx.source_name, {})
    changed = frozenset(ctx.compared) if ctx.force else edited(source_now, mine, ctx.compared)
    flows = flowing(ctx.compared, ctx.source_lossy) - withheld
    owned = frozenset(name for name, owner in ctx.rules.owner.items() if owner == ctx.source_name)
    forced = frozenset(name for name in owned & flows if theirs.get(name) == DIRTY)
    first = None
    if not mine and not ctx.force:
        # What the two sides' memories of other connections say (the (in)active state is adopted as it is).
        first = FirstContact(
            exact=(flows - unfit - {"active"}).difference(ctx.source_lossy),
            unedited=frozenset(n for n in ctx.compared if any(m.get(n) == source_now[n] for m in here.values())),
            held_before={n: frozenset(m[n] for m in there.values() if n in m) for n in ctx.compared},
        )
    return Sides(changed & flows, changed - flows, forced, theirs, first)


def _decide(prepared: Prepared, ctx: PlanContext) -> Unchanged | Write:
    sides = prepared.sides
    if sides is not None:
        # Two-way: only edits flow, field by field (the target is read before anything is written).
        values = (sides.edited | sides.forced) - {"active"}
        actions: tuple[Action, ...] = ("update",) if values else ()
        if "active" in sides.edited | sides.forced:
            actions += ("reactivate",) if prepared.shaped.active else ("archive",)
        if not actions:
            return Unchanged(prepared)
        return Write(prepared, Decision(actions, "archived" if "archive" in actions else "updated"))
    decision = prepared.one_way
    if decision is None:
        decision = _one_way(prepared.link, prepared.fingerprint, prepared.shaped.active, ctx)
    return Write(prepared, decision) if decision.actions else Unchanged(prepared)


def _one_way(link: LinkState | None, target_fp: str, active: bool, ctx: PlanContext) -> Decision:
    """What a one-way pipeline's target needs of a record (:func:`worker.diff.decide`)."""
    return decide(
        link,
        fingerprint=target_fp,
        active=active,
        archive=ctx.archive,
        target_archives=ctx.target_archives,
        delete_on_archive=ctx.delete_on_archive,
        force=ctx.force,
    )


__all__ = [
    "PagePlan",
    "PlanContext",
    "Snapshot",
    "fresh_external_id",
    "identify",
    "plan_page",
    "positional",
    "quarantine_change",
    "source_fingerprint",
]
