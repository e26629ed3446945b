"""What every connection accepts, and the helpers that read settings safely.

Secrets are ``SecretStr`` in each system's settings so that no repr, log line
or error message can show them; :func:`secret_values` lists them for
:mod:`connectors.secrets` to mask, and :func:`masked_url` is the base URL as a
message may show it.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from connectors import secrets
from connectors.errors import FatalError


class ConnectionSettings(BaseModel):
    """What every connection accepts; each system adds its credentials.

    Secrets are ``SecretStr`` in the subclasses so that no repr, log line or
    error message can show them.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    system: str
    base_url: str
    max_concurrency: int = Field(default=16, ge=1, le=512)
    requests_per_second: float | None = Field(default=None, gt=0)
    timeout_s: float = Field(default=30.0, gt=0)
    retry_attempts: int = Field(default=8, ge=1, le=50)
    retry_timeout_s: float = Field(default=300.0, gt=0)


def secret_values(settings: BaseModel) -> list[str]:
    """The values of a connection's ``SecretStr`` settings, and a password in its base URL."""
    values = [v.get_secret_value() for v in (getattr(settings, n) for n in type(settings).model_fields)
              if isinstance(v, SecretStr)]  # fmt: skip
    password = urlsplit(str(getattr(settings, "base_url", ""))).password
    return [*values, *([password] if password else [])]


def masked_url(url: str) -> str:
    """``url`` without a password, query or fragment (they may hold credentials)."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        netloc = f"{parts.username or ''}:{secrets.MASK}@{netloc.rsplit('@', 1)[1]}"
    return secrets.scrub(f"{parts.scheme}://{netloc}{parts.path}" if parts.scheme else url.split("?", 1)[0])


def refuse_unusable(settings: ConnectionSettings, where: str) -> None:
    """Fail at once on a base URL httpx cannot use or an empty credential, instead of retrying.

    Raises:
        FatalError: naming ``where`` (the connection) and the setting at fault.
    """
    parts = urlsplit(settings.base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FatalError(
            f"{where}: base_url {masked_url(settings.base_url)} is not an http(s) URL with a host "
            "(e.g. https://api.example.com)"
        )
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr) and not value.get_secret_value().strip():
            raise FatalError(f"{where}: {name} is empty (an unset environment variable?)")


def host_of(url: str) -> str:
    """The host (and port) of a base URL, as a tenant of last resort."""
    return urlsplit(url).netloc or url


__all__ = ["ConnectionSettings", "host_of", "masked_url", "refuse_unusable", "secret_values"]
