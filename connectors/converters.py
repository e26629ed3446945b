"""Named converters for field tables (:mod:`connectors.fields`).

A decoder takes the vendor value and a :class:`~connectors.fields.Reading`;
an encoder the canonical value and a :class:`~connectors.fields.Writing`.
The shared ones come first; each system's quirks follow, named after what
they do, so a table reads as a data sheet.
"""

from __future__ import annotations

import asyncio
import unicodedata
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from typing import Any

from connectors.errors import FieldMappingError
from connectors.fields import Decode, Reading, Writing, text
from connectors.mapping import country_alpha2, country_alpha3, country_name, split_name
from connectors.model import Customer, clean, updated

# -- shared ---------------------------------------------------------------------------


def loose(value: Any, reading: Reading) -> str | None:
    """Stripped text, ``None`` when empty; anything else is read as its text."""
    return clean(value)


def alpha2(value: Any, reading: Reading) -> str | None:
    """Any country spelling → ISO alpha-2 (a value that names no country is refused)."""
    return country_alpha2(value, system=reading.system)


def to_alpha3(value: Any, writing: Writing) -> str | None:
    """ISO alpha-2 → alpha-3 (``MX`` → ``MEX``)."""
    return country_alpha3(value) if value else None


def to_country_name(value: Any, writing: Writing) -> str | None:
    """ISO alpha-2 → the English short name ("United States")."""
    return country_name(value) if value else None


def blank_is_null(value: Any, writing: Writing) -> Any:
    """An empty value is written as null."""
    return value or None


def constant(result: Any) -> Decode:
    """A decoder that always reads ``result`` (Piriod's kind: it cannot tell people from companies)."""

    def decode(value: Any, reading: Reading) -> Any:
        return result

    return decode


def required(decode: Decode, reason: str) -> Decode:
    """``decode``, refusing a record whose value is missing: ``reason`` names what it lacks."""

    def check(value: Any, reading: Reading) -> Any:
        found = decode(value, reading)
        if found is None:
            raise FieldMappingError(reading.field, reason)
        return found

    return check


def choice(known: Mapping[str, Any], reason: str) -> Decode:
    """The value looked up (as text) in ``known``; any other is refused with ``reason``."""

    def decode(value: Any, reading: Reading) -> Any:
        found = known.get(str(value))
        if found is None:
            raise FieldMappingError(reading.field, reason)
        return found

    return decode


def if_kind(kind: str) -> Callable[[Any, Writing], Any]:
    """An encoder writing the value for customers of ``kind`` only (null for the others)."""

    def encode(value: Any, writing: Writing) -> Any:
        return value if writing.customer.kind == kind else None

    return encode


# -- Thredfi: one name field per kind ----------------------------------------------------


def _person(reading: Reading) -> str | None:
    """Thredfi's ``individual_name``, when the record has no company name."""
    return None if reading.got.get("company_name") else clean(reading.raw.get("individual_name"))


def thredfi_name(value: Any, reading: Reading) -> str:
    """The company's name, else the person's, else Thredfi's own display name."""
    # Thredfi's own display name prefers the company; so do we when both are set.
    person = clean(value, "name")
    name = reading.got.get("company_name") or person or clean(reading.raw.get("display_name"))
    if name is None:
        raise FieldMappingError("name", "thredfi record has no company_name or individual_name")
    return str(name)


def person_first(value: Any, reading: Reading) -> str | None:
    """A person's first name: their name up to the first space."""
    return split_name(_person(reading))[0]


def person_last(value: Any, reading: Reading) -> str | None:
    """A person's last name: their name after the first space."""
    return split_name(_person(reading))[1]


def kind_by_name(value: Any, reading: Reading) -> str:
    """An individual when only a person's name is set, else a company."""
    return "individual" if _person(reading) else "company"


def one_name_by_kind(shaped: Customer) -> Customer:
    """A company's one name is its company_name; a person's splits into first and last (as a read does)."""
    if shaped.kind == "company":
        parts = {"company_name": shaped.name, "first_name": None, "last_name": None}
    else:
        first, last = split_name(shaped.name)
        parts = {"company_name": None, "first_name": first, "last_name": last}
    return updated(shaped, parts)


def thredfi_active(value: Any, reading: Reading) -> bool:
    """Active unless ``status`` is ARCHIVED (``is_archived`` when there is no status)."""
    status = clean(value)
    return status.upper() != "ARCHIVED" if status else reading.raw.get("is_archived") is not True


# -- Bigcapital: the contact type and 1/0 flags ---------------------------------------------

_ACTIVE: Mapping[object, bool] = {1: True, 0: False, "1": True, "0": False, "true": True, "false": False}


def bigcapital_active(value: Any, reading: Reading) -> bool:
    """``active`` as a boolean, 1/0 or "true"/"false" (create and edit answer the raw row)."""
    if isinstance(value, bool):
        return value
    found = _ACTIVE.get(value.strip().lower() if isinstance(value, str) else value)
    if found is None:
        raise FieldMappingError("active", "bigcapital active is not 1/0 or true/false")
    return found


