"""``custsync backfill``: a full pull, inline with progress, or handed to the workers.

Inline, the run shows a progress bar when stderr is a terminal (the
sources cannot say how many customers they hold, so it is a spinner with
the running count), and ``backfill_progress`` log events otherwise (CI,
a log collector). It takes the pipeline's lock when Redis answers at the
broker URL, so it never overlaps a worker's run; when Redis does not
answer it runs without the lock and says so, since a backfill must work
on a laptop with no broker.

Interrupted (Ctrl-C, SIGKILL) and started again, it finishes with no
duplicate: the engine's writes are keyed by external_id and a create that
was cut off is found again before anything is created. After a SIGKILL
the dead process's lock is waited for (at most its TTL) rather than
refused.

``--enqueue`` sends ``custsync.backfill`` to the workers and prints the
task id; the run is then in ``custsync status`` like any other.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date

import structlog
from kombu.exceptions import OperationalError as BrokerError
from kombu.utils.url import maybe_sanitize_url
from redis.exceptions import RedisError
from rich.console import Console
from rich.table import Table

from connectors import REGISTRY
from state.store import Store
from worker.config import AppConfig, ConfigError
from worker.engine import Progress as ProgressCallback
from worker.engine import RunResult
from worker.lock import dead_local_process, reachable
from worker.progress import last_pulled, live_progress, tally_records
from worker.runner import run_exclusive
from worker.settings import get_settings

log = structlog.get_logger("custsync.backfill")

_COUNTS = ("pulled", "created", "updated", "archived", "unchanged", "failed")


class ProgressLog:
    """A progress callback that logs ``backfill_progress``, at most every ``interval_s``.

    The first page is always logged, so a short backfill still says it moved.

    Args:
        pipeline: the pipeline's name.
        interval_s: least time between two events.
    """

    def __init__(self, pipeline: str, *, interval_s: float = 2.0, total: int | None = None) -> None:
        self.pipeline = pipeline
        self.interval_s = interval_s
        self.total = total  # an estimate (the last run's count): no API gives a total to trust
        self._started = time.monotonic()
        self._last: float | None = None

    def __call__(self, pulled: int) -> None:
        """Called by the engine after each page with the running count."""
        now = time.monotonic()
        if self._last is not None and now - self._last < self.interval_s:
            return
        self._last = now
        elapsed = now - self._started
        per_s = pulled / elapsed if elapsed > 0 else None
        left = max(0, self.total - pulled) if self.total is not None else None
        log.info(
            "backfill_progress",
            pipeline=self.pipeline,
            pulled=pulled,
            elapsed_s=round(elapsed, 1),
            per_s=round(per_s, 1) if per_s else None,
            total_estimate=self.total,
            eta_s=round(left / per_s, 1) if left is not None and per_s else None,
        )


def backfill_command(
    cfg: AppConfig,
    pipeline: str,
    *,
    since: date | None,
    enqueue: bool,
    console: Console,
    err: Console,
) -> int:
    """Run or enqueue a backfill; return the exit code (product.md).

    Args:
        cfg: the loaded config.
        pipeline: the pipeline's name (already checked to exist).
        since: only source customers created on or after this date.
        enqueue: hand it to the workers instead of running it here.
        console: stdout (results: the counts, or the task id).
        err: stderr (progress bar, messages).

    Returns:
        0 all went through (or enqueued), 1 some quarantined, 2 usage error,
        3 could not finish (source unreachable, lock held, broker unreachable).
    """
    source = cfg.connections[cfg.pipeline(pipeline).source]
    if since is not None and not REGISTRY[source.system].can_filter_since:
        why = getattr(REGISTRY[source.system], "since_refusal", None)
        err.print(
            f"error: {source.system} cannot list customers created since a date"
            + (f" ({why})" if why else "")
            + ", so --since cannot narrow this backfill; run it without --since (unchanged customers are not "
            "written again)"
        )
        return 2
    if enqueue:
        return _enqueue(cfg, pipeline, since=since, console=console, err=err)
    return _inline(cfg, pipeline, since=since, console=console, err=err)


def _enqueue(cfg: AppConfig, pipeline: str, *, since: date | None, console: Console, err: Console) -> int:
    from worker.app import make_app

    # Celery would retry for a long while; a user at a prompt wants the answer now.
    if not reachable(cfg.broker.url, timeout_s=3.0):
        err.print(
            f"error: cannot reach the broker at {maybe_sanitize_url(cfg.broker.url)}: "
            "is Redis running, and is [broker] url (or CUSTSYNC_BROKER_URL) right?"
        )
        return 3
    try:
        result = make_app(cfg).send_task(
            "custsync.backfill", args=[pipeline], kwargs={"since": since.isoformat() if since else None}
        )
    except (BrokerError, RedisError, OSError) as exc:
        err.print(f"error: cannot reach the broker at {maybe_sanitize_url(cfg.broker.url)}: {exc}")
        return 3
    except ConfigError as exc:
        err.print(f"error: {exc}")
        return 2
    console.print(result.id, highlight=False)
    err.print(
        f"backfill of {pipeline} handed to the workers (task {result.id}); "
        f"`custsync status {pipeline}` shows it when it has run"
    )
    return 0


def _inline(cfg: AppConfig, pipeline: str, *, since: date | None, console: Console, err: Console) -> int:
    settings = get_settings()
    redis_url: str | None = cfg.broker.url
    if not reachable(cfg.broker.url):
        # Not a warning: the state store's lock keeps two runs of this store apart.
        log.info(
            "lock_unavailable",
            pipeline=pipeline,
            broker=maybe_sanitize_url(cfg.broker.url),
            covered_by="state_store_lock",
        )
        redis_url = None
    store = Store(cfg.state.url)
    try:
        with _progress(pipeline, err, total=last_pulled(store, pipeline)) as progress:
            result = run_exclusive(
                cfg,
                pipeline,
                store=store,
                redis_url=redis_url,
                owner="cli",
                ttl_s=settings.lock_ttl_s,
                # Started again after a SIGKILL: the killed backfill's lock is freed at once.
                take_over_if=dead_local_process,
                kind="backfill",
                since=since,
                progress=progress,
            )
    except KeyboardInterrupt:
        err.print(
            f"\ninterrupted: run `custsync backfill {pipeline}` again to finish; "
            "nothing already written is written twice"
        )
        return 3
    except ConfigError as exc:
        err.print(f"error: {exc}")
        return 2
    finally:
        store.close()
    if result.status == "skipped":
        err.print(f"{pipeline}: another run is in progress ({result.error}); try again when it has finished")
        return result.exit_code
    _show(console, result)
    if result.error:
        err.print(f"[red]{result.error}[/]", markup=True)
    if result.counts.failed:
        console.print(f"{result.counts.failed} record(s) quarantined: see `custsync failures {pipeline}`.")
    return result.exit_code


@contextmanager
def _progress(pipeline: str, err: Console, *, total: int | None) -> Iterator[ProgressCallback]:
    """A progress callback: a live line on a terminal (of ~total, with an ETA, when the last run
    gives an estimate), log events otherwise."""
    if not err.is_terminal:
        yield ProgressLog(pipeline, total=total)
        return
    # Per-page and per-record info events would scroll the bar away; warnings still show.
    handlers = logging.getLogger().handlers
    levels = [h.level for h in handlers]
    for handler in handlers:
        handler.setLevel(max(handler.level, logging.WARNING))
    try:
        with tally_records() as tally, live_progress(f"backfill {pipeline}", err, tally, total) as progress:
            yield progress
    finally:
        for handler, level in zip(handlers, levels, strict=True):
            handler.setLevel(level)


def _show(console: Console, result: RunResult) -> None:
    table = Table(title=f"backfill {result.pipeline}: {result.status} ({result.duration_s:.1f}s)")
    for name in _COUNTS:
        table.add_column(name, justify="right")
    table.add_row(*(str(getattr(result.counts, n)) for n in _COUNTS))
    console.print(table)


__all__ = ["ProgressLog", "backfill_command"]
