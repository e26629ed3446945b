"""The Celery tasks: bind log context, call the engine under the lock, map the outcome.

Celery cannot run ``async def`` tasks, so each task runs the engine in an
event loop of its own (:func:`worker.runner.run_exclusive` calls
``asyncio.run``). Outcomes:

- succeeded / partial: the run's summary is the task's result;
- skipped (another run holds the pipeline's lock): a summary with status
  ``skipped``, recorded in the state store; not an error, no retry;
- failed for a transient reason (the state store or Redis unreachable, an
  API still failing after the connector's own retries): retried with
  exponential backoff and jitter, at most :data:`MAX_RETRIES` times;
- failed for good (credentials refused, a config error): the task fails
  once, without retry; the run is recorded as failed.

A backfill fans out (:mod:`worker.fanout`): ``custsync.backfill`` is the
run's coordinator, and each page of the source is a ``custsync.backfill_page``
task of that run, whose result is the page's report.
"""

from __future__ import annotations

import os
import random
from dataclasses import asdict
from datetime import date
from typing import Any, NoReturn

import redis.exceptions
import sqlalchemy.exc
import structlog
from celery import Task

from state.store import Store
from worker import fanout, metrics
from worker.app import app, retry_backoff_max, service_config
from worker.backfill import ProgressLog
from worker.config import AppConfig
from worker.engine import RunResult
from worker.lock import redis_client, same_owner
from worker.runner import Drive, run_exclusive
from worker.settings import get_settings

log = structlog.get_logger("custsync.tasks")

MAX_RETRIES = 5
MIGRATION_LOCK = "custsync:lock:state-migration"
RETRY_BACKOFF_S = 30
#: Failures of the infrastructure around a run, worth retrying as they are.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    sqlalchemy.exc.OperationalError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.LockError,  # the schema migration lock not free within its wait
    ConnectionError,
    TimeoutError,
)


class RunFailedError(Exception):
    """The run finished as ``failed``; the message says why (never a secret)."""


@app.task(name="custsync.sync_pipeline", bind=True, max_retries=MAX_RETRIES)  # type: ignore[untyped-decorator]
def sync_pipeline(self: Task, pipeline: str) -> dict[str, Any]:
    """Run one pipeline once.

    Args:
        pipeline: its name in the config file.

    Returns:
        The run's summary (``custsync run --json``'s object).
    """
    return _run(self, pipeline, kind="run")


@app.task(name="custsync.backfill", bind=True, max_retries=MAX_RETRIES)  # type: ignore[untyped-decorator]
def backfill(
    self: Task, pipeline: str, since: str | None = None, fan_out: bool = True, page_size: int | None = None
) -> dict[str, Any]:
    """Pull every source customer and push what differs, logging progress; fanned out by page.

    Args:
        pipeline: its name in the config file.
        since: ISO date; only customers created on or after it (sources that can filter).
        fan_out: send each page to the workers as a ``custsync.backfill_page`` task
            (:mod:`worker.fanout`); ``False`` runs the whole backfill in this task.
        page_size: records per page task (default :data:`worker.fanout.PAGE_SIZE`).

    Returns:
        The run's summary.
    """
    drive: Drive | None = None
    if fan_out:
        config = service_config()
        drive = fanout.Coordinator(
            redis_client(config.broker.url),
            lambda message: str(backfill_page.apply_async(args=[message]).id),
            ttl_s=get_settings().lock_ttl_s,
            page_size=page_size or fanout.PAGE_SIZE,
        )
    return _run(self, pipeline, kind="backfill", since=date.fromisoformat(since) if since else None, drive=drive)


