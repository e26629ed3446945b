"""One sync run: pull → canonicalise → shape → fingerprint → diff → push → record.

No Celery here: the CLI, the Celery tasks and the backfill all call
:func:`run_pipeline`. The write path is built for the no-duplicate promise:

1. Before a create, the intent is committed as a *pending* link.
2. Before creating, the identity is recovered in the target: by external_id
   where the target holds it (Thredfi, Piriod), otherwise by the pipeline's
   natural keys (tax id, then e-mail) over an index of the target built once
   per run, and, for a create we may already have made (a pending intent),
   by an exact match of the whole record. Several matches are an ambiguity:
   quarantined, never guessed.
3. Only then is the record created, and the link saved as *linked*.

A crash anywhere leaves at worst a pending link, which the next run resolves
through step 2. Updates and (in)activations are idempotent, so re-doing them
is harmless.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

import httpx
import structlog

from connectors import build_connector
from connectors.base import Connector, CreateResult, FieldMappingError
from connectors.errors import (
    ConnectorError,
    FatalError,
    NotFoundError,
    NotSupportedError,
    RecordError,
    RetriableError,
)
from connectors.model import CANONICAL_FIELDS, Customer, FieldProblem, RemoteCustomer, fingerprint
from connectors.ratelimit import RateLimiter
from state.store import LinkWrite, QuarantineWrite, Store
from worker.config import AppConfig, ConfigError, PipelineConfig
from worker.deletes import Vanished
from worker.diff import Decision, LinkState, apply_defaults, decide
from worker.verify import WriteCheck, parse_fields

log = structlog.get_logger("custsync.sync")

LimiterFactory = Callable[[str, float], RateLimiter]
Progress = Callable[[int], None]


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


@dataclass
class _Item:
    """One source record on its way through a page."""

    remote: RemoteCustomer
    external_id: str
    identity_id: int | None = None
    shaped: Customer | None = None
    fingerprint: str = ""
    source_fingerprint: str | None = None
    link: LinkState | None = None
    seen: tuple[str | None, bool | None] = (None, None)
    decision: Decision | None = None
    problem: FieldProblem | None = None
    transient: str | None = None
    result: LinkWrite | None = None
    unanswered: bool = False  # a create failed without an answer and was not found in the target
    resent: bool = False  # looked up and pushed again in this run after an unanswered create
    adopted: bool = False  # an existing target record was found and made current
    not_stored: frozenset[str] = frozenset()  # fields a side of this identity did not store: never written
    held: Any = None  # its quarantine entry, when held back unchanged
    nk_claim: str | None = None  # the unlinked target record its natural key would match
    nk_key: str = ""  # the natural key that would match it


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


class _TargetIndex:
    """The whole target, listed once per run, to recover identities without a slot."""

    def __init__(
        self,
        records: list[RemoteCustomer],
        linked: set[str],
        fields: frozenset[str],
        shape: Callable[[Customer], Customer] = lambda c: c,
    ) -> None:
        self._by_key: dict[tuple[str, str], list[RemoteCustomer]] = {}
        self._by_fp: dict[str, list[RemoteCustomer]] = {}
        self._linked = set(linked)
        self._claimed = set(linked)
        for record in records:
            if record.customer is None or record.external_id or not usable_id(record.id):
                continue  # unreadable, or it holds an identity in the slot: someone's, never a match
            for key in ("tax_id", "email"):
                value = _norm(getattr(record.customer, key))
                if value:
                    self._by_key.setdefault((key, value), []).append(record)
            # As the target shapes it, like the fingerprint it is compared with.
            self._by_fp.setdefault(fingerprint(shape(record.customer), fields), []).append(record)

    def match(self, key: str, value: str | None) -> list[RemoteCustomer]:
        return [r for r in self._by_key.get((key, _norm(value) or ""), []) if r.id not in self._claimed]

    def match_unclaimed_at_start(self, key: str, value: str | None) -> list[RemoteCustomer]:
        """Like :meth:`match`, counting records claimed in this run as candidates (collisions)."""
        return [r for r in self._by_key.get((key, _norm(value) or ""), []) if r.id not in self._linked]

    def match_content(self, fp: str) -> list[RemoteCustomer]:
        return [r for r in self._by_fp.get(fp, []) if r.id not in self._claimed]

    def claim(self, remote_id: str) -> None:
        self._claimed.add(remote_id)


def _field_problem(field: str, message: str) -> FieldProblem:
    """A problem whose reason starts with the canonical field, as every quarantine reason does."""
    return FieldProblem(field, message if message.startswith(f"{field}: ") else f"{field}: {message}")


def usable_id(remote_id: str | None) -> bool:
    """A record id a write may address: an answer without one (``?``) never becomes a PUT to the collection."""
    return bool(remote_id) and not str(remote_id).startswith("?")


def source_fingerprint(customer: Customer) -> str:
    """What a quarantine entry remembers of the source record: every field and the active flag, in 64 characters."""
    flagged = fingerprint(customer, CANONICAL_FIELDS) + ("1" if customer.active else "0")
    return hashlib.sha256(flagged.encode("ascii")).hexdigest()


def _norm(value: str | None) -> str | None:
    return "".join(value.split()).lower() if value else None


class Sync:
    """One run of one pipeline. Use :func:`run_pipeline`."""

    def __init__(
        self,
        *,
        name: str,
        pipeline: PipelineConfig,
        source: Connector,
        target: Connector,
        store: Store,
        run_id: str,
        dry_run: bool,
        force: bool,
        retry_quarantined: bool,
        hooks: RunHooks | None,
        progress: Progress | None,
    ) -> None:
        self.name, self.pipeline, self.source, self.target, self.store = name, pipeline, source, target, store
        self.run_id, self.dry_run, self.force, self.retry_quarantined = run_id, dry_run, force, retry_quarantined
        self.counts = Counts()
        self.planned: list[PlannedChange] = []
        self.seen_source_ids: set[str] = set()
        self._crash = hooks or RunHooks()
        self._progress = progress
        self._index: _TargetIndex | None = None
        self._index_lock = asyncio.Lock()
        # The fields this pipeline speaks for: those both systems keep. Symmetric, so
        # the opposite pipeline fingerprints the same fields and sees no echo; the
        # target's other fields are left as they are (defaults fill them on create).
        self._kept = frozenset((source.spec.fields & target.spec.fields) | {"kind", "name"})
        self._deletes_error: str | None = None
        self._unidentified = 0  # source records listed without a usable id
        self._unanswered: list[_Item] = []  # creates without an answer, retried once every page is done
        self._answered = False  # the target took a write of this run
        self._check = WriteCheck(target)
        self._duplicates = 0  # records listed again in this run (same id): counted once
        self._nk_claims: dict[str, str] = {}  # target id -> external_id that claimed it by a natural key
        # Creates that would match an unlinked target record by a natural key wait for the whole
        # source: a second source record with the same key on a later page makes both ambiguous.
        self._nk_waiting: list[tuple[_Item, Any]] = []
        if pipeline.match_on is not None:
            self._match_on: tuple[str, ...] = tuple(pipeline.match_on)
        else:
            self._match_on = () if target.spec.identity_slot else target.spec.natural_keys

    # -- the run ------------------------------------------------------------

    async def run(self) -> None:
        """Walk every source page; then handle vanished records if enabled."""
        page_no = 0
        async for page in self.source.pages():
            page_no += 1
            await self.page(page)
            log.info("page_synced", page=page_no, records=len(page), pulled=self.counts.pulled)
            if self._progress is not None:
                self._progress(self.counts.pulled)
        await self._settle_natural_keys()
        await self._retry_unanswered()
        if self.pipeline.propagate_deletes:
            await self.vanished()
        if self._duplicates:
            log.warning("duplicate_records_ignored", count=self._duplicates)
        self._check.report()

    async def page(self, records: list[RemoteCustomer]) -> None:
        """Diff and push one page; the state is saved once per page."""
        records = self._once(records)
        self.counts.pulled += len(records)
        items = self._identify(records)
        quarantined = {q.source_id: q for q in self.store.quarantined(self.name, [i.remote.id for i in items])}
        todo: list[_Item] = []
        for item in items:
            self.seen_source_ids.add(item.remote.id)
            if not self._prepare(item, quarantined):
                continue
            todo.append(item)
        self._link(todo)
        await self._collisions([i for i in todo if i.problem is None])
        pushes = [i for i in todo if i.problem is None and i.decision is not None and i.decision.actions]
        for item in todo:
            if item.problem is None and item.decision is not None and not item.decision.actions:
                self.counts.unchanged += 1
        if self.dry_run:
            await self._plan_page(items, pushes)
            return
        waiting = [i for i in pushes if i.nk_claim is not None]
        if waiting:
            self._nk_waiting.extend((i, quarantined.get(i.remote.id)) for i in waiting)
            pushes = [i for i in pushes if i.nk_claim is None]
            items = [i for i in items if i.nk_claim is None or i.problem is not None]
        await self._push_and_record(items, pushes, quarantined)

    async def _push_and_record(self, items: list[_Item], pushes: list[_Item], quarantined: Mapping[str, Any]) -> None:
        """Commit the intents, push, and record every item (one transaction)."""
        self._record_intents(pushes)
        crashed = [r for r in await asyncio.gather(*(self._push(i) for i in pushes), return_exceptions=True) if r]
        self._unanswered.extend(i for i in pushes if i.unanswered and i.transient is not None)
        if crashed:
            # Record what did go through before giving up: an unexpected error in one push
            # must not throw away the links of the others (they would all be recovered again).
            self._record(items, quarantined)
            raise crashed[0]
        # Every record of the page, including those refused before any push:
        # each is counted, quarantined or released here, never dropped.
        self._record(items, quarantined)

    async def _settle_natural_keys(self) -> None:
        """Push the creates that wait on a natural-key match, now that every source record was seen.

        Two or more waiting records that would match one target record (from different
        pages) are all quarantined as ambiguous: taking one would rename the target
        record after a guess. The others are matched (or created) as on their page.
        """
        if not self._nk_waiting:
            return
        waiting, self._nk_waiting = self._nk_waiting, []
        by_target: dict[str, list[_Item]] = {}
        for item, _ in waiting:
            assert item.nk_claim is not None
            by_target.setdefault(item.nk_claim, []).append(item)
        for target_id, claimants in by_target.items():
            if len(claimants) < 2:
                continue
            key = claimants[0].nk_key
            for item in claimants:
                item.problem = FieldProblem(
                    key,
                    f"ambiguous: {len(claimants)} {self.source.system} records match one {self.target.system} record "
                    f"by this {key}; link one by hand or fix the data",
                )
                item.decision = None
            log.warning("natural_key_collision", target_id=target_id, key=key, records=len(claimants))
        items = [item for item, _ in waiting]
        quarantined = {item.remote.id: entry for item, entry in waiting if entry is not None}
        pushes = [i for i in items if i.problem is None and i.decision is not None and i.decision.actions]
        await self._push_and_record(items, pushes, quarantined)

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

    async def _collisions(self, items: list[_Item]) -> None:
        """Two source records matching one unlinked target record by a natural key: both are quarantined.

        Taking either would silently rename the target record after the other; the
        match is left to a person. A target record claimed by a natural key on an
        earlier page of this run is a collision for the later record too.
        """
        creating = [i for i in items if i.decision is not None and "create" in i.decision.actions]
        if not creating or not self._match_on:
            return
        index = await self._target_index()
        claims: dict[str, list[tuple[_Item, str]]] = {}
        for item in creating:
            assert item.shaped is not None
            for key in self._match_on:
                matches = index.match_unclaimed_at_start(key, getattr(item.shaped, key))
                if len(matches) == 1:
                    claims.setdefault(matches[0].id, []).append((item, key))
                if matches:
                    break  # several matches: _recover quarantines it as ambiguous
        for target_id, claimants in claims.items():
            earlier = self._nk_claims.get(target_id)
            if len(claimants) < 2 and (earlier is None or earlier == claimants[0][0].external_id):
                if not self.dry_run:  # waits for the whole source (_settle_natural_keys)
                    claimants[0][0].nk_claim, claimants[0][0].nk_key = target_id, claimants[0][1]
                continue
            count = len(claimants) + (1 if earlier is not None else 0)
            for item, key in claimants:
                item.problem = FieldProblem(
                    key,
                    f"ambiguous: {count} {self.source.system} records match one {self.target.system} record "
                    f"by this {key}; link one by hand or fix the data",
                )
                item.decision = None
            log.warning("natural_key_collision", target_id=target_id, key=claimants[0][1], records=count)

    async def _plan_page(self, items: list[_Item], pushes: list[_Item]) -> None:
        """Dry run: plan each push, and each record a real run would quarantine, with its reason."""
        for item in pushes:
            assert item.decision is not None
            found = await self._recover(item) if "create" in item.decision.actions else None
            if found is not None and found.id:
                self.planned.append(PlannedChange("match", item.external_id, item.remote.id, found.id))
                self.counts.matched += 1
                continue
            if item.problem is None:
                self._plan(item)
        for item in items:
            if item.problem is not None:
                problem = item.problem
                target_id = item.link.remote_id if item.link else None
                self.planned.append(
                    PlannedChange(
                        "quarantine", item.external_id, item.remote.id, target_id, (problem.field,), problem.reason
                    )
                )
                self.counts.failed += 1
            elif item.held is not None:
                self.planned.append(
                    PlannedChange(
                        "quarantine", item.external_id, item.remote.id, None, (item.held.field,), item.held.reason
                    )
                )

    #: how many more times, in the same run, a create that got no answer is looked up and retried
    UNANSWERED_PASSES = 2

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
            lost = [i for i in self._unanswered if i.unanswered and i.transient is not None]
            if not lost or not self._answered:
                return
            if not self.target.spec.identity_slot or self._match_on:
                self._index = None  # a fresh listing: an applied create is in it now, every link saved
            for item in lost:
                assert item.shaped is not None
                item.transient, item.unanswered, item.resent, item.result = None, False, True, None
                item.link = LinkState(None, "pending", None, None)
                item.decision = decide(
                    None,
                    fingerprint=item.fingerprint,
                    active=item.shaped.active,
                    archive=self.pipeline.archive,
                    target_archives=self.target.spec.archive,
                )
            log.info("unanswered_creates_retried", count=len(lost))
            await asyncio.gather(*(self._push(item) for item in lost))
            self._record_retried(lost)

    def _record_retried(self, items: list[_Item]) -> None:
        """Record a retry pass; each record was counted failed with its page already."""
        self.store.save_links(self.target.name, [i.result for i in items if i.result is not None])
        self._quarantine(items)
        landed = [i for i in items if i.problem is None and i.transient is None]
        self.counts.failed -= len(landed)
        self.store.release(self.name, [i.remote.id for i in landed])
        self._crash.committed()

    # -- preparing a page ---------------------------------------------------

    def _identify(self, records: list[RemoteCustomer]) -> list[_Item]:
        """Give every record its external_id (and identity id when known)."""
        ids = [r.id for r in records if r.id != "?"]
        source_links = self.store.links_by_remote(self.source.name, ids)
        known = self.store.identities_by_id([link.identity_id for link in source_links.values()])
        aliases = self._aliases([r for r in records if r.id != "?" and r.id not in source_links and not r.external_id])
        items: list[_Item] = []
        for n, remote in enumerate(records):
            if remote.id == "?":  # unidentifiable: quarantine under a positional id
                remote = RemoteCustomer(f"?{self.counts.pulled}-{n}", None, remote.problem)
                self._unidentified += 1
            link = source_links.get(remote.id)
            if link is not None:
                item = _Item(remote, known[link.identity_id], identity_id=link.identity_id)
                item.seen = (link.fingerprint, link.active)
                item.not_stored = parse_fields(link.not_stored)
                items.append(item)
            else:
                external_id = remote.external_id or aliases.get(remote.id) or self.source.external_id_for(remote.id)
                items.append(_Item(remote, external_id))
        return items

    def _aliases(self, records: list[RemoteCustomer]) -> dict[str, str]:
        """source id -> an older external_id form of it that the store holds an identity under.

        After an external-id scheme change (Bigcapital's host-based form), a record
        whose source link is gone keeps the identity its links were made under.
        """
        forms = {r.id: self.source.external_id_aliases(r.id) for r in records}
        wanted = [alias for found in forms.values() for alias in found]
        if not wanted:
            return {}
        known = self.store.identities_by_external_id(wanted)
        held = {rid: [a for a in found if a in known] for rid, found in forms.items()}
        return {rid: found[0] for rid, found in held.items() if found}

    def _prepare(self, item: _Item, quarantined: Mapping[str, Any]) -> bool:
        """Shape and validate a record; False when it goes no further."""
        remote = item.remote
        if remote.customer is None:
            item.problem = remote.problem or FieldProblem("record", "could not be read")
            return False
        customer = apply_defaults(remote.customer, self.pipeline.defaults)
        item.source_fingerprint = source_fingerprint(customer)
        entry = quarantined.get(remote.id)
        if entry is not None and not self.retry_quarantined and entry.source_fingerprint == item.source_fingerprint:
            # Unchanged since it failed: it would fail again. `custsync retry` pushes it anyway.
            self.counts.failed += 1
            item.held = entry
            return False
        shaped = self.target.shape(customer, truncate=self.pipeline.truncate)
        problems = self.target.problems(shaped)
        if problems:
            item.problem = FieldProblem(problems[0].field, "; ".join(str(p) for p in problems))
            return False
        item.shaped = shaped
        item.fingerprint = fingerprint(shaped, self._kept - item.not_stored)
        return True

    def _link(self, items: list[_Item]) -> None:
        """Find identities and target links in bulk; decide each record."""
        fresh = [i for i in items if i.identity_id is None]
        if not self.dry_run:
            ids = self.store.ensure_identities([i.external_id for i in fresh]) if fresh else {}
            present = self.store.links_by_identity(self.source.name, list(ids.values()))
            # A pending link (the opposite pipeline's create, cut off before its commit) holds no
            # record yet: the record found here, carrying the identity in its slot, completes it.
            claimed: dict[int, str] = {i: link.remote_id for i, link in present.items() if link.remote_id}
            linking: list[LinkWrite] = []
            for item in fresh:
                identity_id = ids[item.external_id]
                owner = claimed.setdefault(identity_id, item.remote.id)
                if owner != item.remote.id:
                    # Two source records claim one identity: never let them overwrite each other.
                    item.problem = FieldProblem(
                        "external_id",
                        f"{self.source.system} record {owner} already holds this identity; "
                        "remove the duplicate or clear its external id",
                    )
                    continue
                item.identity_id = identity_id
                if identity_id not in present or present[identity_id].remote_id is None:
                    linking.append(LinkWrite(identity_id, item.remote.id, None, None))
            self.store.save_links(self.source.name, linking)
            items = [i for i in items if i.problem is None]
        else:
            found = self.store.identities_by_external_id([i.external_id for i in fresh])
            for item in fresh:
                item.identity_id = found.get(item.external_id)
        links = self.store.links_by_identity(self.target.name, [i.identity_id for i in items if i.identity_id])
        for item in items:
            link = links.get(item.identity_id) if item.identity_id is not None else None
            item.link = LinkState(link.remote_id, link.status, link.fingerprint, link.active) if link else None
            assert item.shaped is not None
            if link is not None and link.not_stored:
                item.not_stored |= parse_fields(link.not_stored)
                item.fingerprint = fingerprint(item.shaped, self._kept - item.not_stored)
            item.decision = decide(
                item.link,
                fingerprint=item.fingerprint,
                active=item.shaped.active,
                archive=self.pipeline.archive,
                target_archives=self.target.spec.archive,
                delete_on_archive=self.pipeline.delete_on_archive,
                force=self.force,
            )

    def _plan(self, item: _Item) -> None:
        assert item.decision is not None
        self.planned.append(
            PlannedChange(
                "+".join(item.decision.actions),
                item.external_id,
                item.remote.id,
                item.link.remote_id if item.link else None,
            )
        )
        self._count(item.decision.outcome)

    def _record_intents(self, items: list[_Item]) -> None:
        intents = [
            LinkWrite(i.identity_id, None, None, None, status="pending")
            for i in items
            if i.identity_id is not None
            and i.decision is not None
            and "create" in i.decision.actions
            and (i.link is None or i.link.status != "pending")
        ]
        self.store.save_links(self.target.name, intents)
        if intents:
            self._crash.committed()

    # -- pushing --------------------------------------------------------------

    async def _push(self, item: _Item) -> None:
        assert item.decision is not None
        assert item.shaped is not None
        assert item.identity_id is not None
        shaped, link = item.shaped, item.link
        remote_id = link.remote_id if link else None
        outcome: str = item.decision.outcome
        try:
            for action in item.decision.actions:
                if action == "create":
                    remote_id, outcome = await self._create(item)
                    if remote_id is None:
                        return  # quarantined as ambiguous
                    if item.resent:
                        outcome = "created"  # found after our own unanswered create of this run
                    if item.adopted:
                        break  # an existing record was made current, its state included: nothing left to do
                elif action == "update":
                    assert remote_id is not None
                    try:
                        answered = await self.target.update(
                            remote_id, shaped, item.external_id, fields=self._written(item)
                        )
                    except NotFoundError:
                        # Deleted in the target by someone: recreate rather than lose it, through the
                        # same recovery as a pending create (a crash may have recreated it already).
                        log.warning("target_record_missing", external_id=item.external_id, target_id=remote_id)
                        remote_id, outcome = await self._create(item, pending=True)
                        if remote_id is None:
                            return  # quarantined as ambiguous
                        if item.adopted:
                            break  # found again and made current, its state included
                        continue  # recreated (active): the state change, if any, follows
                    self._wrote(item, "update")
                    held = await self._verify(item, remote_id, answered)
                    if self.force and not {"archive", "reactivate"} & set(item.decision.actions):
                        await self._restore_state(item, remote_id, held)
                elif action in ("archive", "reactivate"):
                    assert remote_id is not None
                    await self.target.set_active(remote_id, action == "reactivate")
                    self._wrote(item, action)
                elif action == "delete":
                    assert remote_id is not None
                    await self.target.delete(remote_id)
                    self._wrote(item, "delete")
                    item.result = LinkWrite(item.identity_id, None, item.fingerprint, False, status="deleted")
                    self._count(outcome)
                    return
                elif action == "forget_archive":
                    log.info(
                        "archive_not_supported",
                        external_id=item.external_id,
                        target=self.target.system,
                        active=shaped.active,
                    )
        except NotSupportedError as exc:
            item.problem = _field_problem("active", str(exc))
            self._keep_partial(item, remote_id)
            return
        except RecordError as exc:
            item.problem = _field_problem(exc.field, str(exc)) if exc.field else FieldProblem("record", str(exc))
            self._keep_partial(item, remote_id)
            return
        except FieldMappingError as exc:  # the target cannot express a value (an unknown state)
            item.problem = _field_problem(exc.field, exc.reason)
            self._keep_partial(item, remote_id)
            return
        except RetriableError as exc:
            # Still failing after the retry budget: not this record's fault; the next run retries it.
            item.transient = str(exc)
            log.warning("record_deferred", external_id=item.external_id, error=str(exc))
            self._keep_partial(item, remote_id)
            return
        except FatalError:
            raise
        except ConnectorError as exc:
            # Any other refusal of this record stays with it: the run goes on.
            item.problem = FieldProblem("record", str(exc))
            self._keep_partial(item, remote_id)
            return
        active = shaped.active if self.pipeline.archive else (link.active if link and link.active is not None else True)
        if item.decision.actions[0] == "create":
            active = shaped.active if (self.pipeline.archive and self.target.spec.archive) else True
        item.result = LinkWrite(item.identity_id, remote_id, item.fingerprint, active, not_stored=item.not_stored)
        self._answered = True
        self._count(outcome)

    def _written(self, item: _Item) -> frozenset[str]:
        """The fields a write of this record sends: the kept ones, less those the target did not store."""
        return self._kept - item.not_stored

    async def _verify(self, item: _Item, remote_id: str, answered: RemoteCustomer | None) -> Customer | None:
        """Check a write landed (:mod:`worker.verify`); fields that did not are remembered, not rewritten."""
        assert item.shaped is not None
        missing, held = await self._check.check(remote_id, item.shaped, answered, self._written(item))
        if missing - item.not_stored:
            item.not_stored |= missing
            item.fingerprint = fingerprint(item.shaped, self._kept - item.not_stored)
        return held

    async def _restore_state(self, item: _Item, remote_id: str, held: Customer | None) -> None:
        """``--full``: put the source's (in)active state back where someone changed it in the target."""
        assert item.shaped is not None
        if not (self.pipeline.archive and self.target.spec.archive) or held is None:
            return
        if held.active != item.shaped.active:
            await self.target.set_active(remote_id, item.shaped.active)
            self._wrote(item, "reactivate" if item.shaped.active else "archive")

    def _keep_partial(self, item: _Item, remote_id: str | None) -> None:
        """A push failed after it created (or found) the target record: keep the link to it.

        The fingerprint is left empty so the next run rewrites the record and its state,
        instead of having to find it again.
        """
        if remote_id and (item.link is None or item.link.remote_id != remote_id) and item.identity_id is not None:
            item.result = LinkWrite(item.identity_id, remote_id, None, None)

    async def _create(self, item: _Item, *, pending: bool = False) -> tuple[str | None, str]:
        """Recover the identity, else create; returns (remote id, outcome)."""
        assert item.shaped is not None
        shaped = item.shaped
        found = await self._recover(item, pending=pending)
        if found is None:
            return None, "created"
        if found.id:
            # The record exists already: make it current rather than create a copy.
            await self._adopt(item, found)
            return found.id, "matched"
        try:
            result = await self._create_with_id(shaped, item.external_id)
        except RetriableError:
            # The create may have been applied with its answer lost. Where the target
            # finds records by external_id, look now; otherwise the pending intent
            # stays and the next run recovers it from a fresh index of the target.
            if self.target.spec.identity_slot:
                again = await self._recover(item, pending=True)
                if again is not None and again.id:
                    self._wrote(item, "create")
                    return again.id, "created"
            item.unanswered = True
            raise
        self._wrote(item, "create")
        if self._index is not None:
            self._index.claim(result.remote.id)
        if result.existed:
            # An idempotent create answered with the record it holds: a replay of our own create
            # whose answer was lost, or a record we lost track of (state store lost). Either way it
            # was found, not created; its fields and state are made current.
            await self._adopt(item, result.remote)
            return result.remote.id, "matched"
        await self._verify(item, result.remote.id, result.remote)
        return result.remote.id, "created"

    async def _create_with_id(self, shaped: Customer, external_id: str) -> CreateResult:
        """Create; an answer that is not JSON, or carries no id, is treated like a lost answer."""
        try:
            result = await self.target.create(shaped, external_id)
        except json.JSONDecodeError as exc:
            raise RetriableError(f"{self.target.system} answered the create with a body that is not JSON") from exc
        if not usable_id(result.remote.id):
            # Applied or not, there is no id to address it by: looked up like a lost answer.
            raise RetriableError(f"{self.target.system} answered the create without a record id")
        return result

    async def _adopt(self, item: _Item, remote: RemoteCustomer) -> None:
        """Make an existing target record current (it counts as matched)."""
        assert item.shaped is not None
        item.adopted = True
        shaped = item.shaped
        current = fingerprint(self.target.shape(remote.customer), self._written(item)) if remote.customer else None
        if current != item.fingerprint:
            answered = await self.target.update(remote.id, shaped, item.external_id, fields=self._written(item))
            self._wrote(item, "update")
            await self._verify(item, remote.id, answered)
        if (
            self.pipeline.archive
            and self.target.spec.archive
            and remote.customer is not None
            and remote.customer.active != shaped.active
        ):
            await self.target.set_active(remote.id, shaped.active)
            self._wrote(item, "archive" if not shaped.active else "reactivate")

    async def _recover(self, item: _Item, *, pending: bool = False) -> RemoteCustomer | None:
        """Find the target record this identity may already have.

        Returns:
            The record found; an empty-id placeholder when there is none
            (create it); ``None`` when the match is ambiguous (quarantined).
        """
        none = RemoteCustomer("", None)
        pending = pending or (item.link is not None and item.link.status == "pending")
        if self.target.spec.identity_slot:
            if self.target.create_is_idempotent and not pending:
                # The create itself answers with a record holding this external_id; only an older
                # form of it (an alias) needs a lookup first.
                matches = await self._find_by_external_id(item, aliases_only=True)
                if len(matches) == 1:
                    return matches[0]
                if len(matches) > 1:
                    self._ambiguous(item, "external_id", len(matches))
                    return None
                return none
            matches = await self._find_by_external_id(item)
            if len(matches) > 1:
                self._ambiguous(item, "external_id", len(matches))
                return None
            if matches:
                log.info("identity_recovered", external_id=item.external_id, target_id=matches[0].id, by="external_id")
                return matches[0]
            if not self._match_on:
                # The slot says whether our record exists: a lookalike holding another identity
                # (or none) is not ours, and content is no evidence against the slot.
                return none
        if not self._match_on and not pending:
            return none
        index = await self._target_index()
        assert item.shaped is not None
        for key in self._match_on:
            matches = index.match(key, getattr(item.shaped, key))
            if len(matches) > 1:
                self._ambiguous(item, key, len(matches))
                return None
            if matches:
                index.claim(matches[0].id)
                self._nk_claims[matches[0].id] = item.external_id
                log.info("natural_key_matched", external_id=item.external_id, target_id=matches[0].id, key=key)
                return matches[0]
        if pending and not self.target.spec.identity_slot:
            matches = index.match_content(item.fingerprint)
            if len(matches) == 1:
                index.claim(matches[0].id)
                log.info("identity_recovered", external_id=item.external_id, target_id=matches[0].id, by="content")
                return matches[0]
        return none

    async def _find_by_external_id(self, item: _Item, *, aliases_only: bool = False) -> list[RemoteCustomer]:
        """Target records holding this identity in their slot, under its current or an older form."""
        matches: list[RemoteCustomer] = []
        if not aliases_only:
            matches = [m for m in await self.target.find_by_external_id(item.external_id) or [] if usable_id(m.id)]
        if matches or item.remote.external_id:
            return matches
        for alias in self.source.external_id_aliases(item.remote.id):
            if alias == item.external_id:
                continue
            matches = [m for m in await self.target.find_by_external_id(alias) or [] if usable_id(m.id)]
            if matches:
                return matches
        return []

    def _ambiguous(self, item: _Item, key: str, count: int) -> None:
        item.problem = FieldProblem(
            key, f"ambiguous: {count} {self.target.system} records match this {key}; link one by hand or fix the data"
        )

    async def _target_index(self) -> _TargetIndex:
        async with self._index_lock:
            if self._index is None:
                records = [r async for page in self.target.pages() for r in page]
                linked = {link.remote_id for link in self.store.links_of(self.target.name) if link.remote_id}
                self._index = _TargetIndex(records, linked, self._kept, self.target.shape)
                log.info("target_indexed", records=len(records))
            return self._index

    def _wrote(self, item: _Item, action: str) -> None:
        log.info("record_written", external_id=item.external_id, action=action)
        self._crash.wrote()

    # -- recording --------------------------------------------------------------

    def _record(self, items: list[_Item], quarantined: Mapping[str, Any]) -> None:
        results = [i.result for i in items if i.result is not None]
        # What the source holds now, so the opposite pipeline sees no difference to echo.
        self.store.save_links(
            self.source.name,
            [
                LinkWrite(i.identity_id, i.remote.id, i.fingerprint, i.shaped.active)
                for i in items
                if i.identity_id is not None and i.shaped is not None and i.seen != (i.fingerprint, i.shaped.active)
            ],
        )
        failures = [i for i in items if i.problem is not None]
        self.counts.failed += len(failures) + sum(1 for i in items if i.transient is not None)
        # A create refused for good keeps its pending intent: the next run looks it up once more, harmlessly.
        self.store.save_links(self.target.name, results)
        self._quarantine(failures)
        # A record held back unchanged (shaped is None, no problem) stays in quarantine.
        released = [
            i.remote.id
            for i in items
            if i.problem is None and i.transient is None and i.shaped is not None and i.remote.id in quarantined
        ]
        self.store.release(self.name, released)
        self._crash.committed()

    def _quarantine(self, items: list[_Item]) -> None:
        """Quarantine (and log) the items that carry a problem, in one transaction."""
        refused = [(i, i.problem) for i in items if i.problem is not None]
        for item, problem in refused:
            log.warning(
                "record_quarantined", external_id=item.external_id, source_id=item.remote.id, field=problem.field
            )
        fingerprints = {id(i): i.source_fingerprint for i, _ in refused}
        self.store.quarantine(
            self.name,
            self.run_id,
            [QuarantineWrite(i.remote.id, i.external_id, p.field, p.reason, fingerprints[id(i)]) for i, p in refused],
        )

    def _count(self, outcome: str) -> None:
        setattr(self.counts, outcome, getattr(self.counts, outcome) + 1)

    # -- vanished source records -------------------------------------------------

    async def vanished(self) -> None:
        """Archive targets of source records that provably vanished (:mod:`worker.deletes`)."""
        outcome = await Vanished(
            pipeline=self.pipeline,
            source=self.source,
            target=self.target,
            store=self.store,
            seen=self.seen_source_ids,
            unidentified=self._unidentified,
            dry_run=self.dry_run,
        ).run()
        self._deletes_error = outcome.error
        self.counts.archived += outcome.archived
        self.planned.extend(PlannedChange("archive", "", "", target_id) for target_id in outcome.planned)


async def run_pipeline(
    config: AppConfig,
    name: str,
    *,
    store: Store,
    dry_run: bool = False,
    full: bool = False,
    retry_quarantined: bool = False,
    kind: str = "run",
    transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
    limiter_factory: LimiterFactory | None = None,
    progress: Progress | None = None,
    hooks: RunHooks | None = None,
    since: date | None = None,
) -> RunResult:
    """Run one pipeline once, in this process.

    Args:
        config: the loaded config.
        name: the pipeline's name.
        store: the state store.
        dry_run: plan only; write nothing to the target or the store.
        full: rewrite every linked record even when its fingerprint is unchanged.
        retry_quarantined: push quarantined records even if unchanged (``custsync retry``).
        kind: ``run``, ``backfill`` or ``retry``, as recorded.
        transports: connection name → httpx transport (tests, the demo).
        limiter_factory: builds the requests-per-second limiter of a connection.
        progress: called with the running ``pulled`` count after each page.
        hooks: test callbacks after each remote write and state commit (:class:`RunHooks`).
        since: only source records created on or after this date (backfill);
            the scan is then partial, so vanished records are not looked for.

    Raises:
        ConfigError: ``since`` given for a source that cannot filter by date.

    Returns:
        The result; ``exit_code`` maps it to product.md's exit codes.
    """
    pipeline = config.pipeline(name)
    transports = transports or {}
    source = build_connector(
        config, pipeline.source, transport=transports.get(pipeline.source), limiter_factory=limiter_factory
    )
    target = build_connector(
        config, pipeline.target, transport=transports.get(pipeline.target), limiter_factory=limiter_factory
    )
    if since is not None:
        if not source.can_filter_since:
            raise ConfigError(f"{source.system} cannot list customers created since a date; run without --since")
        source.since = since
        pipeline = pipeline.model_copy(update={"propagate_deletes": False})
    run_id = "dry-run" if dry_run else store.start_run(name, kind=kind, dry_run=False)
    started = time.monotonic()
    structlog.contextvars.bind_contextvars(
        run_id=run_id, pipeline=name, source=pipeline.source, target=pipeline.target, entity="customer"
    )
    log.info("run_started", kind=kind, dry_run=dry_run, full=full)
    sync = Sync(
        name=name,
        pipeline=pipeline,
        source=source,
        target=target,
        store=store,
        run_id=run_id,
        dry_run=dry_run,
        force=full,
        retry_quarantined=retry_quarantined,
        hooks=hooks,
        progress=progress,
    )
    error: str | None = None
    crash: BaseException | None = None
    retriable = False
    try:
        async with source, target:
            await sync.run()
    except RetriableError as exc:
        error, retriable = str(exc), True
    except (FatalError, ConnectorError) as exc:
        error = str(exc)
    except (KeyboardInterrupt, asyncio.CancelledError) as exc:
        # Ctrl-C, a lost lock, a task cancelled: recorded as failed, never left "running".
        crash = exc
        error = f"interrupted ({type(exc).__name__})"
        log.warning("run_interrupted")
    except Exception as exc:
        # A bug, or the store failing: the run is recorded as failed and summarised once like any
        # other, and returned as failed with a one-line error (``--json`` prints its object);
        # the traceback goes to the log only.
        error = f"internal error ({type(exc).__name__}); see the run_crashed event in the log"
        log.exception("run_crashed")
    counts = sync.counts
    if error is not None:
        status = "failed"
    elif counts.failed or sync._deletes_error:
        status = "partial"
        error = sync._deletes_error
    else:
        status = "succeeded"
    duration = time.monotonic() - started
    if not dry_run:
        store.finish_run(run_id, status=status, counts=asdict(counts), error=error)
    (log.error if status == "failed" else log.info)(
        "run_finished",
        status=status,
        duration_s=round(duration, 3),
        error=error,
        **asdict(counts),
    )
    structlog.contextvars.unbind_contextvars("run_id", "pipeline", "source", "target", "entity")
    if crash is not None:
        raise crash
    return RunResult(name, run_id, status, counts, duration, error, dry_run, sync.planned, retriable)


__all__ = ["Counts", "PlannedChange", "RunHooks", "RunResult", "run_pipeline"]
