"""The canonical customer every connector maps to and from.

Field names are user-facing (product.md): they appear in pipeline
``defaults``, dry-run diffs and quarantine reasons, so they never change
without the README and product contract changing with them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import orjson
from pydantic import BaseModel, ConfigDict

Kind = Literal["company", "individual"]


class Customer(BaseModel):
    """One customer in the canonical shape.

    Every optional field is ``None`` when the source does not hold it; empty
    strings are normalised to ``None`` by :func:`clean` so that "missing" has
    exactly one spelling and fingerprints stay stable.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Kind = "company"
    name: str
    company_name: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    phone: str | None = None
    mobile: str | None = None
    website: str | None = None
    address_line1: str | None = None
    address_line2: str | None = None
    city: str | None = None
    state: str | None = None
    postal_code: str | None = None
    country: str | None = None
    tax_id: str | None = None
    tax_system: str | None = None
    invoice_use: str | None = None
    currency: str | None = None
    notes: str | None = None
    active: bool = True


CANONICAL_FIELDS: tuple[str, ...] = tuple(Customer.model_fields)
"""Every canonical field name, in declaration order."""

TEXT_FIELDS: tuple[str, ...] = tuple(f for f in CANONICAL_FIELDS if f not in {"kind", "active"})


class NotTextError(ValueError):
    """A vendor sent a JSON object or array where a canonical text field was expected.

    Args:
        field: the canonical field at fault.
        kind: ``object`` or ``array``.
    """

    def __init__(self, field: str, kind: str) -> None:
        super().__init__(f"{field}: holds a JSON {kind}, not text")
        self.field = field
        self.kind = kind


def clean(value: object, field: str | None = None) -> str | None:
    """Normalise a vendor string: strip it, and turn empty into ``None``.

    Args:
        value: whatever the vendor sent (``None``, a string, a number).
        field: the canonical field it is read into; given, a JSON object or
            array is refused instead of being written on as its Python repr.

    Returns:
        The stripped string, or ``None`` when nothing is left.

    Raises:
        NotTextError: ``field`` is given and ``value`` is an object or an array.
    """
    if value is None:
        return None
    if field is not None and isinstance(value, dict | list):
        raise NotTextError(field, "object" if isinstance(value, dict) else "array")
    text = str(value).strip()
    return text or None


def updated(customer: Customer, changes: Mapping[str, object]) -> Customer:
    """``customer`` with ``changes``; the customer itself (frozen) when it holds them already, so that
    shaping a shaped record again makes no copy."""
    if all(getattr(customer, name) == value for name, value in changes.items()):
        return customer
    return customer.model_copy(update=changes)


#: ``json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))``, one encoder for every call:
#: what a fingerprint hashes. orjson writes the same bytes for the values a customer holds (text, ``None``,
#: keys inserted in order) ten times faster; ``tests/test_fingerprint_bytes.py`` holds it to that, code point
#: by code point. What orjson refuses (a lone surrogate, another type) goes through this one, as before;
#: :func:`text_json` is the same for one string.
_FINGERPRINTED = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode


#: the value types orjson writes as the stdlib does.
_TEXT = frozenset({str, type(None)})


def canonical_json(payload: Mapping[str, object]) -> bytes:
    """``payload`` as the bytes a fingerprint hashes: :data:`_FINGERPRINTED`'s, UTF-8 (keys sorted)."""
    if _TEXT.issuperset(map(type, payload.values())):
        try:
            return orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:  # a lone surrogate (or a key that is not text): the stdlib's path
            pass
    return _FINGERPRINTED(payload).encode("utf-8")


def text_json(value: str) -> bytes:
    """A string as JSON, UTF-8, as ``json.dumps(value, ensure_ascii=False)`` writes it (what value hashes hash)."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:  # a lone surrogate: the stdlib's path, and its error, as before
        return json.encoder.encode_basestring(value).encode("utf-8")


def fingerprint(customer: Customer, fields: Iterable[str]) -> str:
    """Hash the given fields of a customer; equal hashes mean nothing to push.

    ``active`` is never part of a fingerprint: (in)activation is its own
    write in most systems and is diffed separately.

    Args:
        customer: the customer as mapped for the target.
        fields: the canonical fields the target keeps.

    Returns:
        A hex SHA-256 digest, stable across processes and Python versions.
    """
    values = customer.__dict__  # a pydantic model's field values
    payload = {name: values[name] for name in fields if name != "active"}
    return hashlib.sha256(canonical_json(payload)).hexdigest()


@dataclass(frozen=True)
class FieldProblem:
    """Why one record cannot go through, naming the canonical field."""

    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


@dataclass(frozen=True)
class RemoteCustomer:
    """One customer as read from a system.

    Attributes:
        id: the system's own id for the record, as a string.
        customer: the canonical customer, or ``None`` when mapping failed.
        problem: why mapping failed (``customer`` is then ``None``).
        external_id: the identity the system holds for the record in its own
            slot (Thredfi ``external_id``, Piriod ``reference``/``metadata``),
            when there is one.
        updated_at: the system's last-modified time, when it sends one.
    """

    id: str
    customer: Customer | None
    problem: FieldProblem | None = None
    external_id: str | None = None
    updated_at: datetime | None = None
    created_at: datetime | None = field(default=None, compare=False)


__all__ = [
    "CANONICAL_FIELDS",
    "TEXT_FIELDS",
    "Customer",
    "FieldProblem",
    "Kind",
    "NotTextError",
    "RemoteCustomer",
    "canonical_json",
    "clean",
    "fingerprint",
    "text_json",
    "updated",
]
