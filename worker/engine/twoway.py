"""Two-way pairs and rings, field by field: what was edited where since the last sync, and what to write.

Pure functions. Each link remembers, per counterpart connection, a hash of each
field's value as that connection held it at their last sync
(:mod:`state.memory`). A run of S → T:

1. finds the fields *edited in S*: those whose value differs from S's memory
   of its last sync with T (:func:`edited`). Nothing edited: nothing to do,
   whatever the two records look like (a lossy field never echoes);
2. reads T's record and, per edited field (:func:`reconcile`):
   - T already holds S's value: *settled*, both memories are brought up to date;
   - T's value is still the one it held at the last sync: the field is *written*;
   - T was edited too: a *conflict*, settled by the pair's ``owner`` and
     ``conflict`` rules (:class:`~worker.topology.Rules`).

A field the target's owner owns, edited in S, is not written: S's memory of it
is marked :data:`DIRTY`, and the owner's pipeline writes its value back.

*First contact*: S has no memory of T at all (a copy that reached T another way
round a ring, a link older than memories, a store lost and the customer found
again), so no memory of each other says which side was edited. Per field that
differs (:func:`first_contact`, from :class:`FirstContact`):

- a value one of the systems holds lossily (folded, derived, constant: not in
  ``TargetSpec.exact``), the (in)active state, or an S value T cannot take: adopted,
  each side keeps its own;
- an empty side is filled from the other one (a fill overwrites nothing);
- a value its side still holds as at its last sync with *another* connection is
  no edit: two such values differ only by how a system on the way rendered them
  (adopted); one edited against one unedited flows;
- otherwise (both edited, or nothing says) a conflict like any other, settled by
  the rules.

An owned field never flows into its owner's side this way (an owner's empty field
stays empty); a conflict on it goes by the owner, as always.

When T's value is the one to reach S, this run cannot write it: T's memory of it
is marked :data:`UNSENT`, so the opposite pipeline sees it edited in T and carries
it. A conflict held at first contact is marked :data:`UNSENT` on both sides, so
it stays a conflict until settled.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from connectors.model import Customer, text_json
from worker.topology import Rules

#: a memory value meaning "this side holds a value its owner will overwrite".
DIRTY = "!"
#: a memory value meaning "this side's value has not reached the other side yet" (first contact):
#: it equals no value's hash, so the side's next run sees the field edited there.
UNSENT = "?"
#: source fields that never flow on update: their value is not the customer's own (Piriod's folded
#: address line, its constant kind).
NOT_FLOWING = frozenset({"folded", "constant"})


#: ``json.dumps(value, ensure_ascii=False)``, without building an encoder per call (text: :func:`text_json`).
_ENCODE = json.JSONEncoder(ensure_ascii=False).encode


def _digest(encoded: str) -> str:
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest()[:16]


#: the hash of an empty field (``None`` or empty text): most fields of most records.
EMPTY = _digest(_ENCODE(None))


def value_hash(value: object) -> str:
    """A short, stable hash of one field's value (empty text and ``None`` are the same)."""
    if value is None or value == "":
        return EMPTY
    if type(value) is str:
        return hashlib.sha256(text_json(value)).hexdigest()[:16]
    return _digest(_ENCODE(value))


def hashes(customer: Customer, fields: Iterable[str]) -> dict[str, str]:
    """field → :func:`value_hash` of ``customer``'s value."""
    return {name: value_hash(getattr(customer, name)) for name in fields}


class Hashes(Mapping[str, str]):
    """:func:`hashes` of a customer, computed on first use: a record nothing reads them of costs nothing.

    A one-way no-op run plans every record and reads the source's hashes only of those it writes.
    """

    __slots__ = ("_customer", "_fields", "_hashes")

    def __init__(self, customer: Customer, fields: Iterable[str]) -> None:
        self._customer, self._fields = customer, fields
        self._hashes: dict[str, str] | None = None

    def _computed(self) -> dict[str, str]:
        if self._hashes is None:
            self._hashes = hashes(self._customer, self._fields)
        return self._hashes

    def __getitem__(self, name: str) -> str:
        return self._computed()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._computed())

    def __len__(self) -> int:
        return len(self._computed())

    def __repr__(self) -> str:
        return repr(self._computed())


