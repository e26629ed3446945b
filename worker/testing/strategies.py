"""Hypothesis strategies of canonical customers a system can take, for the contract's property test.

:func:`customers` draws every canonical field, so that ``shape`` has something
to fold, default or drop, and fits the values to what the connector declares:
``spec.required`` fields are always set, text stays within ``spec.limits`` and
``spec.basic_plane``, a field with a ``spec.formats`` pattern is drawn from it,
e-mails, websites, phones, countries and currencies are drawn valid. Text is
canonical: words of letters, digits, punctuation and symbols (emoji included
where the plane allows) joined by single spaces, never empty, never padded.

What a spec cannot say (a catalog the vendor checks against, a field that
depends on another) comes from per-system values: :data:`SYSTEM_VALUES` for
the systems custsync ships, or ``values`` given to
:func:`worker.testing.contract_test_class` by a plug-in. A value is a strategy,
or a function of the connector and the values drawn so far that returns one
(those are drawn last).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Mapping
from typing import Any

import pycountry
from hypothesis import strategies as st

from connectors.base import Connector
from connectors.checks import CHECKS
from connectors.model import CANONICAL_FIELDS, Customer
from connectors.systems.piriod import rut

Strategy = st.SearchStrategy[Any]
#: a field's values: a strategy, or one made from the connector and the values drawn before it.
Values = Strategy | Callable[[Connector, Mapping[str, Any]], Strategy]

_COUNTRIES = sorted(str(c.alpha_2) for c in pycountry.countries)
_CURRENCIES = sorted(str(c.alpha_3) for c in pycountry.currencies)
#: fields whose meaning is a closed list, drawn from it whatever format the spec gives.
_CATALOGS = frozenset({"country", "currency", "email", "website", "phone", "mobile"})
_TLDS = ("com", "org", "net", "example", "cl", "mx", "co.uk", "com.mx")
#: what share of optional fields is drawn empty: often enough to see nulls travel, not so often that
#: the systems' cross-field rules (Piriod's tax id for Chileans) reject many customers.
_EMPTY_ONE_IN = 5


def words(limit: int | None, *, basic_plane: bool, max_words: int = 4) -> st.SearchStrategy[str]:
    """Canonical text: 1..``max_words`` words joined by single spaces, at most ``limit`` characters."""
    alphabet = st.characters(categories=("L", "N", "P", "S"), max_codepoint=0xFFFF if basic_plane else None)
    word = st.text(alphabet, min_size=1, max_size=10)
    found = st.lists(word, min_size=1, max_size=max_words).map(" ".join)
    # A word never starts or ends with what str.strip() removes; categories L/N/P/S hold none of it.
    found = found.filter(lambda text: text == text.strip())
    return found if limit is None else found.map(lambda text: text[:limit].rstrip() or "x")


def emails() -> st.SearchStrategy[str]:
    """Addresses every system's check accepts: ASCII local part and domain, a real-looking TLD."""
    local = st.from_regex(r"[a-z0-9]([a-z0-9_+-]{0,8}[a-z0-9])?(\.[a-z0-9]{1,6})?", fullmatch=True)
    domain = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)
    found = st.builds(lambda user, host, tld: f"{user}@{host}.{tld}", local, domain, st.sampled_from(_TLDS))
    return found.filter(lambda address: CHECKS["email"](address) is None)


def websites() -> st.SearchStrategy[str]:
    """Absolute http(s) URLs, with or without a path."""
    host = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
    path = st.from_regex(r"(/[a-z0-9-]{1,8}){0,2}/?", fullmatch=True)
    scheme = st.sampled_from(("https", "http"))
    found = st.builds(lambda s, h, t, p: f"{s}://{h}.{t}{p}", scheme, host, st.sampled_from(_TLDS), path)
    return found.filter(lambda url: CHECKS["url"](url) is None)


def phones() -> st.SearchStrategy[str]:
    """International numbers, grouped or not, at most 16 characters."""
    return st.from_regex(r"\+[1-9][0-9]{1,2}( ?[0-9]{2,4}){2,3}", fullmatch=True).filter(lambda p: len(p) <= 16)


def _semantic(name: str, limit: int | None, basic_plane: bool) -> Strategy | None:
    """The canonical meaning of a field, where it has one beyond text."""
    found: dict[str, Strategy] = {
        "email": emails(),
        "website": websites(),
        "phone": phones(),
        "mobile": phones(),
        "country": st.sampled_from(_COUNTRIES),
        "currency": st.sampled_from(_CURRENCIES),
        "postal_code": st.from_regex(r"[A-Z0-9]{2,5}([ -][A-Z0-9]{2,4})?", fullmatch=True),
        "tax_id": st.from_regex(r"[A-Z0-9]{2,10}([.-][A-Z0-9]{1,8}){0,2}", fullmatch=True),
        "notes": words(limit, basic_plane=basic_plane, max_words=8),
    }
    return found.get(name)