@app.task(name="custsync.backfill_page", bind=True)  # type: ignore[untyped-decorator]
def backfill_page(self: Task, message: dict[str, Any]) -> dict[str, Any]:
    """One page of a fanned-out backfill, inside its run (:func:`worker.fanout.run_page`).

    Never retried by Celery: a page that fails fails its run (whose task retries a
    transient failure), and a page whose task died is run by the coordinator.

    Returns:
        The page's report (:class:`worker.fanout.PageReport` as a dict).
    """
    structlog.contextvars.bind_contextvars(pipeline=message["pipeline"], kind="backfill_page")
    config = service_config()
    store = _process_store(config)
    report = fanout.run_page(config, message, store=store, redis_url=config.broker.url, owner=f"task:{self.request.id}")
    return asdict(report)


def _run(
    task: Task, pipeline: str, *, kind: str, since: date | None = None, drive: Drive | None = None
) -> dict[str, Any]:
    structlog.contextvars.bind_contextvars(pipeline=pipeline, kind=kind)
    settings = get_settings()
    config = service_config()
    config.pipeline(pipeline)  # an unknown pipeline is a ConfigError: fails, no retry
    owner = f"task:{task.request.id}"
    try:
        store = _process_store(config)
        result = run_exclusive(
            config,
            pipeline,
            store=store,
            redis_url=config.broker.url,
            owner=owner,
            ttl_s=settings.lock_ttl_s,
            # A redelivery of this very task (its worker died) waits for the dead run's lock.
            wait_if=same_owner(owner),
            kind=kind,
            since=since,
            progress=ProgressLog(pipeline) if kind == "backfill" else None,
            drive=drive,
        )
    except TRANSIENT_ERRORS as exc:
        _retry(task, exc)
    _observe(config, store, result)
    if result.status == "failed":
        error = RunFailedError(f"{pipeline}: run {result.run_id} failed: {result.error}")
        if _transient(result):
            _retry(task, error)
        raise error
    return result.summary()


def _observe(config: AppConfig, store: Store, result: RunResult) -> None:
    """Metrics from the run's result, and this worker's name on the pipeline's last run (both best effort)."""
    summary = result.summary()
    quarantined: int | None = None
    if metrics.enabled():
        try:
            quarantined = store.count_quarantined(result.pipeline)
        except sqlalchemy.exc.SQLAlchemyError:
            quarantined = None
    metrics.observe_run(summary, quarantined=quarantined)
    if result.status != "skipped":
        metrics.record_last_worker(config.broker.url, summary)


_stores: dict[int, Store] = {}


def _process_store(config: AppConfig) -> Store:
    """The state store of this process, opened (and migrated) once.

    Workers starting together on a fresh database would race to create the
    schema; a Redis lock lets one migrate while the others wait. Keyed by
    pid: a prefork child must not reuse its parent's connections.
    """
    pid = os.getpid()
    store = _stores.get(pid)
    if store is None:
        client = redis_client(config.broker.url)
        try:
            with client.lock(MIGRATION_LOCK, timeout=120, blocking_timeout=120):
                store = Store(config.state.url)
        finally:
            client.close()
        _stores[pid] = store  # a parent's entry stays put: disposing it here would close its sockets
    return store


def _transient(result: RunResult) -> bool:
    # The engine flags a run that ended on an API still failing after its retries
    # (RetriableError), as opposed to a refusal (FatalError), which is final.
    return result.retriable


def _retry(task: Task, exc: BaseException) -> NoReturn:
    attempt = task.request.retries
    cap = retry_backoff_max(get_settings())
    countdown = min(cap, RETRY_BACKOFF_S * 2**attempt) * random.uniform(0.5, 1.0)  # noqa: S311 - jitter
    log.warning(
        "run_retry",
        attempt=attempt + 1,
        max_retries=MAX_RETRIES,
        countdown_s=round(countdown, 1),
        error=str(exc) or type(exc).__name__,
    )
    # Raises Retry, or ``exc`` itself once the retries are spent.
    raise task.retry(exc=exc, countdown=countdown)


__all__ = ["MAX_RETRIES", "TRANSIENT_ERRORS", "RunFailedError", "backfill", "backfill_page", "sync_pipeline"]