def edited(now: Mapping[str, str], memory: Mapping[str, str], fields: Iterable[str]) -> frozenset[str]:
    """The fields whose value differs from what the side held at the last sync (all, without a memory)."""
    return frozenset(name for name in fields if memory.get(name) != now.get(name))


def flowing(fields: Iterable[str], lossy: Mapping[str, str]) -> frozenset[str]:
    """The fields a source's value may be written from into another system on update."""
    return frozenset(name for name in fields if lossy.get(name) not in NOT_FLOWING)


@dataclass(frozen=True)
class Overwrite:
    """A value written over the other side's edit: logged, never with values."""

    field: str
    event: str  # conflict_overwritten | owned_field_overwritten


@dataclass(frozen=True)
class FieldPlan:
    """What one S → T run does with each edited field of one customer.

    Attributes:
        write: written into T.
        settled: T already holds S's value (or, at first contact, adopted as each side holds it): only remembered.
        conflicts: edited on both sides and held (written to neither).
        overwrites: written over T's own edit (``write`` holds them too).
        dirty: S's edits of fields T's connection owns: not written, marked for the owner.
        deferred: T's value wins (newest, or owned by T): left for the opposite pipeline.
        back: first contact: T's value is to reach S (S's is empty, or T's is newest): S's own value is
            remembered and T's memory marked :data:`UNSENT`, so the opposite pipeline carries it.
    """

    write: frozenset[str] = frozenset()
    settled: frozenset[str] = frozenset()
    conflicts: tuple[str, ...] = ()
    overwrites: tuple[Overwrite, ...] = ()
    dirty: frozenset[str] = frozenset()
    deferred: frozenset[str] = frozenset()
    back: frozenset[str] = frozenset()


@dataclass(frozen=True)
class FirstContact:
    """What a first contact (S has no memory of T) knows of one customer, from both sides' other memories.

    Attributes:
        exact: the fields whose values both systems hold exactly (``TargetSpec.exact``; never the
            (in)active state), S's value being one T can take.
        unedited: the fields S still holds as at its last sync with some connection.
        held_before: field → hashes of the values T held at its last syncs (with any connection).
    """

    exact: frozenset[str] = frozenset()
    unedited: frozenset[str] = frozenset()
    held_before: Mapping[str, frozenset[str]] = dataclasses.field(default_factory=dict)

    def within(self, exact: frozenset[str]) -> FirstContact:
        """The same, keeping only the fields ``exact`` names exact too (the target's own)."""
        return dataclasses.replace(self, exact=self.exact & exact)


#: what a first contact does with a field whose two values differ.
Contact = Literal["adopt", "write", "back", "conflict"]


def first_contact(name: str, want: Mapping[str, str], held: Mapping[str, str], contact: FirstContact) -> Contact:
    """What a first contact does with a field whose two values differ, no memory of each other saying who edited it.

    Args:
        name: the field.
        want: field → hash of S's value as shaped for T.
        held: field → hash of T's value.
        contact: what the two sides' memories of other connections say.

    Returns:
        ``adopt`` (each side keeps its own): a lossy value is involved, or both values are as their
        sides last synced them elsewhere (they differ by how a system on the way rendered them);
        ``write`` (S's value into T): T's is empty (a fill), or only S's was edited since;
        ``back`` (T's value is to reach S): S's is empty, or only T's was edited since;
        ``conflict``: both were edited, or nothing says: the rules settle it.
    """
    if name not in contact.exact:
        return "adopt"
    if held.get(name, EMPTY) == EMPTY:
        return "write"
    if want.get(name, EMPTY) == EMPTY:
        return "back"
    here = name in contact.unedited
    there = held.get(name) in contact.held_before.get(name, frozenset())
    if here and there:
        return "adopt"
    if here or there:
        return "back" if here else "write"
    return "conflict"


