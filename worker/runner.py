"""The one composition root of a run: connectors, limiters, locks, the engine, the run's record.

The CLI (:mod:`worker.cli`), the Celery tasks (:mod:`worker.tasks`), the
backfill (:mod:`worker.backfill`), the demo and the probe all come here:

- :func:`build_connector` builds a configured connection (the connectors
  themselves know nothing of the config file);
- :func:`run_pipeline` runs one pipeline once in this process, with
  connectors it builds, and records the run in the state store;
- :func:`run_exclusive` does the same under the pipeline's locks
  (:mod:`worker.lock`: Redis, and the state store's own) with the rate
  limiter shared through Redis (:mod:`worker.ratelimit`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import ExitStack
from dataclasses import asdict
from datetime import date
from typing import Any

import httpx
import redis.asyncio as aioredis
import structlog

from connectors import get_connector
from connectors.base import ConnectionSettings, Connector
from connectors.concurrency import StateStore
from connectors.errors import ConnectorError, FatalError, RetriableError
from connectors.ratelimit import HEADROOM, LocalRateLimiter, RateLimiter
from state.store import Store
from worker.concurrency import RedisState
from worker.config import AppConfig, ConfigError
from worker.engine import Counts, Engine, EngineOptions, Progress, RunHooks, RunResult
from worker.heap import settle
from worker.lock import Holder, LockLostError, PipelineLock, holder_token, on_holder, redis_client
from worker.ratelimit import RedisRateLimiter

log = structlog.get_logger("custsync.sync")
lock_log = structlog.get_logger("custsync.lock")

LimiterFactory = Callable[[str, float], RateLimiter]
#: How a run walks its pages: :meth:`Engine.run` by default; :mod:`worker.fanout` shares them out.
Drive = Callable[[Engine], Awaitable[None]]


def build_connector(
    config: AppConfig,
    name: str,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    limiter_factory: LimiterFactory | None = None,
) -> Connector:
    """Build the connector of a configured connection.

    Args:
        config: the loaded config.
        name: the connection's name.
        transport: an httpx transport (tests and the demo pass the emulator's).
        limiter_factory: builds the shared limiter when ``requests_per_second`` is set
            (the service passes a Redis-backed one; default: in process).
    """
    settings: ConnectionSettings = config.connections[name]
    limiter: RateLimiter | None = None
    if settings.requests_per_second:
        factory = limiter_factory or (lambda _key, rate: LocalRateLimiter(rate * HEADROOM))
        limiter = factory(name, settings.requests_per_second)
    return get_connector(settings.system)(name, settings, transport=transport, limiter=limiter)


async def run_pipeline(
    config: AppConfig,
    name: str,
    *,
    store: Store,
    dry_run: bool = False,
    full: bool = False,
    retry_quarantined: bool = False,
    kind: str = "run",
    transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
    limiter_factory: LimiterFactory | None = None,
    progress: Progress | None = None,
    hooks: RunHooks | None = None,
    since: date | None = None,
    concurrency: StateStore | None = None,
    drive: Drive | None = None,
) -> RunResult:
    """Run one pipeline once, in this process.

    Args:
        config: the loaded config.
        name: the pipeline's name.
        store: the state store.
        dry_run: plan only; write nothing to the target or the store.
        full: rewrite every linked record even when its fingerprint is unchanged.
        retry_quarantined: push quarantined records even if unchanged (``custsync retry``).
        kind: ``run``, ``backfill`` or ``retry``, as recorded.
        transports: connection name → httpx transport (tests, the demo).
        limiter_factory: builds the requests-per-second limiter of a connection.
        progress: called with the running ``pulled`` count after each page.
        hooks: test callbacks after each remote write and state commit (:class:`RunHooks`).
        since: only source records created on or after this date (backfill);
            the scan is then partial, so vanished records are not looked for.
        concurrency: where the connections keep their adaptive in-flight limits
            (Redis on the service, so every worker's runs against one API share
            one; default: in this process, shared by the run's tasks).
        drive: walks the pages instead of :meth:`Engine.run` (a backfill fanned out by :mod:`worker.fanout`).

    Raises:
        ConfigError: ``since`` given for a source that cannot filter by date.

    Returns:
        The result; ``exit_code`` maps it to product.md's exit codes.
    """
    settle()  # the process's first run: its start-up heap frozen (worker.heap)
    pipeline = config.pipeline(name)
    transports = transports or {}
    source = build_connector(
        config, pipeline.source, transport=transports.get(pipeline.source), limiter_factory=limiter_factory
    )
    target = build_connector(
        config, pipeline.target, transport=transports.get(pipeline.target), limiter_factory=limiter_factory
    )
    if concurrency is not None:
        source.http.share_concurrency(concurrency)
        target.http.share_concurrency(concurrency)
    if since is not None:
        if not source.can_filter_since:
            raise ConfigError(f"{source.system} cannot list customers created since a date; run without --since")
        source.since = since
        pipeline = pipeline.model_copy(update={"propagate_deletes": False})
    options = EngineOptions(
        dry_run=dry_run, full=full, retry_quarantined=retry_quarantined, hooks=hooks or RunHooks(), progress=progress
    )
    run_id = "dry-run" if dry_run else store.start_run(name, kind=kind, dry_run=False)
    started = time.monotonic()
    structlog.contextvars.bind_contextvars(
        run_id=run_id, pipeline=name, source=pipeline.source, target=pipeline.target, entity="customer"
    )
    log.info("run_started", kind=kind, dry_run=dry_run, full=full)
    engine = Engine(
        name=name,
        pipeline=pipeline,
        source=source,
        target=target,
        store=store,
        run_id=run_id,
        options=options,
        rules=config.topology().rules(name),
    )
    error: str | None = None
    crash: BaseException | None = None
    retriable = False
    try:
        async with source, target:
            await (drive(engine) if drive is not None else engine.run())
    except RetriableError as exc:
        error, retriable = str(exc), True
    except (FatalError, ConnectorError) as exc:
        error = str(exc)
    except (KeyboardInterrupt, asyncio.CancelledError) as exc:
        # Ctrl-C, a lost lock, a task cancelled: recorded as failed, never left "running".
        crash = exc
        error = f"interrupted ({type(exc).__name__})"
        log.warning("run_interrupted")
    except Exception as exc:
        # A bug, or the store failing: the run is recorded as failed and summarised once like any
        # other, and returned as failed with a one-line error (``--json`` prints its object);
        # the traceback goes to the log only.
        error = f"internal error ({type(exc).__name__}); see the run_crashed event in the log"
        log.exception("run_crashed")
    counts = engine.counts
    if error is not None:
        status = "failed"
    elif counts.failed or engine.deletes_error:
        status = "partial"
        error = engine.deletes_error
    else:
        status = "succeeded"
    duration = time.monotonic() - started
    if not dry_run:
        store.finish_run(run_id, status=status, counts=asdict(counts), error=error)
    (log.error if status == "failed" else log.info)(
        "run_finished",
        status=status,
        duration_s=round(duration, 3),
        error=error,
        **asdict(counts),
    )
    structlog.contextvars.unbind_contextvars("run_id", "pipeline", "source", "target", "entity")
    if crash is not None:
        raise crash
    return RunResult(name, run_id, status, counts, duration, error, dry_run, engine.planned, retriable)


def run_exclusive(
    config: AppConfig,
    pipeline: str,
    *,
    store: Store,
    redis_url: str | None,
    owner: str,
    ttl_s: float,
    wait_if: Callable[[Holder], bool] | None = None,
    take_over_if: Callable[[Holder], bool] | None = None,
    kind: str = "run",
    since: date | None = None,
    progress: Progress | None = None,
    hooks: RunHooks | None = None,
    options: Mapping[str, Any] | None = None,
    drive: Drive | None = None,
) -> RunResult:
    """Run a pipeline once under its lock, with the shared rate limiter.

    Args:
        config: the loaded config.
        pipeline: the pipeline's name.
        store: the state store.
        redis_url: Redis for the lock and the limiter; ``None`` runs without
            either (the CLI when Redis does not answer). The state store's own
            lock is taken either way.
        owner: ``task:TASK_ID`` or ``cli``.
        ttl_s: the lock's expiry.
        wait_if: which holders to wait for (see :class:`~worker.lock.PipelineLock`).
        take_over_if: which holders are gone for sure (see :class:`~worker.lock.PipelineLock`).
        options: further engine options (``full``, ``retry_quarantined``).
        kind: ``run`` or ``backfill``, as recorded.
        since: backfill only records created on or after this date.
        progress: called with the running ``pulled`` count after each page.
        hooks: test callbacks of the engine (the kill tests inject their SIGKILL here).
        drive: walks the pages instead of :meth:`Engine.run`, under the same locks (:mod:`worker.fanout`).

    Returns:
        The engine's result, or a ``skipped`` result when the Redis lock or
        the state store's lock is held (its reason names the holder).

    Raises:
        LockLostError: the lock was lost mid-run and the run was cancelled.
    """
    client = redis_client(redis_url) if redis_url is not None else None
    lock = PipelineLock(client, pipeline, ttl_s=ttl_s, owner=owner) if client is not None else None
    with ExitStack() as held:
        if client is not None:
            held.callback(client.close)
        if lock is not None:
            if not lock.acquire(wait_if=wait_if, take_over_if=take_over_if):
                assert lock.held_by is not None
                return _skipped(store, pipeline, kind, f"lock held by {lock.held_by.describe()}", lock.held_by.token)
            held.callback(lock.release)
            lock_log.info("lock_acquired", pipeline=pipeline, ttl_s=ttl_s)
        # The state store's own lock, taken on every path: two runs on one store never overlap,
        # whether or not a broker answers them (a CLI run on a laptop, Redis down).
        store_lock = store.run_lock(pipeline, holder=holder_token(owner), ttl_s=ttl_s)
        if not store_lock.acquire(wait_if=on_holder(wait_if), take_over_if=on_holder(take_over_if)):
            holder = Holder.parse(store_lock.held_by or "")
            return _skipped(store, pipeline, kind, f"state-store lock held by {holder.describe()}", holder.token)
        held.callback(store_lock.release)  # released before the Redis lock (callbacks run last in, first out)
        lock_log.info("store_lock_acquired", pipeline=pipeline, ttl_s=ttl_s)

        async def guarded() -> RunResult:
            loop = asyncio.get_running_loop()
            main = asyncio.current_task()
            assert main is not None

            def cancel() -> None:
                loop.call_soon_threadsafe(main.cancel)

            store_lock.start_renewal(on_lost=cancel)
            if lock is not None:
                lock.start_renewal(on_lost=cancel)
            limiter_client = (
                aioredis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5)
                if redis_url is not None
                else None
            )
            limiter_factory = (
                (lambda key, rate: RedisRateLimiter(limiter_client, key, rate * HEADROOM))
                if limiter_client is not None
                else None
            )
            try:
                return await run_pipeline(
                    config,
                    pipeline,
                    store=store,
                    kind=kind,
                    since=since,
                    progress=progress,
                    hooks=hooks,
                    limiter_factory=limiter_factory,
                    # On the service, every worker's runs against one API share one in-flight limit.
                    # A CLI run keeps its own: the shared state costs Redis round trips per request.
                    concurrency=RedisState(limiter_client)
                    if limiter_client is not None and owner.startswith("task:")
                    else None,
                    drive=drive,
                    **(options or {}),
                )
            finally:
                if limiter_client is not None:
                    await limiter_client.aclose()

        try:
            return asyncio.run(guarded())
        except asyncio.CancelledError:
            if (lock is not None and lock.lost) or store_lock.lost:
                raise LockLostError(f"{pipeline}: the run lock expired or was taken mid-run; run cancelled") from None
            raise
    raise AssertionError("unreachable")  # pragma: no cover - every branch above returns or raises


def _skipped(store: Store, pipeline: str, kind: str, reason: str, holder: str) -> RunResult:
    run_id = store.record_skipped_run(pipeline, kind=kind, reason=reason)
    lock_log.info("run_skipped", pipeline=pipeline, run_id=run_id, reason="lock_held", holder=holder)
    return RunResult(pipeline, run_id, "skipped", Counts(), 0.0, reason)


__all__ = ["Drive", "LimiterFactory", "build_connector", "run_exclusive", "run_pipeline"]
