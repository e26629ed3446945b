"""What a system can hold (:class:`TargetSpec`), and what follows from it.

:func:`shape` is the customer as the system will hold it (what gets
fingerprinted); :func:`problems` says, field by field, why the system cannot
take a shaped customer, before any request is sent.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from connectors.checks import CHECKS
from connectors.fields import LOSSY
from connectors.model import CANONICAL_FIELDS, Customer, FieldProblem, updated

#: Fields every system holds in some form, kept by :func:`shape` whatever ``fields`` says.
ALWAYS_KEPT = frozenset({"kind", "name", "active"})


@dataclass(frozen=True)
class TargetSpec:
    """What a system can hold, declared by its connector.

    Attributes:
        fields: canonical fields the system keeps (a round trip preserves them).
        required: canonical fields a create needs.
        limits: maximum length of canonical text fields.
        identity_slot: the system stores our external_id and finds a record by it.
        archive: the system has an archived / inactive state.
        natural_keys: canonical fields usable to find a record again
            (``match_on``) when there is no identity slot.
        checks: canonical field → name of a value check in
            :data:`connectors.checks.CHECKS` (``email``, ``phone``, ``url``) the
            system applies before it stores the field.
        basic_plane: see below.
        lossy: see below.
    """

    fields: frozenset[str]
    required: frozenset[str] = frozenset({"name"})
    limits: Mapping[str, int] = field(default_factory=dict)
    identity_slot: bool = False
    archive: bool = True
    natural_keys: tuple[str, ...] = ("tax_id", "email")
    formats: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    """canonical field → (regular expression it must match fully, what it means)."""
    checks: Mapping[str, str] = field(default_factory=dict)
    basic_plane: frozenset[str] = frozenset()
    """canonical fields that hold only characters of the Basic Multilingual Plane (no emoji)."""
    lossy: Mapping[str, str] = field(default_factory=dict)
    """canonical field → how it round-trips where not exactly: ``folded``, ``derived`` or ``constant``.

    A field kept (in ``fields``, or ``kind`` / ``name``, which every system holds) and
    not named here is *exact*: shape → write → read → shape gives back the value that
    went in, for any customer the system can take (the contract suite's property test
    proves it). The others (:data:`connectors.fields.RoundTrip`):

    - ``folded``: the system's value mixes in another canonical field (Piriod's
      ``address_line1`` holds line 2 too; Thredfi's and Timbrix's ``company_name``
      is the name). In a two-way pair it is never written from this system into
      another one on update;
    - ``derived``: the system renders it from parts it keeps (Timbrix's street line
      from street and numbers, its city written as the municipality too; Piriod's
      state as its catalog spells it): faithful, not byte-exact, stable once
      rendered. It may flow;
    - ``constant``: the system reads the same value whatever was written (Piriod
      reads every customer as a company). It never flows out on update.

    A connector with a field table passes ``lossy=FIELDS.lossy``; a field not kept at
    all (Bigcapital's ``postal_code``) is simply not in ``fields``.
    """

    def __post_init__(self) -> None:
        # A misspelt check would silently let refused values through: fail at import instead.
        if unknown := sorted(set(self.checks.values()) - set(CHECKS)):
            raise ValueError(f"unknown value checks {unknown} (known: {sorted(CHECKS)})")
        if strays := sorted(set(self.lossy) - self.fields - {"kind", "name"}):
            raise ValueError(f"lossy names fields the system does not keep: {strays}")
        if unknown := sorted(set(self.lossy.values()) - LOSSY):
            raise ValueError(f"unknown round trips {unknown} (lossy ones: {sorted(LOSSY)})")

    @property
    def exact(self) -> frozenset[str]:
        """The fields a round trip gives back unchanged: those kept, ``kind`` and ``name``, minus :attr:`lossy`."""
        return (self.fields | {"kind", "name"}) - set(self.lossy)

    @property
    def flows_out(self) -> frozenset[str]:
        """The fields whose value this system may write into another one on update (a two-way pair).

        Those kept, ``kind`` and ``name``, minus the ``folded`` and ``constant`` ones: exact and
        derived values flow; a folded one would carry another field into the other system, a
        constant one would overwrite whatever the other system holds with the same value.
        """
        stuck = {name for name, how in self.lossy.items() if how in ("folded", "constant")}
        return (self.fields | {"kind", "name"}) - stuck


def shape(spec: TargetSpec, customer: Customer, *, truncate: bool = False) -> Customer:
    """Fields ``spec`` does not keep become ``None``; with ``truncate``, over-long text is cut.

    A customer already so shaped is returned as it is (it is frozen): shaping again makes no copy.
    """
    changes: dict[str, Any] = {f: None for f in _dropped(spec.fields) if getattr(customer, f) is not None}
    if truncate:
        for name, limit in spec.limits.items():
            value = changes.get(name, getattr(customer, name))
            if isinstance(value, str) and len(value) > limit:
                changes[name] = value[:limit].rstrip()
    return updated(customer, changes)


@functools.cache
def _dropped(kept: frozenset[str]) -> tuple[str, ...]:
    """The canonical fields a system keeping ``kept`` does not hold."""
    return tuple(f for f in CANONICAL_FIELDS if f not in kept | ALWAYS_KEPT)


def problems(spec: TargetSpec, system: str, shaped: Customer) -> list[FieldProblem]:
    """Why ``system`` cannot take ``shaped``: ``required``, ``limits``, ``formats``, ``checks``."""
    found: list[FieldProblem] = []
    for name in sorted(spec.required):
        if getattr(shaped, name) in (None, ""):
            found.append(FieldProblem(name, f"required by {system}, missing in the source record"))
    for name, limit in sorted(spec.limits.items()):
        value = getattr(shaped, name)
        if isinstance(value, str) and len(value) > limit:
            found.append(FieldProblem(name, f"{len(value)} characters, {system} keeps at most {limit}"))
    for name, (pattern, meaning) in sorted(spec.formats.items()):
        value = getattr(shaped, name)
        if isinstance(value, str) and re.fullmatch(pattern, value) is None:
            found.append(FieldProblem(name, f"{system} needs {meaning}"))
    for name, check in sorted(spec.checks.items()):
        value = getattr(shaped, name)
        if isinstance(value, str) and value and (needs := CHECKS[check](value)) is not None:
            found.append(FieldProblem(name, f"{system} needs {needs}"))
    for name in sorted(spec.basic_plane):
        if isinstance(value := getattr(shaped, name), str) and any(ord(char) > 0xFFFF for char in value):
            found.append(FieldProblem(name, f"holds characters {system} cannot store (emoji or others beyond U+FFFF)"))
    return found


def in_canonical_order(found: list[FieldProblem]) -> list[FieldProblem]:
    """The problems in canonical order, so the first named is the most basic field (name before company_name)."""
    order = {name: n for n, name in enumerate(CANONICAL_FIELDS)}
    return sorted(found, key=lambda p: order.get(p.field, len(order)))


__all__ = ["ALWAYS_KEPT", "TargetSpec", "in_canonical_order", "problems", "shape"]