def reconcile(
    *,
    fields: Iterable[str],
    forced: frozenset[str],
    want: Mapping[str, str],
    held: Mapping[str, str],
    memory: Mapping[str, str],
    rules: Rules,
    source: str,
    target: str,
    newer: bool | None,
    rewrite: bool = False,
    first: FirstContact | None = None,
) -> FieldPlan:
    """Decide each edited field of one customer.

    Args:
        fields: the fields edited in S that may flow into T.
        forced: fields S's connection owns that T holds :data:`DIRTY`: written back.
        want: field → hash of S's value as shaped for T.
        held: field → hash of T's current value.
        memory: field → hash of what T held at its last sync with S.
        rules: the pair's rules.
        source: S's connection name.
        target: T's connection name.
        newer: S's record was modified after T's (``None``: a side gives no time).
        rewrite: ``--full``: a field T already holds is written all the same.
        first: S has no memory of T: each field that differs goes by :func:`first_contact`
            (``--full`` is never a first contact: it writes S's values).
    """
    write: set[str] = set()
    settled: set[str] = set()
    dirty: set[str] = set()
    deferred: set[str] = set()
    back: set[str] = set()
    conflicts: list[str] = []
    overwrites: list[Overwrite] = []
    for name in sorted(set(fields) | forced):
        if held.get(name) == want.get(name):
            (write if rewrite else settled).add(name)
            continue
        owner = rules.owner.get(name)
        unknown = first is not None and name not in forced  # no memory of each other says who edited it
        if first is not None and unknown:
            contact = first_contact(name, want, held, first)
            if contact == "adopt" or (contact, owner) in (("write", target), ("back", source)):
                settled.add(name)  # adopted as each side holds it (never flowing into the side that owns it)
                continue
            if contact != "conflict":
                (write if contact == "write" else back).add(name)
                continue
        if owner == target:
            dirty.add(name)
            continue
        target_edited = unknown or memory.get(name) not in (None, held.get(name))
        if owner == source:
            write.add(name)
            if target_edited or name in forced:
                overwrites.append(Overwrite(name, "owned_field_overwritten"))
            continue
        if not target_edited:
            write.add(name)
        elif rules.conflict == "source_wins" or (rules.conflict == "newest_wins" and newer is True):
            write.add(name)
            overwrites.append(Overwrite(name, "conflict_overwritten"))
        elif rules.conflict == "newest_wins" and newer is False:
            (back if unknown else deferred).add(name)
        else:
            conflicts.append(name)
    return FieldPlan(
        frozenset(write),
        frozenset(settled),
        tuple(conflicts),
        tuple(overwrites),
        frozenset(dirty),
        frozenset(deferred),
        frozenset(back),
    )


def is_newer(source: datetime | None, target: datetime | None) -> bool | None:
    """Whether the source record was modified after the target's (``None`` when either time is unknown)."""
    if source is None or target is None:
        return None
    if source.tzinfo is None or target.tzinfo is None:
        source, target = source.replace(tzinfo=None), target.replace(tzinfo=None)
    return source > target


def conflict_reason(name: str, source: str, target: str) -> str:
    """The reason a held conflict is listed under (product.md: no values)."""
    return f"conflict: {name} edited in {source} and in {target} since the last sync"


__all__ = [
    "DIRTY",
    "EMPTY",
    "NOT_FLOWING",
    "UNSENT",
    "Contact",
    "FieldPlan",
    "FirstContact",
    "Hashes",
    "Overwrite",
    "conflict_reason",
    "edited",
    "first_contact",
    "flowing",
    "hashes",
    "is_newer",
    "reconcile",
    "value_hash",
]
