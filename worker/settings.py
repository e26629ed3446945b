"""The process environment, read once into a frozen, typed settings object.

No other module reads ``os.environ``: what the environment can change is
listed here, with its variable name.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """custsync's environment variables (all prefixed ``CUSTSYNC_``).

    Attributes:
        config: path of the config file (``CUSTSYNC_CONFIG``).
        state_url: overrides ``[state] url`` (``CUSTSYNC_STATE_URL``).
        broker_url: overrides ``[broker] url`` (``CUSTSYNC_BROKER_URL``).
        log_format: ``json``, ``console`` or ``auto`` (JSON unless stderr is a terminal).
        log_level: the minimum level logged.
        lock_ttl_s: expiry of a pipeline's run lock (``CUSTSYNC_LOCK_TTL_S``);
            renewed every third of it while the run is alive, so a crashed
            holder's lock frees itself within this time.
        visibility_timeout_s: Redis broker visibility timeout
            (``CUSTSYNC_VISIBILITY_TIMEOUT_S``): a task taken by a worker that
            died is delivered again after this long.
        task_time_limit_s: hard time limit of a run task
            (``CUSTSYNC_TASK_TIME_LIMIT_S``); must stay below the visibility
            timeout. The soft limit is 90 % of it.
        metrics_port: serve Prometheus metrics on this port from each worker
            (``CUSTSYNC_METRICS_PORT``); unset: no metrics server.
    """

    model_config = SettingsConfigDict(env_prefix="CUSTSYNC_", frozen=True, extra="ignore")

    config: Path = Path("custsync.toml")
    state_url: str | None = None
    broker_url: str | None = None
    log_format: str = "auto"
    log_level: str = "info"
    lock_ttl_s: float = Field(default=30.0, gt=0)
    visibility_timeout_s: int = Field(default=3600, gt=0)
    task_time_limit_s: int = Field(default=3000, gt=0)
    metrics_port: int | None = Field(default=None, ge=1, le=65535)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings, read from the environment on first use."""
    return Settings()


__all__ = ["Settings", "get_settings"]
