"""The ``custsync`` command line (product.md, "Commands").

Results go to stdout and logs to stderr, so ``--json`` can be piped. Exit
codes: 0 every record went through; 1 some were quarantined; 2 configuration
or usage error; 3 the run could not finish.
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from worker.config import AppConfig, ConfigError, load_config
from worker.logging import configure_logging
from worker.settings import get_settings

app = typer.Typer(
    name="custsync",
    help=(
        "Keep customer records in step between Bigcapital, Thredfi, Piriod and Timbrix.\n\n"
        "New here? Run `custsync demo`: it starts local emulators of the four APIs and syncs "
        "a few hundred customers, with nothing to configure."
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)
# soft_wrap: a message is never cut into lines at 80 columns when the output is not a terminal
# (CI logs, pipes), so it can be grepped whole; tables still fit the width.
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="Config file (default: $CUSTSYNC_CONFIG, else ./custsync.toml).", show_default=False
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]


class Exit:
    """Exit codes of product.md."""

    OK, QUARANTINED, USAGE, FAILED = 0, 1, 2, 3


def _load(path: Path | None) -> AppConfig:
    settings = get_settings()
    configure_logging(fmt=settings.log_format, level=settings.log_level)
    try:
        return load_config(path or settings.config, state_url=settings.state_url, broker_url=settings.broker_url)
    except ConfigError as exc:
        err.print(f"[bold red]config error:[/] {escape(str(exc))}", markup=True)
        raise typer.Exit(Exit.USAGE) from None


def _store(config: AppConfig) -> Any:
    from state.store import Store

    return Store(config.state.url)


def _check_pipeline(config: AppConfig, pipeline: str) -> None:
    try:
        config.pipeline(pipeline)
    except ConfigError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", markup=True)
        raise typer.Exit(Exit.USAGE) from None


def _print_result(result: Any, as_json: bool) -> None:
    if result.status == "skipped":
        err.print(f"{result.pipeline}: not run, another run is in progress ({escape(result.error or '')})")
    if as_json:
        sys.stdout.write(json.dumps(result.summary(), ensure_ascii=False) + "\n")
        return
    c = result.counts
    title = f"{result.pipeline}: {result.status}" + (" (dry run: nothing written)" if result.dry_run else "")
    table = Table(title=title, show_header=True)
    for name in ("pulled", "created", "updated", "archived", "unchanged", "failed"):
        table.add_column(name, justify="right")
    table.add_row(*(str(getattr(c, n)) for n in ("pulled", "created", "updated", "archived", "unchanged", "failed")))
    out.print(table)
    if result.dry_run and result.planned:
        out.print("Planned changes:")
        for change in result.planned[:200]:
            target = f" (target {change.target_id})" if change.target_id else ""
            out.print(f"  {change.action:<18} {change.external_id}{target}")
        if len(result.planned) > 200:
            out.print(f"  … and {len(result.planned) - 200} more")
    if result.error:
        err.print(f"[red]{escape(result.error)}[/]", markup=True)
    if c.failed:
        out.print(f"{c.failed} record(s) quarantined: see `custsync failures {result.pipeline}`.")


def _execute(config: AppConfig, pipeline: str, *, kind: str = "run", **options: Any) -> Any:
    """Run the engine; under the pipeline's Redis lock when the broker answers.

    Without a broker the CLI still runs (it needs none); with one, a run never
    overlaps a worker's run of the same pipeline: it is skipped (exit 3).
    """
    from worker.lock import dead_local_process, reachable, run_exclusive
    from worker.sync import run_pipeline

    settings = get_settings()
    store = _store(config)
    try:
        if options.get("dry_run"):  # writes nothing: no lock needed
            return asyncio.run(run_pipeline(config, pipeline, store=store, kind=kind, **options))
        return run_exclusive(
            config,
            pipeline,
            store=store,
            redis_url=config.broker.url if reachable(config.broker.url) else None,
            owner="cli",
            ttl_s=settings.lock_ttl_s,
            take_over_if=dead_local_process,  # a killed earlier run of ours holds nothing any more
            kind=kind,
            options=options,
        )
    except Exception as exc:  # a bug or the store failing: the run could not finish (the log has the traceback)
        err.print(f"run failed: internal error ({type(exc).__name__}): {escape(str(exc))}")
        raise typer.Exit(Exit.FAILED) from None
    finally:
        store.close()


@app.command()
def run(
    pipeline: Annotated[str, typer.Argument(help="Pipeline name from the config file.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would change; write nothing anywhere.")] = False,
    full: Annotated[
        bool, typer.Option("--full", help="Rewrite every linked record even if unchanged since the last run.")
    ] = False,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Run one pipeline once, in this process (no broker needed).

    Every run scans the whole source (none of the four systems can list
    "changed since"), skips records whose fingerprint is unchanged, and
    writes only the differences.
    """
    cfg = _load(config)
    _check_pipeline(cfg, pipeline)
    result = _execute(cfg, pipeline, dry_run=dry_run, full=full)
    _print_result(result, as_json)
    raise typer.Exit(result.exit_code)


