"""The process environment, read once into a frozen, typed settings object.

No other module reads ``os.environ``: what the environment can change is
listed here, with its variable name.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """custsync's environment variables (all prefixed ``CUSTSYNC_``).

    Attributes:
        config: path of the config file (``CUSTSYNC_CONFIG``).
        state_url: overrides ``[state] url`` (``CUSTSYNC_STATE_URL``).
        broker_url: overrides ``[broker] url`` (``CUSTSYNC_BROKER_URL``).
        log_format: ``json``, ``console`` or ``auto`` (JSON unless stderr is a terminal).
        log_level: the minimum level logged.
        crash_at: test seam for kill tests: ``write:N`` or ``commit:N`` makes
            the engine SIGKILL its own process at that point.
    """

    model_config = SettingsConfigDict(env_prefix="CUSTSYNC_", frozen=True, extra="ignore")

    config: Path = Path("custsync.toml")
    state_url: str | None = None
    broker_url: str | None = None
    log_format: str = "auto"
    log_level: str = "info"
    crash_at: str | None = None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings, read from the environment on first use."""
    return Settings()


__all__ = ["Settings", "get_settings"]
