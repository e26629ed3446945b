"""The error tree, split by what the caller should do.

::

    ConnectorError
    ├── RetriableError          transient: timeout, connection drop, 5xx; retry with backoff
    │   └── RateLimitedError    429; carries ``retry_after`` seconds when the API sent one
    ├── FatalError              the run cannot go on; reported once, exit code 3
    │   └── AuthError           credentials refused (401/403 after one token renewal)
    ├── RecordError             this record only: quarantine it, the run goes on
    │   ├── RejectedError       the target refused the payload (400/409/422) with a reason
    │   └── NotFoundError       the record is gone from the target (404)
    └── NotSupportedError       the system has no such operation (Timbrix archive)

Messages never include tokens, keys or customer data: they name the
system, the operation, the HTTP status and the vendor's field-level reason.

What a non-2xx answer means is a table of rules (:data:`DEFAULT_ERROR_TABLE`,
status → :class:`ErrorRule`); a rule may also name a body ``code`` (a
Bigcapital business-rule ``type``) that turns the answer into success. The
vendors' error bodies are read by :func:`body_problems` into (vendor field,
message) pairs; no parser reads the values a body echoes back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from connectors import secrets


class ConnectorError(Exception):
    """Base of every error a connector raises."""


class RetriableError(ConnectorError):
    """A transient failure; the same request may succeed later."""


class RateLimitedError(RetriableError):
    """The API answered 429.

    Args:
        message: what happened.
        retry_after: seconds the API asked us to wait, or ``None`` when it
            sent no usable ``Retry-After`` (ordinary backoff applies).
    """

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class FatalError(ConnectorError):
    """The run cannot continue against this system."""


class AuthError(FatalError):
    """Credentials were refused."""


class RecordError(ConnectorError):
    """One record failed permanently; quarantine it and go on.

    Args:
        message: the reason, naming the field where the vendor said which.
        field: the canonical field at fault, when known.
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class RejectedError(RecordError):
    """The target refused the payload (validation, conflict)."""


class NotFoundError(RecordError):
    """The record does not exist (any more) in the system."""


class NotSupportedError(ConnectorError):
    """The system has no such operation."""


class FieldMappingError(ValueError):
    """A vendor record (or a canonical one) cannot be mapped; names the field.

    Args:
        field: the canonical field at fault.
        reason: what is wrong, without the value when it may be personal data.
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class ErrorRule:
    """What an HTTP status means for the caller."""

    error: type[ConnectorError]
    message: str


#: Status → action, after the Airbyte CDK's default error mapping. A connector
#: with odd semantics overrides entries, never the control flow.
DEFAULT_ERROR_TABLE: Mapping[int, ErrorRule] = {
    400: ErrorRule(RejectedError, "rejected the record"),
    401: ErrorRule(AuthError, "refused the credentials"),
    403: ErrorRule(AuthError, "denied access"),
    404: ErrorRule(NotFoundError, "has no such record"),
    405: ErrorRule(NotSupportedError, "does not allow this operation"),
    408: ErrorRule(RetriableError, "timed out"),
    409: ErrorRule(RejectedError, "reported a conflict"),
    422: ErrorRule(RejectedError, "could not process the record"),
    429: ErrorRule(RateLimitedError, "is rate limiting us"),
}
SERVER_ERROR = ErrorRule(RetriableError, "had a server error")
OTHER_CLIENT_ERROR = ErrorRule(RejectedError, "refused the request")


def rule_for(table: Mapping[int, ErrorRule], status: int) -> ErrorRule:
    """The rule of ``status`` in ``table``; any other 5xx is retried, any other 4xx refused."""
    return table.get(status) or (SERVER_ERROR if status >= 500 else OTHER_CLIENT_ERROR)


#: (vendor field or None, message) pairs read from an error body.
Problems = list[tuple[str | None, str]]


def refusal(rule: ErrorRule, head: str, problems: Problems, vendor_fields: Mapping[str, str]) -> ConnectorError:
    """The error of a refused answer: ``head``, then the vendor's reasons by canonical field.

    Messages quote the vendor's reasons, scrubbed of every remembered secret
    (the parsers never read the values of the record); a refusal of
    credentials says nothing but ``head``.
    """
    canonical = [(vendor_fields.get(f, f) if f else None, m) for f, m in problems]
    detail = "; ".join(f"{f}: {m}" if f else m for f, m in canonical)
    message = secrets.scrub(f"{head}: {detail}" if detail else head)
    if issubclass(rule.error, RejectedError | NotFoundError):
        first_field = next((f for f, _ in canonical if f), None)
        return rule.error(message, field=first_field)
    if rule.error is FatalError or issubclass(rule.error, FatalError):
        return rule.error(head)  # a refusal of credentials: nothing else to say
    return rule.error(message)


def body_problems(body: Any) -> Problems:
    """What an error body says, field by field, from any of the four vendors' shapes."""
    if isinstance(body, list):
        listed: Problems = [(None, str(m)) for m in body]
        return listed[:10]
    if not isinstance(body, dict):
        return []
    if isinstance(body.get("details"), dict):  # Thredfi validation
        return field_lists(body["details"])
    message = body.get("message")
    if isinstance(message, list):  # NestJS class-validator: objects, or strings "email must be an email"
        found: Problems = []
        for item in message:
            if isinstance(item, dict):
                found += constraints(item)
            else:
                found.append((str(item).split(" ", 1)[0] or None, str(item)))
        return found[:10]
    if isinstance(body.get("errors"), list):  # Bigcapital business rules
        rules: Problems = [business_rule(e) for e in body["errors"] if isinstance(e, dict)]
        return rules[:10]
    for key in ("detail", "message", "error"):
        if isinstance(body.get(key), str):
            return [(None, body[key])]
    return field_lists(body)  # Django REST: {"name": ["This field is required."]}


