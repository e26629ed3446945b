"""``run``, ``backfill`` (and the dry run): running the engine under the pipeline's locks, and its result."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Annotated, Any

import structlog
import typer
from rich.markup import escape

from worker import cli
from worker.cli.common import (
    NO_SINCE,
    SINCE,
    ConfigOption,
    Exit,
    JsonOption,
    VerboseOption,
    check_pipeline,
    load,
    one_line,
    open_store,
    prose,
)
from worker.config import AppConfig
from worker.settings import get_settings

log = structlog.get_logger("custsync.cli")


def print_result(result: Any, as_json: bool) -> None:
    if result.status == "skipped":
        cli.err.print(f"{result.pipeline}: not run, another run is in progress ({escape(result.error or '')})")
    if as_json:
        cli.stdout.write(json.dumps(result.summary(), ensure_ascii=False) + "\n")
        return
    c = result.counts
    title = f"{result.pipeline}: {result.status}" + (" (dry run: nothing written)" if result.dry_run else "")
    from worker.render import print_counts

    print_counts(cli.out, title, c)
    if result.dry_run and result.planned:
        cli.out.print("Planned changes:")
        for change in result.planned[:200]:
            target = f" (target {change.target_id})" if change.target_id else ""
            cli.out.print(f"  {change.action:<18} {change.external_id}{target}")
        if len(result.planned) > 200:
            cli.out.print(f"  … and {len(result.planned) - 200} more")
    if result.error:
        cli.err.print(f"[red]{escape(result.error)}[/]", markup=True)
    if c.failed:
        cli.out.print(f"{c.failed} record(s) quarantined: see `custsync failures {result.pipeline}`.")


def execute(config: AppConfig, pipeline: str, *, kind: str = "run", **options: Any) -> Any:
    """Run the engine under the pipeline's locks.

    The state store's own lock is always taken (two runs on one store never
    overlap); the Redis lock too when the broker answers, so a run never
    overlaps a worker's run either. A run that finds either held is skipped
    (exit 3). A dry run writes nothing and takes neither.
    """
    from kombu.utils.url import maybe_sanitize_url

    from worker.lock import dead_local_process, reachable
    from worker.runner import run_exclusive, run_pipeline

    settings = get_settings()
    dry_run = bool(options.get("dry_run"))
    store = open_store(config, planning=dry_run)
    try:
        if dry_run:  # writes nothing: no lock needed
            return asyncio.run(run_pipeline(config, pipeline, store=store, kind=kind, **options))
        redis_url = config.broker.url if reachable(config.broker.url) else None
        if redis_url is None:
            # Not a warning: the state store's lock keeps two runs of this store apart.
            log.info(
                "lock_unavailable",
                pipeline=pipeline,
                broker=maybe_sanitize_url(config.broker.url),
                covered_by="state_store_lock",
            )
        return run_exclusive(
            config,
            pipeline,
            store=store,
            redis_url=redis_url,
            owner="cli",
            ttl_s=settings.lock_ttl_s,
            take_over_if=dead_local_process,  # a killed earlier run of ours holds nothing any more
            kind=kind,
            progress=options.pop("progress", None),
            options=options,
        )
    except Exception as exc:  # a bug or the store failing: the run could not finish (the log has the traceback)
        cli.err.print(f"run failed: internal error ({type(exc).__name__}): {escape(one_line(str(exc)))}")
        raise typer.Exit(Exit.FAILED) from None
    finally:
        store.close()


def run(
    pipeline: Annotated[str, typer.Argument(help="Pipeline name from the config file.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would change; write nothing anywhere.")] = False,
    full: Annotated[
        bool, typer.Option("--full", help="Rewrite every linked record even if unchanged since the last run.")
    ] = False,
    as_json: JsonOption = False,
    config: ConfigOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Run one pipeline once, in this process (no broker needed).

    Every run scans the whole source (none of the four systems can list
    "changed since"), skips records whose fingerprint is unchanged, and
    writes only the differences.
    """
    cfg = load(config)
    check_pipeline(cfg, pipeline)
    with _run_display(cfg, pipeline, verbose=verbose, dry_run=dry_run) as progress:
        result = execute(cfg, pipeline, dry_run=dry_run, full=full, progress=progress)
    print_result(result, as_json)
    raise typer.Exit(result.exit_code)


def backfill(
    pipeline: Annotated[str, typer.Argument(help="Pipeline name from the config file.")],
    since: Annotated[
        str | None,
        typer.Option(
            help="Only source customers created on or after this date (YYYY-MM-DD). "
            f"{prose(SINCE)} {'filters' if len(SINCE) == 1 else 'filter'} by creation date; "
            f"{prose(NO_SINCE)} cannot, so --since is refused for them."
        ),
    ] = None,
    enqueue: Annotated[
        bool,
        typer.Option(
            "--enqueue",
            help="Hand the backfill to the Celery workers instead, fanned out: each page of the source is "
            "a task any worker can take, all in one run under the pipeline's lock.",
        ),
    ] = False,
    config: ConfigOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Pull every source customer and push what differs, with progress.

    Safe to interrupt and start again: nothing already written is written
    twice, and a create that was cut off is found again before retrying.
    """
    from worker.backfill import backfill_command

    cfg = load(config)
    check_pipeline(cfg, pipeline)
    parsed: date | None = None
    if since is not None:
        try:
            parsed = date.fromisoformat(since)
        except ValueError:
            cli.err.print(f"error: --since {since!r} is not a date (YYYY-MM-DD)")
            raise typer.Exit(Exit.USAGE) from None
    from state.store import StoreError

    try:
        with _quiet_records(verbose):
            code = backfill_command(cfg, pipeline, since=parsed, enqueue=enqueue, console=cli.out, err=cli.err)
    except StoreError as exc:
        cli.err.print(f"error: {escape(str(exc))}")
        code = Exit.FAILED if exc.unreachable else Exit.USAGE
    raise typer.Exit(code)


@contextmanager
def _quiet_records(verbose: bool) -> Iterator[None]:
    """On a terminal, per-record events are summarised (debug level) unless --verbose."""
    if verbose or not cli.err.is_terminal:
        yield
        return
    from worker.progress import tally_records

    with tally_records(verbose=False):
        yield


@contextmanager
def _run_display(cfg: AppConfig, pipeline: str, *, verbose: bool, dry_run: bool) -> Iterator[Any]:
    """A live progress line for `run` on a terminal (pulled of ~total, written, failed, ETA); else nothing."""
    if not cli.err.is_terminal:
        yield None
        return
    from worker.progress import last_pulled, live_progress, tally_records

    total = None
    if not dry_run:  # a dry run must not create or migrate a state store, even to read an estimate
        store = open_store(cfg)
        try:
            total = last_pulled(store, pipeline)
        finally:
            store.close()
    with tally_records(verbose=verbose) as tally, live_progress(f"run {pipeline}", cli.err, tally, total) as progress:
        yield progress
