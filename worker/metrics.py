"""Prometheus metrics of the worker, served on an opt-in port (``CUSTSYNC_METRICS_PORT``).

What is measured, and where it comes from (never from inside the engine):

- runs by pipeline and status, records by outcome, run duration, the
  quarantine's size and the time of the last successful run: from each
  run's result, in the task layer (:func:`observe_run`);
- 429 answers that were retried: a stamina on-retry hook, which sees every
  ``RateLimitedError`` the connectors' request loop retries;
- values a target did not store as sent: a structlog processor that counts
  the engine's ``field_not_stored`` events by pipeline and field.

Celery's prefork pool runs tasks in child processes. When the port is set,
:func:`prepare_worker` (called in the parent, before the pool forks) points
``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory unless one is given, so
every child writes its samples there and the parent serves their sum.
``prometheus_client`` is imported only once metrics are enabled, because it
chooses its storage when first imported.

Celery's own task events (``worker_send_task_events``, what Flower shows)
are left as they are: these metrics come in addition.

The worker also leaves, per pipeline, the host name of the worker that ran
it last in Redis (:func:`record_last_worker`), for ``custsync status``.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import time
from collections.abc import MutableMapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import structlog
from redis.exceptions import RedisError

log = structlog.get_logger("custsync.metrics")

#: Run durations worth telling apart: seconds to the task's hard time limit (3000 s by default).
DURATION_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 3000.0)
OUTCOMES = ("pulled", "created", "updated", "archived", "unchanged", "failed")
LAST_WORKER_KEY = "custsync:last_worker:"

_enabled = False


@dataclass(frozen=True)
class Metrics:
    """The metric families (``prometheus_client`` objects)."""

    runs: Any
    records: Any
    duration: Any
    quarantined: Any
    last_success: Any
    rate_limited: Any
    field_not_stored: Any


@lru_cache(maxsize=1)
def metrics() -> Metrics:
    """The metric families, created on first use in the default registry."""
    from prometheus_client import Counter, Gauge, Histogram

    return Metrics(
        runs=Counter("custsync_runs", "Runs by pipeline and final status.", ["pipeline", "status"]),
        records=Counter("custsync_records", "Source records by pipeline and outcome.", ["pipeline", "outcome"]),
        duration=Histogram(
            "custsync_run_duration_seconds", "Duration of a run.", ["pipeline"], buckets=DURATION_BUCKETS
        ),
        quarantined=Gauge(
            "custsync_quarantined_records",
            "Records in quarantine after the pipeline's last run.",
            ["pipeline"],
            multiprocess_mode="mostrecent",
        ),
        last_success=Gauge(
            "custsync_last_success_timestamp_seconds",
            "Unix time of the pipeline's last run that finished succeeded or partial.",
            ["pipeline"],
            multiprocess_mode="mostrecent",
        ),
        rate_limited=Counter("custsync_rate_limited", "429 answers retried by a connector, by system.", ["system"]),
        field_not_stored=Counter(
            "custsync_field_not_stored",
            "Values a target did not store as sent (field_not_stored events), by pipeline and field.",
            ["pipeline", "field"],
        ),
    )


def enabled() -> bool:
    """Whether this process records metrics."""
    return _enabled


def enable() -> None:
    """Record metrics in this process: the stamina hook and the structlog processor start counting."""
    global _enabled
    if _enabled:
        return
    _enabled = True
    metrics()
    import stamina.instrumentation

    hooks = list(stamina.instrumentation.get_on_retry_hooks())
    stamina.instrumentation.set_on_retry_hooks([*hooks, _on_retry])
    install_processor()


def install_processor() -> None:
    """Put :func:`count_events` first in structlog's processors (again after a logging set-up)."""
    processors = list(structlog.get_config()["processors"])
    if count_events not in processors:
        structlog.configure(processors=[count_events, *processors])


def prepare_worker(port: int | None) -> None:
    """In a worker's parent process, before its pool forks: multiprocess storage, then enable.

    Args:
        port: the metrics port; ``None`` leaves metrics off.
    """
    if port is None:
        return
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Read by prometheus_client when first imported, in this process and in the forked children.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="custsync-metrics-")
    enable()


