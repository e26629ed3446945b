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
"""

from __future__ import annotations


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


__all__ = [
    "AuthError",
    "ConnectorError",
    "FatalError",
    "NotFoundError",
    "NotSupportedError",
    "RateLimitedError",
    "RecordError",
    "RejectedError",
    "RetriableError",
]
