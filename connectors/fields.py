"""A connector's field table: one entry per field, everything else derived from it.

Each system declares one :class:`FieldTable`. An entry (:class:`Field`) gives
the canonical field, the vendor name it is read from (a key, a dotted path
into nested objects, or alternative keys), the vendor name it is written to,
a converter each way, and whether a null clears the field on update. From the
table come:

- reading: :meth:`FieldTable.customer` (a connector's ``to_canonical``);
- the write body: :meth:`FieldTable.payload` (``to_payload``);
- the partial-update field set: :attr:`FieldTable.owners` (write name →
  canonical field, what ``Connector.only`` drops) and
  :attr:`FieldTable.vendor_fields` (vendor name → canonical field, to name
  fields in refusals);
- the spec's fields kept: :attr:`FieldTable.kept`;
- how each field round-trips, where not exactly: :attr:`FieldTable.lossy`
  (the spec's ``lossy``; :data:`RoundTrip` says what each value means).

Entries are read in table order, and a decoder sees what was read before it
(``Reading.got``): a field derived from others (Thredfi's name parts,
Timbrix's kind) comes after them. Converters are named functions
(:mod:`connectors.converters`); a quirk is a converter, not a code path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from connectors.model import Customer, clean

#: The pseudo-field of a write entry that carries our external_id (an identity slot).
IDENTITY = "external_id"
#: Fields never in a spec's ``fields`` (``shape`` always keeps kind and active; the identity is no field).
_NOT_FIELDS = frozenset({"kind", "active", IDENTITY})

RoundTrip = Literal["exact", "folded", "derived", "constant"]
"""How a canonical field survives shape → write → read → shape in one system.

- ``exact``: it gives back the value that went in (a customer valid for the system);
- ``folded``: the system's value mixes in another canonical field (Piriod's one
  address line holds line 2 too; Thredfi's and Timbrix's company name is the
  customer's name). In a two-way pair such a value is never written from this
  system into another one on update;
- ``derived``: the system renders it from parts it keeps (Timbrix's street line
  from street, exterior and interior numbers): faithful, not byte-exact, and
  stable once rendered; it may flow;
- ``constant``: the system reads the same value whatever was written (Piriod's
  kind); it never flows out on update.