def serve(port: int, *, host: str = "0.0.0.0") -> Any:  # noqa: S104 - scraped from another host or container
    """Serve ``/metrics`` on ``port`` from a thread; return the server.

    In multiprocess mode (``PROMETHEUS_MULTIPROC_DIR`` set) it serves the sum of
    every process's samples; otherwise this process's registry.
    """
    from prometheus_client import REGISTRY, CollectorRegistry, start_http_server

    registry: Any = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    server, _thread = start_http_server(port, addr=host, registry=registry)
    log.info("metrics_serving", port=port, multiprocess=registry is not REGISTRY)
    return server


def observe_run(summary: MutableMapping[str, Any] | dict[str, Any], *, quarantined: int | None) -> None:
    """Count one finished run from its summary (``RunResult.summary()``).

    Args:
        summary: the run's summary: ``pipeline``, ``status``, the counts, ``duration_s``.
        quarantined: the pipeline's quarantine size after the run, when known.
    """
    if not _enabled:
        return
    m = metrics()
    pipeline, status = str(summary["pipeline"]), str(summary["status"])
    m.runs.labels(pipeline=pipeline, status=status).inc()
    if status == "skipped":
        return
    for outcome in OUTCOMES:
        value = int(summary.get(outcome) or 0)
        if value:
            m.records.labels(pipeline=pipeline, outcome=outcome).inc(value)
    m.duration.labels(pipeline=pipeline).observe(float(summary.get("duration_s") or 0.0))
    if quarantined is not None:
        m.quarantined.labels(pipeline=pipeline).set(quarantined)
    if status in {"succeeded", "partial"}:
        m.last_success.labels(pipeline=pipeline).set(time.time())


def count_events(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """A structlog processor: count ``field_not_stored`` events (never changes the event)."""
    if _enabled and event.get("event") == "field_not_stored":
        pipeline = str(event.get("pipeline") or "")
        fields = event.get("fields") or [event.get("field")]
        for name in fields if isinstance(fields, list | tuple) else [fields]:
            metrics().field_not_stored.labels(pipeline=pipeline, field=str(name or "")).inc()
    return event


def _on_retry(details: Any) -> None:
    """A stamina on-retry hook: count retried 429s by the system the error names."""
    from connectors.errors import RateLimitedError
    from connectors.registry import names

    if isinstance(details.caused_by, RateLimitedError):
        head = str(details.caused_by).split(" ", 1)[0]
        metrics().rate_limited.labels(system=head if head in names() else "other").inc()


def record_last_worker(redis_url: str, summary: MutableMapping[str, Any] | dict[str, Any]) -> None:
    """Leave this worker's host name on the pipeline's last run, for ``custsync status``.

    Best effort: Redis failing here must not fail a run that has finished.
    """
    from worker.lock import redis_client

    entry = {
        "worker": socket.gethostname(),
        "pid": os.getpid(),
        "run_id": summary.get("run_id"),
        "status": summary.get("status"),
        "at": time.time(),
    }
    try:
        client = redis_client(redis_url)
        try:
            client.set(LAST_WORKER_KEY + str(summary["pipeline"]), json.dumps(entry))
        finally:
            client.close()
    except (RedisError, OSError) as exc:  # best effort, logged
        log.warning("last_worker_not_recorded", error=type(exc).__name__)


def last_workers(redis_url: str, pipelines: list[str]) -> dict[str, dict[str, Any]]:
    """The last worker of each pipeline, as recorded by :func:`record_last_worker` (empty without Redis)."""
    from worker.lock import reachable, redis_client

    if not pipelines or not reachable(redis_url):
        return {}
    try:
        client = redis_client(redis_url)
        try:
            values = client.mget([LAST_WORKER_KEY + name for name in pipelines])
        finally:
            client.close()
    except (RedisError, OSError):  # status shows what it can
        return {}
    found: dict[str, dict[str, Any]] = {}
    for name, raw in zip(pipelines, values, strict=True):
        if raw:
            try:
                found[name] = json.loads(raw)
            except ValueError:
                continue
    return found


__all__ = [
    "DURATION_BUCKETS",
    "LAST_WORKER_KEY",
    "Metrics",
    "count_events",
    "enable",
    "enabled",
    "install_processor",
    "last_workers",
    "metrics",
    "observe_run",
    "prepare_worker",
    "record_last_worker",
    "serve",
]