def constraints(item: Mapping[str, Any], prefix: str = "") -> Problems:
    """A class-validator error object: its ``property`` and ``constraints`` messages.

    ``target`` (the whole body sent) and ``value`` are the record's personal
    data: they are never read.
    """
    prop = item.get("property")
    name = f"{prefix}{prop}" if isinstance(prop, str | int) and str(prop) else None
    out: Problems = []
    found = item.get("constraints")
    if isinstance(found, dict):
        out += [(name, text) for text in found.values() if isinstance(text, str)]
    children = item.get("children")
    if isinstance(children, list):
        for child in children:
            if isinstance(child, dict):
                out += constraints(child, f"{name}." if name else "")
    return out or [(name, "is invalid")]


def business_rule(error: Mapping[str, Any]) -> tuple[str | None, str]:
    """A Bigcapital business-rule error: its type, and its message when it has one."""
    kind = error.get("type")
    text = error.get("message")
    head = str(kind) if isinstance(kind, str | int) and str(kind) else "ERROR"
    return None, f"{head}: {text}" if isinstance(text, str) and text.strip() else head


def field_lists(fields: Mapping[str, Any], prefix: str = "") -> Problems:
    """A Django REST (or Thredfi ``details``) body: field → list of messages, nested by dots."""
    out: Problems = []
    for key, value in fields.items():
        name = None if key in {"non_field_errors", "__all__"} else f"{prefix}{key}"
        if isinstance(value, list):
            out.extend((name, str(v)) for v in value if not isinstance(v, dict | list))
        elif isinstance(value, dict):
            out.extend(field_lists(value, prefix=f"{prefix}{key}."))
        else:
            out.append((name, str(value)))
    return out[:10]


def error_codes(body: Any) -> list[str]:
    """The ``type`` of each business-rule error: ``{"errors":[{"type": ...}]}``."""
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list):
        return []
    return [str(e.get("type")) for e in errors if isinstance(e, dict)]


__all__ = [
    "DEFAULT_ERROR_TABLE",
    "AuthError",
    "ConnectorError",
    "ErrorRule",
    "FatalError",
    "FieldMappingError",
    "NotFoundError",
    "NotSupportedError",
    "Problems",
    "RateLimitedError",
    "RecordError",
    "RejectedError",
    "RetriableError",
    "body_problems",
    "error_codes",
    "refusal",
    "rule_for",
]