A field the system has no place for is not kept (not in ``spec.fields``), which
is no round trip at all.
"""
#: The values of :data:`RoundTrip` other than ``exact``.
LOSSY: frozenset[str] = frozenset({"folded", "derived", "constant"})


@dataclass
class Reading:
    """What a decoder may look at besides its own value.

    Attributes:
        system: the system read from, for messages.
        raw: the whole vendor record.
        got: the canonical values read so far, in table order.
        field: the canonical field being read.
    """

    system: str
    raw: Mapping[str, Any]
    got: dict[str, Any] = field(default_factory=dict)
    field: str = ""


@dataclass(frozen=True)
class Writing:
    """What an encoder may look at besides its own value.

    Attributes:
        customer: the customer as shaped for the system.
        external_id: its identity.
        create: a create (else an update).
        connector: the connector writing (for a catalog it loaded, such as Piriod's states).
    """

    customer: Customer
    external_id: str
    create: bool
    connector: Any = None


#: vendor value → canonical value (may raise FieldMappingError or NotTextError).
Decode = Callable[[Any, Reading], Any]
#: canonical value → vendor value (may raise FieldMappingError).
Encode = Callable[[Any, Writing], Any]


def text(value: Any, reading: Reading) -> str | None:
    """The default decoder: stripped text, ``None`` when empty; a JSON object or array is refused."""
    return clean(value, reading.field)


def as_is(value: Any, writing: Writing) -> Any:
    """The default encoder: the canonical value unchanged."""
    return value


@dataclass(frozen=True)
class Field:
    """One field of a system: where it is read and written, and how.

    Attributes:
        canonical: the canonical field (or :data:`IDENTITY`, write only).
        read: the vendor key read; ``"a.b"`` reads ``b`` inside the object
            ``a`` (``None`` when ``a`` is not one); a tuple reads the first key
            the record has. ``None``: the decoder derives the value.
        write: the vendor key written; ``None``: never written.
        decode: vendor value → canonical value; ``None``: the entry is not read
            (nor is an :data:`IDENTITY` entry: ``external_id_of`` reads the identity).
        encode: canonical value → vendor value.
        clears: on update, a null is sent (and clears the field); ``False``:
            the key is left out. ``None``: the table's default. A create
            always leaves nulls out.
        when: ``create`` or ``update`` for a key written by one of them only.
        kept: the system keeps the field (it is in ``spec.fields``).
        round_trip: how the field survives a write and a read (:data:`RoundTrip`);
            one entry of a field saying it is enough (Timbrix writes its street
            line through three).
        names: the vendor names that mean this field in a refusal. By
            default, the top-level read keys and the write key that are not
            spelled like the canonical field.
    """

    canonical: str
    read: str | tuple[str, ...] | None = None
    write: str | None = None
    decode: Decode | None = text
    encode: Encode = as_is
    clears: bool | None = None
    when: Literal["always", "create", "update"] = "always"
    kept: bool = True
    names: tuple[str, ...] | None = None
    round_trip: RoundTrip = "exact"

    def value_in(self, raw: Mapping[str, Any]) -> Any:
        """The vendor value this entry reads from ``raw``."""
        if self.read is None:
            return None
        if isinstance(self.read, tuple):
            return next((raw[key] for key in self.read if key in raw), None)
        value: Any = raw
        for part in self.read.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        return value

    def vendor_names(self) -> tuple[str, ...]:
        """The vendor names that mean this field in a refusal."""
        if self.names is not None:
            return self.names
        reads = (self.read,) if isinstance(self.read, str) else self.read or ()
        found = [name for name in (*reads, self.write) if name and "." not in name]
        return tuple(dict.fromkeys(name for name in found if name != self.canonical))


def same(canonical: str, vendor: str | None = None, **options: Any) -> Field:
    """A text field read and written under one vendor name (by default, the canonical one)."""
    return Field(canonical, vendor or canonical, vendor or canonical, **options)


class FieldTable:
    """A system's fields, in reading order.

    Args:
        entries: the fields.
        clears: the default of :attr:`Field.clears`.
    """

    def __init__(self, *entries: Field, clears: bool = True) -> None:
        self.entries = entries
        self.clears = clears
        #: canonical fields the system keeps (``TargetSpec.fields``).
        self.kept = frozenset(e.canonical for e in entries if e.kept) - _NOT_FIELDS
        #: write key → canonical field: what a partial update leaves out.
        self.owners: Mapping[str, str] = {e.write: e.canonical for e in entries if e.write}
        names: dict[str, str] = {}
        for entry in entries:
            if entry.canonical != IDENTITY:
                for name in entry.vendor_names():
                    names.setdefault(name, entry.canonical)
        #: vendor name → canonical field, to name fields in refusals.
        self.vendor_fields: Mapping[str, str] = names
        #: canonical field → how it round-trips, for the fields that do not exactly (``TargetSpec.lossy``).
        self.lossy: Mapping[str, str] = _lossy(entries)
        #: the read entries, each as (canonical field, decoder, how its value is read from a dict).
        self._reads: tuple[tuple[str, Decode, Callable[[dict[str, Any]], Any]], ...] = tuple(
            (e.canonical, e.decode, _reader(e)) for e in entries if e.decode is not None and e.canonical != IDENTITY
        )

    def values(self, raw: Mapping[str, Any], system: str) -> dict[str, Any]:
        """The canonical values of a vendor record, decoded in table order."""
        reading = Reading(system, raw)
        got = reading.got
        if type(raw) is dict:  # a parsed JSON object: each entry's value read as resolved once (_reader)
            for canonical, decode, value_in in self._reads:
                reading.field = canonical
                got[canonical] = decode(value_in(raw), reading)
            return got
        for entry in self.entries:
            if entry.decode is not None and entry.canonical != IDENTITY:
                reading.field = entry.canonical
                got[entry.canonical] = entry.decode(entry.value_in(raw), reading)
        return got

    def customer(self, raw: Mapping[str, Any], system: str) -> Customer:
        """The canonical customer of a vendor record.

        Raises:
            FieldMappingError: a converter refused a value.
            NotTextError: a text field holds a JSON object or array.
            ValidationError: the values make no valid customer.
        """
        return Customer(**self.values(raw, system))

    def payload(self, writing: Writing) -> dict[str, Any]:
        """The write body: every written key of this operation; nulls as :attr:`Field.clears` says."""
        body: dict[str, Any] = {}
        skip = "update" if writing.create else "create"
        for entry in self.entries:
            if entry.write is None or entry.when == skip:
                continue
            held = writing.external_id if entry.canonical == IDENTITY else getattr(writing.customer, entry.canonical)
            value = entry.encode(held, writing)
            clears = self.clears if entry.clears is None else entry.clears
            if value is not None or (clears and not writing.create):
                body[entry.write] = value
        return body


def _reader(entry: Field) -> Callable[[dict[str, Any]], Any]:
    """:meth:`Field.value_in` of a record that is a dict, its key or path resolved once."""
    read = entry.read
    if read is None or isinstance(read, tuple):
        return entry.value_in
    first, *rest = read.split(".")
    if not rest:
        return lambda raw: raw.get(first)

    def nested(raw: dict[str, Any]) -> Any:
        value: Any = raw.get(first)
        for part in rest:
            value = value.get(part) if isinstance(value, Mapping) else None
        return value

    return nested


def _lossy(entries: tuple[Field, ...]) -> dict[str, str]:
    """Canonical field → its round trip, for fields an entry declares not exact.

    Raises:
        ValueError: two entries of one field declare different round trips.
    """
    found: dict[str, str] = {}
    for entry in entries:
        if entry.round_trip == "exact":
            continue
        if entry.canonical in (IDENTITY, "active"):
            raise ValueError(f"{entry.canonical} has no round trip to declare")
        held = found.setdefault(entry.canonical, entry.round_trip)
        if held != entry.round_trip:
            raise ValueError(f"{entry.canonical}: entries declare both {held} and {entry.round_trip} round trips")
    return dict(sorted(found.items()))


def narrow(body: dict[str, Any], untouched: frozenset[str], owners: Mapping[str, str]) -> dict[str, Any]:
    """``body`` without the keys of ``untouched`` canonical fields (a partial update).

    ``owners`` maps a write key to its canonical field; a key it does not name
    is spelled like its canonical field (``email``).
    """
    return {key: value for key, value in body.items() if owners.get(key, key) not in untouched}


__all__ = [
    "IDENTITY",
    "LOSSY",
    "Decode",
    "Encode",
    "Field",
    "FieldTable",
    "Reading",
    "RoundTrip",
    "Writing",
    "as_is",
    "narrow",
    "same",
    "text",
]
