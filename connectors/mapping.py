"""Conversions every connector shares: countries, name parts, text limits.

Countries go through pycountry so that "United States", "USA", "US" and
"Estados Unidos"-style aliases we list converge on one ISO alpha-2 code;
a value that matches nothing is a :class:`FieldMappingError` on
``country``, never a guess.
"""

from __future__ import annotations

from functools import lru_cache

import pycountry

from connectors.errors import FieldMappingError
from connectors.model import clean

# Names people type that pycountry does not know.
_ALIASES = {
    "UK": "GB",
    "U.K.": "GB",
    "GREAT BRITAIN": "GB",
    "ENGLAND": "GB",
    "SCOTLAND": "GB",
    "WALES": "GB",
    "NORTHERN IRELAND": "GB",
    "BRITAIN": "GB",
    "U.S.": "US",
    "U.S.A.": "US",
    "UNITED STATES OF AMERICA": "US",
    "ESTADOS UNIDOS": "US",
    "MÉXICO": "MX",
    "MEXICO": "MX",
    "ESTADOS UNIDOS MEXICANOS": "MX",
}


@lru_cache(maxsize=1024)
def _lookup(value: str) -> str | None:
    upper = value.strip().upper()
    if upper in _ALIASES:
        return _ALIASES[upper]
    try:
        return str(pycountry.countries.lookup(value.strip()).alpha_2)
    except LookupError:
        return None


def country_alpha2(value: object, *, system: str) -> str | None:
    """Any country spelling (name, alpha-2, alpha-3) → ISO alpha-2.

    Args:
        value: what the vendor holds.
        system: the system it came from, for the error message.

    Returns:
        The alpha-2 code, or ``None`` when the value is empty.

    Raises:
        FieldMappingError: the value names no country.
    """
    text = clean(value)
    if text is None:
        return None
    code = _lookup(text)
    if code is None:
        raise FieldMappingError("country", f"{system} holds a country that is not an ISO 3166 country")
    return code


def country_name(alpha2: str) -> str:
    """ISO alpha-2 → the English short name ("United States", "United Kingdom")."""
    country = pycountry.countries.get(alpha_2=alpha2)
    if country is None:
        raise FieldMappingError("country", "not an ISO 3166-1 alpha-2 code")
    return str(getattr(country, "common_name", None) or country.name) if alpha2 not in _PLAIN else _PLAIN[alpha2]


# pycountry's official-ish names that Bigcapital users would not type.
_PLAIN = {"GB": "United Kingdom", "US": "United States", "MX": "Mexico", "CL": "Chile"}


def country_alpha3(alpha2: str) -> str:
    """ISO alpha-2 → alpha-3 (``MX`` → ``MEX``)."""
    country = pycountry.countries.get(alpha_2=alpha2)
    if country is None:
        raise FieldMappingError("country", "not an ISO 3166-1 alpha-2 code")
    return str(country.alpha_3)


def split_name(full: str | None) -> tuple[str | None, str | None]:
    """Split a person's single name field into (first, last) at the first space.

    "María José García" gives ("María", "José García"): a Spanish double
    surname is safer kept whole than split wrongly.
    """
    text = clean(full)
    if text is None:
        return None, None
    first, _, rest = text.partition(" ")
    return first, clean(rest)


def join_name(first: str | None, last: str | None) -> str | None:
    """Join name parts, skipping empty ones."""
    return clean(" ".join(p for p in (clean(first), clean(last)) if p))


__all__ = ["country_alpha2", "country_alpha3", "country_name", "join_name", "split_name"]