@app.command()
def backfill(
    pipeline: Annotated[str, typer.Argument(help="Pipeline name from the config file.")],
    since: Annotated[
        str | None,
        typer.Option(
            help="Only source customers created on or after this date (YYYY-MM-DD). Bigcapital and "
            "Piriod filter by creation date; Thredfi and Timbrix cannot, so --since is refused for them."
        ),
    ] = None,
    enqueue: Annotated[
        bool, typer.Option("--enqueue", help="Hand the backfill to the Celery workers instead.")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Pull every source customer and push what differs, with progress.

    Safe to interrupt and start again: nothing already written is written
    twice, and a create that was cut off is found again before retrying.
    """
    from worker.backfill import backfill_command

    cfg = _load(config)
    _check_pipeline(cfg, pipeline)
    parsed: date | None = None
    if since is not None:
        try:
            parsed = date.fromisoformat(since)
        except ValueError:
            err.print(f"error: --since {since!r} is not a date (YYYY-MM-DD)")
            raise typer.Exit(Exit.USAGE) from None
    raise typer.Exit(backfill_command(cfg, pipeline, since=parsed, enqueue=enqueue, console=out, err=err))


@app.command()
def status(
    pipeline: Annotated[str | None, typer.Argument(help="Only this pipeline.")] = None,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Last runs, counts and quarantine size, per pipeline."""
    cfg = _load(config)
    names = [pipeline] if pipeline else sorted(cfg.pipelines)
    if pipeline:
        _check_pipeline(cfg, pipeline)
    store = _store(cfg)
    report: list[dict[str, Any]] = []
    for name in names:
        runs = store.runs(name, limit=5)
        report.append(
            {
                "pipeline": name,
                "quarantined": store.count_quarantined(name),
                # Fields the target did not store as written (write verification), per field: how many records.
                "field_not_stored": store.not_stored_counts(cfg.pipeline(name).target),
                "runs": [
                    {
                        "run_id": r.id,
                        "kind": r.kind,
                        "status": r.status,
                        "started_at": r.started_at.isoformat(),
                        "finished_at": r.finished_at.isoformat() if r.finished_at else None,
                        **{
                            k: getattr(r, k)
                            for k in ("pulled", "created", "updated", "archived", "unchanged", "failed")
                        },
                        "error": r.error,
                    }
                    for r in runs
                ],
            }
        )
    store.close()
    if as_json:
        sys.stdout.write(json.dumps(report if not pipeline else report[0], ensure_ascii=False) + "\n")
        return
    counts = ("pulled", "created", "updated", "archived", "unchanged", "failed")
    if pipeline is None:
        # One line per pipeline: its last run (what it wrote) and its quarantine.
        brief = ("created", "updated", "archived", "failed")
        table = Table(title="Pipelines: last run")
        table.add_column("pipeline", no_wrap=True)
        table.add_column("last run (UTC)", no_wrap=True)
        table.add_column("status", no_wrap=True)
        for col in (*brief, "quarantined"):
            table.add_column(col, justify="right")
        for entry in report:
            last = entry["runs"][0] if entry["runs"] else None
            if last is None:
                table.add_row(entry["pipeline"], "never run", "", *("" for _ in brief), str(entry["quarantined"]))
            else:
                when = last["started_at"][5:16].replace("T", " ")
                table.add_row(
                    entry["pipeline"], when, last["status"], *(str(last[k]) for k in brief), str(entry["quarantined"])
                )
        out.print(table)
        for entry in report:
            _print_not_stored(entry)
        out.print("`custsync status PIPELINE` lists a pipeline's last runs.")
        return
    entry = report[0]
    table = Table(title=f"{entry['pipeline']}: last runs ({entry['quarantined']} quarantined)")
    for col in ("started (UTC)", "kind", "status"):
        table.add_column(col, no_wrap=True)
    for col in counts:
        table.add_column(col, justify="right")
    for r in entry["runs"]:
        table.add_row(r["started_at"][:19].replace("T", " "), r["kind"], r["status"], *(str(r[k]) for k in counts))
    if not entry["runs"]:
        table.add_row("never run", "", "", *("" for _ in counts))
    out.print(table)
    if entry["runs"] and entry["runs"][0]["error"]:
        out.print(f"Last run's error: {escape(entry['runs'][0]['error'])}")
    _print_not_stored(entry)


def _print_not_stored(entry: dict[str, Any]) -> None:
    if entry["field_not_stored"]:
        fields = ", ".join(f"{name} ({count})" for name, count in entry["field_not_stored"].items())
        out.print(f"{entry['pipeline']}: field_not_stored (the target did not keep what was written): {fields}")


@app.command()
def failures(
    pipeline: Annotated[str, typer.Argument(help="Pipeline name.")],
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """List quarantined records: source id, external_id, field and reason."""
    cfg = _load(config)
    _check_pipeline(cfg, pipeline)
    store = _store(cfg)
    entries = store.quarantined(pipeline)
    store.close()
    rows = [
        {
            "source_id": q.source_id,
            "external_id": q.external_id,
            "field": q.field,
            "reason": q.reason,
            "attempts": q.attempts,
            "last_seen": q.last_seen.isoformat(),
        }
        for q in entries
    ]
    if as_json:
        sys.stdout.write(json.dumps(rows, ensure_ascii=False) + "\n")
        return
    if not rows:
        out.print(f"{pipeline}: nothing in quarantine.")
        return
    table = Table(title=f"{pipeline}: {len(rows)} quarantined")
    for col in ("source id", "external_id", "field", "reason"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(*(escape(v) for v in (r["source_id"], r["external_id"] or "", r["field"], r["reason"])))
    out.print(table)
    out.print("Fix the records at the source (they are retried when they change) or run `custsync retry`.")


@app.command()
def retry(
    pipeline: Annotated[str, typer.Argument(help="Pipeline name.")],
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Push quarantined records again (a full run that retries them even if unchanged)."""
    cfg = _load(config)
    _check_pipeline(cfg, pipeline)
    result = _execute(cfg, pipeline, retry_quarantined=True, kind="retry")
    _print_result(result, as_json)
    raise typer.Exit(result.exit_code)


@app.command()
def check(config: ConfigOption = None) -> None:
    """Validate the config file and try each connection's credentials."""
    from connectors import build_connector
    from connectors.errors import ConnectorError

    cfg = _load(config)
    out.print(f"{cfg.path}: valid ({len(cfg.connections)} connections, {len(cfg.pipelines)} pipelines)")

    async def probe(name: str) -> str | None:
        connector = build_connector(cfg, name)
        try:
            async with connector:
                await connector.check()
        except ConnectorError as exc:
            return str(exc)
        return None

    failed = 0
    for name, settings in cfg.connections.items():
        problem = asyncio.run(probe(name))
        if problem is None:
            out.print(f"  {name} ({settings.system}): ok")
        else:
            failed += 1
            out.print(f"  {name} ({settings.system}): FAILED: {problem}")
    raise typer.Exit(Exit.FAILED if failed else Exit.OK)


@app.command()
def sandbox(
    host: Annotated[str, typer.Option(help="Address to listen on (loopback only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8765,
    seed: Annotated[int, typer.Option(help="Fake customers to seed in each system (Timbrix: Mexican ones).")] = 0,
    fault: Annotated[
        list[str] | None,
        typer.Option(
            "--fault",
            "--faults",
            help="Inject a fault (repeatable): SYSTEM:KIND[:key=value,...]. KIND is error_before, "
            "error_after (applied, then 500: a lost response), rate_limit, slow or drop. Options: "
            "method, path (regex), status, retry_after, delay_s, times (empty: forever), skip, "
            "probability, after. E.g. --fault thredfi:error_after:method=POST,probability=0.1,times=",
        ),
    ] = None,
    token_ttl: Annotated[float | None, typer.Option(help="Thredfi/Timbrix token lifetime in seconds.")] = None,
    write_config: Annotated[Path | None, typer.Option(help="Write a config file for the sandbox here.")] = None,
) -> None:
    """Serve local emulators of the four APIs, for trying pipelines without accounts.

    Each system is mounted under its name (http://HOST:PORT/bigcapital, /thredfi,
    /piriod, /timbrix) with an admin surface under /_admin to seed, edit and
    inspect records and faults.
    """
    import uvicorn

    from sandbox.server import Sandbox, parse_fault, sandbox_config

    configure_logging(fmt=get_settings().log_format)
    box = Sandbox()
    for spec in fault or []:
        try:
            system, kind, options = parse_fault(spec)
        except ValueError as exc:
            err.print(f"error: {exc}")
            raise typer.Exit(Exit.USAGE) from None
        box[system].faults.add(kind, **options)  # type: ignore[arg-type]
    if token_ttl is not None:
        for system in ("thredfi", "timbrix"):
            box[system].token_ttl_s = token_ttl  # type: ignore[attr-defined]
    if seed:
        for emulator in box.emulators.values():
            emulator.seed_fake(seed)  # type: ignore[attr-defined]
    url = f"http://{host}:{port}"
    if write_config is not None:
        write_config.write_text(sandbox_config(url), encoding="utf-8")
        err.print(f"wrote {write_config}")
    err.print(f"sandbox on {url}: /bigcapital /thredfi /piriod /timbrix (Ctrl-C to stop)")
    uvicorn.run(box.app, host=host, port=port, log_level="warning")


@app.command()
def demo(
    source: Annotated[str, typer.Option(help="Source system.")] = "bigcapital",
    target: Annotated[str, typer.Option(help="Target system.")] = "thredfi",
    count: Annotated[int, typer.Option(min=1, max=5000, help="Customers to seed in the source.")] = 300,
    workdir: Annotated[Path, typer.Option(help="Where the demo keeps its config and SQLite state.")] = Path(
        "custsync-demo"
    ),
) -> None:
    """A complete run on the sandbox with an embedded state store: start here.

    Seeds customers in the source, syncs them to the target, edits a few in
    the source, and syncs again to show that only those changes are written.
    """
    from worker.demo import run_demo

    configure_logging(fmt=get_settings().log_format, level="warning")
    raise typer.Exit(run_demo(source=source, target=target, count=count, workdir=workdir, console=out))


def main() -> None:
    """Console-script entry point."""
    app()


__all__ = ["app", "main"]
