"""Value checks a target applies before it stores a field, run before any request.

A connector declares them in its ``TargetSpec.checks`` (canonical field → check
name); :meth:`connectors.base.Connector.problems` runs them, so a record the
target would refuse is quarantined without a request. Reasons never carry the
value (it is personal data).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

import phonenumbers
from email_validator import EmailNotValidError, validate_email

#: A check returns ``None`` when the value passes, else what the target needs.
Check = Callable[[str], str | None]


def email(value: str) -> str | None:
    """An e-mail address by syntax (RFC 5322 as ``email-validator`` reads it; no DNS)."""
    try:
        validate_email(value, check_deliverability=False)
    except EmailNotValidError:
        return "a valid e-mail address"
    return None


def phone(value: str) -> str | None:
    """A phone number ``phonenumbers`` can parse: international, or Mexican national form."""
    try:
        parsed = phonenumbers.parse(value, None if value.startswith("+") else "MX")
    except phonenumbers.NumberParseException:
        return "a phone number"
    return None if phonenumbers.is_possible_number(parsed) else "a phone number"


_URL = re.compile(r"https?://[^\s/$.?#][^\s]*\.[^\s]+", re.IGNORECASE)


def url(value: str) -> str | None:
    """An absolute http(s) URL, as Django's ``URLField`` accepts one."""
    return None if _URL.fullmatch(value) else "an absolute http(s) URL"


CHECKS: Mapping[str, Check] = {"email": email, "phone": phone, "url": url}
"""Every check by the name a ``TargetSpec.checks`` entry uses."""


__all__ = ["CHECKS", "Check", "email", "phone", "url"]