def field_values(connector: Connector, name: str) -> Strategy:
    """What a field of ``connector``'s system may hold, by its meaning and the spec's format and limit."""
    spec = connector.spec
    limit, basic_plane = spec.limits.get(name), name in spec.basic_plane
    # A format says more than a field's meaning (Timbrix's RFC, its 5-digit postcode), except where the
    # meaning is a catalog the format only outlines (a country is two capitals, not any two).
    if name in spec.formats and name not in _CATALOGS:
        found: Strategy | None = st.from_regex(spec.formats[name][0], fullmatch=True)
    else:
        found = _semantic(name, limit, basic_plane)
    if found is None:
        found = words(limit, basic_plane=basic_plane)
    return found if limit is None else found.filter(lambda value: len(value) <= limit)


def customers(connector: Connector, values: Mapping[str, Values] | None = None) -> st.SearchStrategy[Customer]:
    """Canonical customers for ``connector``'s system: every field drawn, required ones always set.

    Args:
        connector: the system's connector (its spec, and its settings for ``values`` functions).
        values: per-field values that replace the drawn ones (see the module doc).
    """
    values = dict(values or {})
    required = connector.spec.required | {"name"}
    plain = [f for f in CANONICAL_FIELDS if f not in ("kind", "active") and not callable(values.get(f))]
    later = [f for f in CANONICAL_FIELDS if callable(values.get(f))]

    @st.composite
    def draw_customer(draw: st.DrawFn) -> Customer:
        got: dict[str, Any] = {"kind": draw(st.sampled_from(("company", "individual")))}
        for name in [*plain, *later]:
            given = values.get(name)
            strategy = field_values(connector, name) if given is None else given
            if callable(strategy) and not isinstance(strategy, st.SearchStrategy):
                strategy = strategy(connector, got)
            # Empty at the far end of the range: hypothesis's simplest examples then hold every field.
            empty = name not in required and draw(st.integers(1, _EMPTY_ONE_IN)) == _EMPTY_ONE_IN
            got[name] = None if empty else draw(strategy)
        return Customer(**got)

    return draw_customer()


def spellings(names: tuple[str, ...]) -> st.SearchStrategy[str]:
    """A catalog name as a user may type it: as the catalog spells it, in lower case, or without accents."""

    def unaccented(name: str) -> str:
        return "".join(c for c in unicodedata.normalize("NFKD", name) if not unicodedata.combining(c))

    spelled = st.sampled_from((str, str.lower, str.upper, unaccented))
    return st.builds(lambda name, spell: spell(name), st.sampled_from(names), spelled)


# -- the systems custsync ships -----------------------------------------------------------------

#: Some of Piriod's states (regions) by country, as its catalog names them.
PIRIOD_STATES: Mapping[str, tuple[str, ...]] = {
    "CL": (
        "Región Metropolitana de Santiago",
        "Valparaíso",
        "Biobío",
        "Ñuble",
        "Libertador General Bernardo O'Higgins",
    ),
    "MX": ("Ciudad de México", "Jalisco", "Nuevo León", "Querétaro", "Yucatán"),
    "US": ("Texas", "California", "New York", "District of Columbia"),
    "GB": ("England", "Scotland", "Wales", "Northern Ireland"),
}
#: SAT's catalogs: régimen fiscal (c_RegimenFiscal) and uso CFDI (c_UsoCFDI), the common entries.
SAT_TAX_SYSTEMS = ("601", "603", "605", "606", "612", "616", "621", "626")
SAT_INVOICE_USES = ("G01", "G02", "G03", "I01", "I04", "D01", "S01", "CP01")


def _piriod_state(connector: Connector, got: Mapping[str, Any]) -> Strategy:
    """A state of the customer's country (the account's when it has none), in any spelling; none without one."""
    country = got.get("country") or getattr(connector.settings, "account_country", None)
    names = PIRIOD_STATES.get(str(country))
    return st.none() if names is None else spellings(names)


def _piriod_tax_id(connector: Connector, got: Mapping[str, Any]) -> Strategy:
    """A RUT for a customer of a Chilean account's own country (Piriod requires one), else any tax id."""
    country = got.get("country") or getattr(connector.settings, "account_country", None)
    if country == "CL" == getattr(connector.settings, "account_country", None):
        return st.integers(1_000_000, 99_999_999).map(rut)
    return field_values(connector, "tax_id")


def _piriod_country() -> Strategy:
    # Mostly countries of the states catalog, so that the state is exercised; any other now and then.
    return st.one_of(st.sampled_from(sorted(PIRIOD_STATES)), st.sampled_from(_COUNTRIES))


SYSTEM_VALUES: Mapping[str, Mapping[str, Values]] = {
    "piriod": {"country": _piriod_country(), "state": _piriod_state, "tax_id": _piriod_tax_id},
    "timbrix": {"tax_system": st.sampled_from(SAT_TAX_SYSTEMS), "invoice_use": st.sampled_from(SAT_INVOICE_USES)},
}


__all__ = [
    "PIRIOD_STATES",
    "SAT_INVOICE_USES",
    "SAT_TAX_SYSTEMS",
    "SYSTEM_VALUES",
    "Values",
    "customers",
    "emails",
    "field_values",
    "phones",
    "spellings",
    "websites",
    "words",
]
