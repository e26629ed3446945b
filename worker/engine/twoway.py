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
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime

from connectors.model import Customer
from worker.topology import Rules

#: a memory value meaning "this side holds a value its owner will overwrite".
DIRTY = "!"
#: source fields that never flow on update: their value is not the customer's own (Piriod's folded
#: address line, its constant kind).
NOT_FLOWING = frozenset({"folded", "constant"})


#: ``json.dumps(value, ensure_ascii=False)``, without building an encoder per call (text: the encoder's own escaping).
_ENCODE = json.JSONEncoder(ensure_ascii=False).encode
_ENCODE_TEXT = json.encoder.encode_basestring


def value_hash(value: object) -> str:
    """A short, stable hash of one field's value (empty text and ``None`` are the same)."""
    if value == "":
        value = None
    encoded = _ENCODE_TEXT(value) if type(value) is str else _ENCODE(value)
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest()[:16]


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
        settled: T already holds S's value: only remembered.
        conflicts: edited on both sides and held (written to neither).
        overwrites: written over T's own edit (``write`` holds them too).
        dirty: S's edits of fields T's connection owns: not written, marked for the owner.
        deferred: T's value wins (newest, or owned by T): left for the opposite pipeline.
    """

    write: frozenset[str] = frozenset()
    settled: frozenset[str] = frozenset()
    conflicts: tuple[str, ...] = ()
    overwrites: tuple[Overwrite, ...] = ()
    dirty: frozenset[str] = frozenset()
    deferred: frozenset[str] = frozenset()


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
    first: bool = False,
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
        first: S has no memory of T: both records are adopted as they are (settled, remembered),
            nothing is written (``--full`` writes S's values).
    """
    write: set[str] = set()
    settled: set[str] = set()
    dirty: set[str] = set()
    deferred: set[str] = set()
    conflicts: list[str] = []
    overwrites: list[Overwrite] = []
    for name in sorted(set(fields) | forced):
        if held.get(name) == want.get(name):
            (write if rewrite else settled).add(name)
            continue
        if first and name not in forced:
            settled.add(name)  # adopted as each side holds it: no memory says which side was edited
            continue
        owner = rules.owner.get(name)
        if owner == target:
            dirty.add(name)
            continue
        target_edited = memory.get(name) not in (None, held.get(name))
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
            deferred.add(name)
        else:
            conflicts.append(name)
    return FieldPlan(
        frozenset(write), frozenset(settled), tuple(conflicts), tuple(overwrites), frozenset(dirty), frozenset(deferred)
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
    "NOT_FLOWING",
    "FieldPlan",
    "Hashes",
    "Overwrite",
    "conflict_reason",
    "edited",
    "flowing",
    "hashes",
    "is_newer",
    "reconcile",
    "value_hash",
]
