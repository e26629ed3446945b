"""Recovery and adoption: finding the target record an identity may already have.

Before a create, the identity is recovered in the target: by external_id
where the target holds it (Thredfi, Piriod), otherwise by the pipeline's
natural keys (tax id, then e-mail) over an index of the target built once
per run, and, for a create we may already have made (a pending intent), by
an exact match of the whole record. Several matches are an ambiguity:
quarantined, never guessed.

An older form of the external_id (an alias, Bigcapital's host-based one) is
asked of the target only where a record may hold it unbeknown to the store:
for a pending create (a recovery), or in a run whose store holds no link of the
target at all (a lost store) while the target is not empty. A first sync into
an empty target, and every run on a store that knows the target, make no alias
lookup: the snapshot already found the identities the store holds under an
alias, and a record new since the scheme changed never had the old form.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import structlog

from connectors.base import Connector
from connectors.errors import NotFoundError
from connectors.model import Customer, FieldProblem, RemoteCustomer, fingerprint
from state.store import Store
from worker.engine.outcomes import Record, Write

log = structlog.get_logger("custsync.sync")

#: what :meth:`Identity.recover` answers when there is nothing to find: create it.
NOT_FOUND = RemoteCustomer("", None)


def usable_id(remote_id: str | None) -> bool:
    """A record id a write may address: an answer without one (``?``) never becomes a PUT to the collection."""
    return bool(remote_id) and not str(remote_id).startswith("?")


def _norm(value: str | None) -> str | None:
    return "".join(value.split()).lower() if value else None


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
        self._slotted: dict[tuple[str, str], list[RemoteCustomer]] = {}
        for record in records:
            if record.customer is not None and record.external_id and usable_id(record.id):
                for key in ("tax_id", "email"):
                    if value := _norm(getattr(record.customer, key)):
                        self._slotted.setdefault((key, value), []).append(record)
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

    def match_linked(self, key: str, value: str | None) -> list[RemoteCustomer]:
        """Records with this key that belong to another identity: linked before the run, or holding one in the slot."""
        wanted = (key, _norm(value) or "")
        return [r for r in self._by_key.get(wanted, []) if r.id in self._linked] + self._slotted.get(wanted, [])

    def match_content(self, fp: str) -> list[RemoteCustomer]:
        return [r for r in self._by_fp.get(fp, []) if r.id not in self._claimed]

    def claim(self, remote_id: str) -> None:
        self._claimed.add(remote_id)


@dataclass(frozen=True)
class Claim:
    """A create that would match an unlinked target record by a natural key: it waits for the whole source."""

    write: Write
    target_id: str
    key: str


def ambiguous(key: str, count: int, system: str) -> FieldProblem:
    """Several target records match one source record."""
    return FieldProblem(key, f"ambiguous: {count} {system} records match this {key}; link one by hand or fix the data")


def collision(key: str, count: int, source: str, target: str) -> FieldProblem:
    """Several source records match one target record."""
    return FieldProblem(
        key,
        f"ambiguous: {count} {source} records match one {target} record by this {key}; "
        "link one by hand or fix the data",
    )


class Identity:
    """Finds target records for identities; one per run (it holds the target index and the claims)."""

    def __init__(
        self,
        *,
        source: Connector,
        target: Connector,
        store: Store,
        kept: frozenset[str],
        match_on: tuple[str, ...],
        copies_by: tuple[str, ...] = (),
        split_guard: bool = False,
    ) -> None:
        self.source, self.target, self.store, self.kept, self.match_on = source, target, store, kept, match_on
        #: natural keys that find, for an identity new to the store, the record a copy came from.
        self.copies_by = copies_by
        #: a pair or ring: a create whose natural key a record linked to another identity holds is refused.
        self.split_guard = split_guard
        self._holds_any: bool | None = None
        self._holds_lock = asyncio.Lock()
        self._index: _TargetIndex | None = None
        self._index_lock = asyncio.Lock()
        self._nk_claims: dict[str, str] = {}  # target id -> external_id that claimed it by a natural key
        # May the target hold aliases the store does not know of? Not when the store knew the target at
        # the run's start (read now: this run's own creates are linked page by page).
        self._unknown_aliases: bool | None = False if store.any_linked(target.name) else None
        self._aliases_lock = asyncio.Lock()

    def forget_index(self) -> None:
        """List the target again at the next need (an applied create is in it now)."""
        self._index = None

    def claim(self, remote_id: str) -> None:
        """A record this run created: no other identity may match it."""
        if self._index is not None:
            self._index.claim(remote_id)

    async def index(self) -> _TargetIndex:
        async with self._index_lock:
            if self._index is None:
                records = [r async for page in self.target.pages() for r in page]
                linked = {link.remote_id for link in self.store.links_of(self.target.name) if link.remote_id}
                self._index = _TargetIndex(records, linked, self.kept, self.target.shape)
                log.info("target_indexed", records=len(records))
            return self._index

    async def aliases_unknown(self) -> bool:
        """Whether the target may hold records under an older external_id form the store does not know of.

        Decided once per run: only when the store held no linked record of the
        target at its start (a lost store, or a first sync) and the target lists
        at least one record (one page read; none at all on a first sync into an
        empty target).
        """
        async with self._aliases_lock:
            if self._unknown_aliases is None:
                self._unknown_aliases = await self.target_holds_any()
                log.debug("alias_lookups", needed=self._unknown_aliases)
            return self._unknown_aliases

    async def target_holds_any(self) -> bool:
        """Whether the target lists any record (one page read, once per run)."""
        async with self._holds_lock:  # the page's creates ask at once: one read for all
            if self._holds_any is None:
                self._holds_any = await self._read_holds_any()
            return self._holds_any

    async def _read_holds_any(self) -> bool:
        for listing in self.target.listings():
            pages = self.target.walk(listing, op="list")
            try:
                async for records in pages:
                    if records:
                        return True
            finally:
                await pages.aclose()  # type: ignore[attr-defined]
        return False

    async def recover(self, write: Write, *, pending: bool = False) -> RemoteCustomer | FieldProblem:
        """Find the target record this identity may already have.

        Returns:
            The record found; :data:`NOT_FOUND` when there is none (create it);
            a problem when the match is ambiguous (quarantined).
        """
        prepared, record = write.prepared, write.record
        pending = pending or (prepared.link is not None and prepared.link.status == "pending")
        home = await self._home(record.external_id)
        if home is not None:
            log.info("identity_recovered", external_id=record.external_id, target_id=home.id, by="origin")
            return home
        if self.target.spec.identity_slot:
            if self.target.create_is_idempotent and not pending:
                # The create itself answers with a record holding this external_id; only an older
                # form of it (an alias) may need a lookup first.
                if self.source.external_id_aliases(record.remote.id) and await self.aliases_unknown():
                    matches = await self._find_by_external_id(write, aliases_only=True)
                    if len(matches) == 1:
                        return matches[0]
                    if len(matches) > 1:
                        return ambiguous("external_id", len(matches), self.target.system)
                if not self._keys(record):
                    return NOT_FOUND
                matches = []
            else:
                matches = await self._find_by_external_id(write, aliases=pending or await self.aliases_unknown())
            if len(matches) > 1:
                return ambiguous("external_id", len(matches), self.target.system)
            if matches:
                log.info(
                    "identity_recovered", external_id=record.external_id, target_id=matches[0].id, by="external_id"
                )
                return matches[0]
            if not self._keys(record):
                # The slot says whether our record exists: a lookalike holding another identity
                # (or none) is not ours, and content is no evidence against the slot.
                return NOT_FOUND
            if not self.match_on and not await self.target_holds_any():
                return NOT_FOUND  # nothing a copy could have come from
        keys = self._keys(record)
        if not keys and not pending:
            return NOT_FOUND
        index = await self.index()
        for key in keys:
            if key in prepared.defaulted:
                continue  # a value from `defaults` is not the customer's: never matched on
            matches = index.match(key, getattr(prepared.shaped, key))
            if len(matches) > 1:
                return ambiguous(key, len(matches), self.target.system)
            if matches:
                index.claim(matches[0].id)
                self._nk_claims[matches[0].id] = record.external_id
                log.info("natural_key_matched", external_id=record.external_id, target_id=matches[0].id, key=key)
                return matches[0]
        if self.split_guard:
            for key in keys:
                ours = {record.external_id, *self.source.external_id_aliases(record.remote.id)}
                taken = [
                    r
                    for r in (
                        [] if key in prepared.defaulted else index.match_linked(key, getattr(prepared.shaped, key))
                    )
                    if r.external_id not in ours
                ]
                if taken:
                    # In a pair or ring, a customer to create whose key another linked customer holds
                    # is most likely that customer under a second identity (a lost store): a copy
                    # would be a duplicate. Left to a person, as an ambiguity is.
                    log.warning("identity_split_suspected", external_id=record.external_id, key=key)
                    return FieldProblem(
                        key,
                        f"{key}: {self.target.system} record {taken[0].id} has it and belongs to another customer "
                        "of the store (the same customer twice after a lost state store?); link one by hand "
                        "or fix the data",
                    )
        if pending and not self.target.spec.identity_slot:
            matches = index.match_content(prepared.fingerprint)
            if len(matches) == 1:
                index.claim(matches[0].id)
                log.info("identity_recovered", external_id=record.external_id, target_id=matches[0].id, by="content")
                return matches[0]
        return NOT_FOUND

    def _keys(self, record: Record) -> tuple[str, ...]:
        """The natural keys that may find this record's identity in the target."""
        return self.match_on or (self.copies_by if record.fresh else ())

    async def _home(self, external_id: str) -> RemoteCustomer | None:
        """The target's own record when the identity names it (a copy coming home after a lost store).

        An identity made in the target (``system:tenant:id``) is the record ``id`` there, which
        holds no identity in any slot: looked up by id, unless the store links it to another one.
        """
        try:
            prefix = self.target.external_id_for("")
        except RuntimeError:  # the tenant is not known yet: no identity can name this target
            return None
        remote_id = external_id[len(prefix) :] if external_id.startswith(prefix) else ""
        if not usable_id(remote_id):
            return None
        if remote_id in self.store.links_by_remote(self.target.name, [remote_id]):
            return None  # linked to another identity: not ours to take
        try:
            found = await self.target.get(remote_id)
        except NotFoundError:
            return None  # gone from its own system: created again, as any missing record
        return found if found.customer is not None and usable_id(found.id) else None

    async def _find_by_external_id(
        self, write: Write, *, aliases_only: bool = False, aliases: bool = True
    ) -> list[RemoteCustomer]:
        """Target records holding this identity in their slot, under its current or (``aliases``) an older form."""
        record = write.record
        matches: list[RemoteCustomer] = []
        if not aliases_only:
            matches = [m for m in await self.target.find_by_external_id(record.external_id) or [] if usable_id(m.id)]
        if matches or record.remote.external_id or not aliases:
            return matches
        for alias in self.source.external_id_aliases(record.remote.id):
            if alias == record.external_id:
                continue
            matches = [m for m in await self.target.find_by_external_id(alias) or [] if usable_id(m.id)]
            if matches:
                return matches
        return []

    async def collisions(
        self, writes: Sequence[Write], *, dry_run: bool
    ) -> tuple[dict[str, FieldProblem], list[Claim]]:
        """Two source records matching one unlinked target record by a natural key: both are quarantined.

        Taking either would silently rename the target record after the other; the
        match is left to a person. A target record claimed by a natural key on an
        earlier page of this run is a collision for the later record too.

        Returns:
            (source id → its problem, the creates that wait for the whole source: none in a dry run).
        """
        creating = [w for w in writes if "create" in w.decision.actions]
        if not creating or not self.match_on:
            return {}, []
        index = await self.index()
        claims: dict[str, list[tuple[Write, str]]] = {}
        for write in creating:
            for key in self.match_on:
                if key in write.prepared.defaulted:
                    continue
                matches = index.match_unclaimed_at_start(key, getattr(write.prepared.shaped, key))
                if len(matches) == 1:
                    claims.setdefault(matches[0].id, []).append((write, key))
                if matches:
                    break  # several matches: recover() quarantines it as ambiguous
        problems: dict[str, FieldProblem] = {}
        waiting: list[Claim] = []
        for target_id, claimants in claims.items():
            earlier = self._nk_claims.get(target_id)
            if len(claimants) < 2 and (earlier is None or earlier == claimants[0][0].record.external_id):
                if not dry_run:  # waits for the whole source (settle())
                    waiting.append(Claim(claimants[0][0], target_id, claimants[0][1]))
                continue
            count = len(claimants) + (1 if earlier is not None else 0)
            for write, key in claimants:
                problems[write.record.remote.id] = collision(key, count, self.source.system, self.target.system)
            log.warning("natural_key_collision", target_id=target_id, key=claimants[0][1], records=count)
        return problems, waiting

    def settle(self, waiting: Sequence[Claim]) -> dict[str, FieldProblem]:
        """Of the creates that waited for the whole source, those that claim one target record together.

        Two or more waiting records that would match one target record (from different
        pages) are all quarantined as ambiguous: taking one would rename the target
        record after a guess. The others are matched (or created) as on their page.

        Returns:
            source id → its problem.
        """
        by_target: dict[str, list[Claim]] = {}
        for claim in waiting:
            by_target.setdefault(claim.target_id, []).append(claim)
        problems: dict[str, FieldProblem] = {}
        for target_id, claimants in by_target.items():
            if len(claimants) < 2:
                continue
            key = claimants[0].key
            for claim in claimants:
                problems[claim.write.record.remote.id] = collision(
                    key, len(claimants), self.source.system, self.target.system
                )
            log.warning("natural_key_collision", target_id=target_id, key=key, records=len(claimants))
        return problems


__all__ = ["NOT_FOUND", "Claim", "Identity", "ambiguous", "collision", "usable_id"]