def to_contact_type(value: Any, writing: Writing) -> str:
    """The canonical kind as Bigcapital's customer type: ``individual`` or ``business``."""
    return "individual" if value == "individual" else "business"


# -- Piriod: objects on read, a states catalog, identity in metadata ------------------------


def active_unless(status: str) -> Decode:
    """Active unless the vendor status is ``status`` (Piriod's "pending" is active)."""

    def decode(value: Any, reading: Reading) -> bool:
        return bool(value != status)

    return decode


def object_name(value: Any, reading: Reading) -> str | None:
    """The ``name`` of a catalog object (Piriod's state), ``None`` when the value is no object."""
    return clean(value.get("name")) if isinstance(value, Mapping) else None


def alpha2_of_object(value: Any, reading: Reading) -> str | None:
    """A country read as an object's ``id`` (or as the value itself) → ISO alpha-2."""
    return country_alpha2(value.get("id") if isinstance(value, Mapping) else value, system=reading.system)


class Catalog:
    """Ids of named things by scope (Piriod's states by country), each scope loaded once.

    Names match case-, accent- and spacing-insensitively (:func:`fold_name`).

    Args:
        field: the canonical field the names are values of.
        system: the system, for messages.
    """

    def __init__(self, field: str, system: str) -> None:
        self.field = field
        self.system = system
        self._ids: dict[str, dict[str, int]] = {}
        #: held while a scope loads: concurrent writes share one walk.
        self.lock = asyncio.Lock()

    def __contains__(self, scope: object) -> bool:
        return scope in self._ids

    def fill(self, scope: str, entries: Iterable[tuple[str, int]]) -> None:
        """Keep the ids of ``scope`` (the first of two equal names wins)."""
        found: dict[str, int] = {}
        for name, ident in entries:
            found.setdefault(fold_name(name), ident)
        self._ids[scope] = found

    async def load(self, scope: str, pages: Callable[[], AsyncIterator[Sequence[Mapping[str, Any]]]]) -> None:
        """Walk ``pages()`` (records with a ``name`` and an ``id``) once for ``scope``; concurrent callers wait."""
        async with self.lock:
            if scope not in self._ids:
                self.fill(scope, [(str(r["name"]), int(r["id"])) async for page in pages() for r in page])

    def id_of(self, scope: str, name: str | None) -> int | None:
        """The id of ``name`` in ``scope``; ``None`` for no name.

        Raises:
            FieldMappingError: ``scope`` has no such name.
        """
        if name is None:
            return None
        if scope not in self._ids:
            raise RuntimeError(f"{self.field}s of {scope} not loaded: write through create/update")
        found = self._ids[scope].get(fold_name(name))
        if found is None:
            raise FieldMappingError(self.field, f"the {self.field} is not a {self.system} {self.field} of {scope}")
        return found


def to_catalog_id(value: Any, writing: Writing) -> Any:
    """A name → its id in the connector's ``catalog``, scoped by the customer's country."""
    return writing.connector.catalog.id_of(writing.customer.country, value)


def identity_up_to(limit: int) -> Callable[[Any, Writing], Any]:
    """Our external_id when it fits in ``limit`` characters, else null (it goes elsewhere only)."""

    def encode(value: Any, writing: Writing) -> Any:
        return value if len(value) <= limit else None

    return encode


def to_metadata(value: Any, writing: Writing) -> dict[str, str]:
    """Piriod's ``metadata``: the external_id, and the notes when there are some."""
    metadata = {"external_id": writing.external_id}
    if value:  # metadata values cannot be null: a missing key clears it
        metadata["notes"] = value
    return metadata


def fold_line2(customer: Customer) -> Customer:
    """Address line 2 folded into line 1 (``"line1, line2"``), for a system with one address line."""
    lines = [p for p in (customer.address_line1, customer.address_line2) if p]
    return updated(customer, {"address_line1": ", ".join(lines) or None})


def fold_name(name: str) -> str:
    """Case-, accent- and spacing-insensitive form of a catalog name (a state)."""
    decomposed = unicodedata.normalize("NFKD", name.casefold())
    return " ".join("".join(c for c in decomposed if not unicodedata.combining(c)).split())


def alpha2_or(default: str) -> Decode:
    """Any country spelling → ISO alpha-2, ``default`` when there is none."""

    def decode(value: Any, reading: Reading) -> str:
        return country_alpha2(value, system=reading.system) or default

    return decode


__all__ = [
    "Catalog",
    "active_unless",
    "alpha2",
    "alpha2_of_object",
    "alpha2_or",
    "bigcapital_active",
    "blank_is_null",
    "choice",
    "constant",
    "fold_line2",
    "fold_name",
    "identity_up_to",
    "if_kind",
    "kind_by_name",
    "loose",
    "object_name",
    "one_name_by_kind",
    "person_first",
    "person_last",
    "required",
    "text",
    "thredfi_active",
    "thredfi_name",
    "to_alpha3",
    "to_catalog_id",
    "to_contact_type",
    "to_country_name",
    "to_metadata",
]
