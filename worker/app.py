"""The Celery app: ``celery -A worker.app worker`` and ``celery -A worker.app beat``.

Celery only schedules and runs: each task calls the same engine the CLI
uses (:mod:`worker.tasks`). Everything comes from the custsync config file
(``$CUSTSYNC_CONFIG``) and the environment (:mod:`worker.settings`), read
once when a worker or beat starts, so a config change takes effect on
restart.

Importing this module reads nothing: Celery's settings are computed the
first time Celery looks at them, so ``celery -A worker.app --help`` works
without a config file, while a worker or beat started without a usable one
stops at once with a message naming the file.

Delivery is at least once, made safe by the engine's idempotent writes and
the pipeline lock:

- late acknowledgement, rejection (requeue) when the worker process dies,
  a prefetch of one, so a message is only gone once its run finished;
- the hard time limit below the broker's visibility timeout, so a message
  is never handed to a second worker while its first run may still be alive
  (the soft limit is 90 % of the hard one);
- beat through celery-redbeat, whose Redis lock lets one beat schedule
  while any other waits.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any

import structlog
from celery import Celery, signals
from kombu.utils.url import maybe_sanitize_url

from worker import metrics
from worker.config import AppConfig, BrokerConfig, ConfigError, load_config
from worker.logging import configure_logging
from worker.schedule import beat_schedule
from worker.settings import Settings, get_settings

#: The queue every custsync task goes to, so custsync can share a Redis.
QUEUE = "custsync"
#: How often beat wakes up at most; its redbeat lock lives six times that,
#: which is how soon a standby beat takes over from one that died.
BEAT_INTERVAL_S = 10
#: Longest wait before a retry; kept below the visibility timeout too.
RETRY_BACKOFF_MAX_S = 600

log = structlog.get_logger("custsync.app")


@lru_cache(maxsize=1)
def service_config() -> AppConfig:
    """The config of this worker or beat process, loaded once.

    Raises:
        ConfigError: no config file, or a wrong one (the message names it).
    """
    settings = get_settings()
    return load_config(settings.config, state_url=settings.state_url, broker_url=settings.broker_url)


def time_limits(settings: Settings) -> tuple[float, float]:
    """The (soft, hard) task time limits, checked against the visibility timeout.

    Raises:
        ConfigError: the hard limit is not below the visibility timeout.
    """
    hard = settings.task_time_limit_s
    if hard >= settings.visibility_timeout_s:
        raise ConfigError(
            f"CUSTSYNC_TASK_TIME_LIMIT_S ({hard}) must be below CUSTSYNC_VISIBILITY_TIMEOUT_S "
            f"({settings.visibility_timeout_s}), or a run still going would be delivered to a second worker"
        )
    return round(hard * 0.9, 3), float(hard)


def retry_backoff_max(settings: Settings) -> int:
    """The longest retry countdown: a waiting retry must not outlive the visibility timeout."""
    return max(1, min(RETRY_BACKOFF_MAX_S, settings.visibility_timeout_s // 2))


def celery_settings(config: AppConfig | None, settings: Settings) -> dict[str, Any]:
    """Celery's settings for a custsync config.

    Args:
        config: the loaded config; ``None`` gives the defaults (no schedule).
        settings: the environment.

    Raises:
        ConfigError: inconsistent time limits, or a schedule beat cannot run.
    """
    broker = config.broker if config is not None else BrokerConfig(url=settings.broker_url or BrokerConfig().url)
    visibility = settings.visibility_timeout_s
    soft, hard = time_limits(settings)
    return {
        "broker_url": broker.url,
        "result_backend": broker.result_backend or broker.url,
        "result_expires": 24 * 3600,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": {
            "visibility_timeout": visibility,
            # Look for messages of dead workers about ten times per visibility timeout.
            "unacked_restore_interval": max(1, min(10, visibility // 10)),
            "unacked_restore_throttle": 1,
        },
        "task_default_queue": QUEUE,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "task_soft_time_limit": soft,
        "task_time_limit": hard,
        "task_track_started": True,
        # Task events for Flower and `celery events`; custsync's own metrics come in addition.
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "timezone": "UTC",
        "enable_utc": True,
        "beat_scheduler": "redbeat.RedBeatScheduler",
        "beat_schedule": beat_schedule(config) if config is not None else {},
        "beat_max_loop_interval": BEAT_INTERVAL_S,
        # Lets `celery inspect ping -d celerybeat@HOST` check beat (the compose health check).
        "beat_enable_remote_control": True,
        "redbeat_redis_url": broker.url,
        "redbeat_key_prefix": "custsync:beat:",
        "redbeat_lock_timeout": BEAT_INTERVAL_S * 6,
    }


def make_app(config: AppConfig | None = None, settings: Settings | None = None) -> Celery:
    """A Celery app for a given config (``backfill --enqueue`` sends through it).

    Args:
        config: the loaded config.
        settings: the environment (default: :func:`get_settings`).
    """
    celery = Celery("custsync", set_as_current=False)
    celery.conf.update(celery_settings(config, settings or get_settings()))
    return celery


def _service_settings() -> dict[str, Any]:
    # Evaluated the first time Celery reads its configuration, not at import.
    settings = get_settings()
    try:
        return celery_settings(service_config(), settings)
    except ConfigError:
        # Reported by _require_config when a worker or beat starts; `--help` must still work.
        return {"broker_url": settings.broker_url or BrokerConfig().url, "task_default_queue": QUEUE}


app = Celery("custsync", include=["worker.tasks"])
app.add_defaults(_service_settings)


def _require_config(sender: Celery | None = None, **_: Any) -> None:
    """Stop a worker or beat at start when the config is missing or wrong."""
    if sender is not app:
        return
    try:
        celery_settings(service_config(), get_settings())
    except ConfigError as exc:
        raise SystemExit(f"custsync: cannot start: {exc}") from None


def _log_schedule(**_: Any) -> None:
    """Say what this beat schedules (it may then wait for another beat's lock)."""
    config = service_config()
    log.info(
        "beat_started",
        config=str(config.path),
        broker=maybe_sanitize_url(config.broker.url),
        scheduled={name: p.schedule for name, p in sorted(config.pipelines.items()) if p.schedule},
    )


def _log_ready(**_: Any) -> None:
    config = service_config()
    log.info(
        "worker_ready",
        config=str(config.path),
        broker=maybe_sanitize_url(config.broker.url),
        state=maybe_sanitize_url(config.state.url),
    )


def _setup_logging(loglevel: int | str | None = None, **_: Any) -> None:
    """Send Celery's own log records through custsync's structlog set-up."""
    settings = get_settings()
    level = logging.getLevelName(loglevel) if isinstance(loglevel, int) else (loglevel or settings.log_level)
    configure_logging(fmt=settings.log_format, level=str(level))
    if metrics.enabled():  # configure_logging replaced the processors: count field_not_stored again
        metrics.install_processor()
    # Every process that opens the store runs its (no-op) migration, which Alembic announces at INFO.
    logging.getLogger("alembic").setLevel(logging.WARNING)


def _start_metrics(**_: Any) -> None:
    """In the worker's parent, before the pool forks: serve Prometheus metrics when a port is set."""
    port = get_settings().metrics_port
    if port is None:
        return
    metrics.prepare_worker(port)
    metrics.serve(port)


def _bind_task(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    """Bind the task id on every log event of the task, Celery's included."""
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(task_id=task_id, task=getattr(task, "name", None))


def _unbind_task(**_: Any) -> None:
    structlog.contextvars.clear_contextvars()


# Connected here rather than by decorator: Celery's decorators are untyped.
signals.import_modules.connect(_require_config)
signals.beat_init.connect(_log_schedule)
signals.worker_ready.connect(_log_ready)
signals.worker_init.connect(_start_metrics)
signals.setup_logging.connect(_setup_logging)
signals.task_prerun.connect(_bind_task)
signals.task_postrun.connect(_unbind_task)


__all__ = ["QUEUE", "app", "celery_settings", "make_app", "retry_backoff_max", "service_config", "time_limits"]
