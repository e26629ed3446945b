"""The ``custsync`` command line (product.md, "Commands").

Results go to stdout and logs to stderr, so ``--json`` can be piped. Exit
codes: 0 every record went through; 1 some were quarantined; 2 configuration
or usage error; 3 the run could not finish.
"""

from __future__ import annotations

import asyncio
import io
import json
import sys
from datetime import date
from pathlib import Path
from typing import IO, Annotated, Any, cast

import structlog
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from connectors.secrets import scrub
from worker.config import AppConfig, ConfigError, load_config
from worker.logging import configure_logging
from worker.settings import get_settings

log = structlog.get_logger("custsync.cli")

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


class _Scrubbed(io.TextIOBase):
    """sys.stdout or sys.stderr (looked up at each write), with every remembered secret masked.

    An API's error body may quote the key it was sent; whatever custsync prints passes here.
    """

    def __init__(self, name: str) -> None:
        self._name = name

    @property
    def _stream(self) -> Any:
        return getattr(sys, self._name)

    def write(self, text: str) -> int:
        self._stream.write(scrub(text))
        return len(text)

    def flush(self) -> None:
        self._stream.flush()

    def isatty(self) -> bool:
        return bool(self._stream.isatty())

    def fileno(self) -> int:
        return int(self._stream.fileno())


stdout = cast(IO[str], _Scrubbed("stdout"))
# soft_wrap: a message is never cut into lines at 80 columns when the output is not a terminal
# (CI logs, pipes), so it can be grepped whole; tables still fit the width.
out = Console(file=stdout, highlight=False, soft_wrap=True)
err = Console(file=cast(IO[str], _Scrubbed("stderr")), highlight=False, soft_wrap=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Config file (default: $CUSTSYNC_CONFIG, else ./custsync.toml).",
        show_default=False,
        readable=False,  # checked when loaded, so that an unreadable file is one line like every config error
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
        for line in str(exc).splitlines():
            err.print(f"[bold red]config error:[/] {escape(line)}", markup=True)
        raise typer.Exit(Exit.USAGE) from None


def _store(config: AppConfig, *, planning: bool = False) -> Any:
    """Open the state store (read-only and never created for a dry run); one line and exit 2/3 when it cannot."""
    from state.store import Store, StoreError

    try:
        return Store.for_planning(config.state.url) if planning else Store(config.state.url)
    except StoreError as exc:
        err.print(f"error: {escape(str(exc))}")
        raise typer.Exit(Exit.FAILED if exc.unreachable else Exit.USAGE) from None


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
        stdout.write(json.dumps(result.summary(), ensure_ascii=False) + "\n")
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
    """Run the engine under the pipeline's locks.

    The state store's own lock is always taken (two runs on one store never
    overlap); the Redis lock too when the broker answers, so a run never
    overlaps a worker's run either. A run that finds either held is skipped
    (exit 3). A dry run writes nothing and takes neither.
    """
    from kombu.utils.url import maybe_sanitize_url

    from worker.lock import dead_local_process, reachable, run_exclusive
    from worker.sync import run_pipeline

    settings = get_settings()
    dry_run = bool(options.get("dry_run"))
    store = _store(config, planning=dry_run)
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
            crash_at=settings.crash_at,
            options=options,
        )
    except Exception as exc:  # a bug or the store failing: the run could not finish (the log has the traceback)
        err.print(f"run failed: internal error ({type(exc).__name__}): {escape(_one_line(str(exc)))}")
        raise typer.Exit(Exit.FAILED) from None
    finally:
        store.close()


def _one_line(text: str) -> str:
    return " ".join(text.split())[:500]


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
    from state.store import StoreError

    try:
        code = backfill_command(cfg, pipeline, since=parsed, enqueue=enqueue, console=out, err=err)
    except StoreError as exc:
        err.print(f"error: {escape(str(exc))}")
        code = Exit.FAILED if exc.unreachable else Exit.USAGE
    raise typer.Exit(code)


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
        stdout.write(json.dumps(report if not pipeline else report[0], ensure_ascii=False) + "\n")
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
        stdout.write(json.dumps(rows, ensure_ascii=False) + "\n")
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
    """Validate the config file, try each connection's credentials, reach the state store and the broker."""
    from connectors import build_connector
    from connectors.errors import ConnectorError

    cfg = _load(config)
    if not cfg.connections and not cfg.pipelines:
        err.print(f"{cfg.path}: warning: no connections and no pipelines: there is nothing to sync")
    else:
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
    code = _check_infrastructure(cfg)
    raise typer.Exit(max(code, Exit.FAILED if failed else Exit.OK))


def _check_infrastructure(cfg: AppConfig) -> int:
    """Reach the state store (creating nothing) and the broker; the exit code their state calls for."""
    from kombu.utils.url import maybe_sanitize_url

    from state.store import Store, StoreError, mask_url, sqlite_file
    from worker.lock import reachable

    code = Exit.OK
    url = cfg.state.url
    path = sqlite_file(url)
    try:
        if path is not None and not path.exists() and path.parent.is_dir():
            out.print(f"  state store {mask_url(url)}: ok (not created yet: the first run creates it)")
        else:
            store = Store(url, migrate=False, readonly=True)
            try:
                store.ping()
            finally:
                store.close()
            out.print(f"  state store {mask_url(url)}: ok")
    except StoreError as exc:
        out.print(f"  {escape(str(exc))}: FAILED")
        code = Exit.FAILED if exc.unreachable else Exit.USAGE
    broker = maybe_sanitize_url(cfg.broker.url)
    if reachable(cfg.broker.url, timeout_s=3.0):
        out.print(f"  broker {broker}: ok")
    else:
        out.print(f"  broker {broker}: FAILED: does not answer (the service needs it; `custsync run` does not)")
        code = max(code, Exit.FAILED)
    return code


@app.command()
def probe(
    connection: Annotated[str, typer.Argument(help="Connection name from the config file.")],
    create_test_customer: Annotated[
        bool,
        typer.Option(
            "--create-test-customer",
            help="Required: the probe writes one test customer (then archives or deletes it).",
        ),
    ] = False,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Create one test customer, read it back, and report per canonical field what the system kept.

    The customer is named "custsync probe <timestamp>" and holds invented
    values; it is archived afterwards (deleted where the system has no
    archived state).
    """
    from connectors import build_connector
    from connectors.errors import ConnectorError
    from worker.probe import ProbeError
    from worker.probe import probe as run_probe

    cfg = _load(config)
    if connection not in cfg.connections:
        known = ", ".join(sorted(cfg.connections)) or "none"
        err.print(f"error: {cfg.path}: no connection {connection!r} (known: {known})")
        raise typer.Exit(Exit.USAGE)
    if not create_test_customer:
        err.print(
            f"error: the probe writes a test customer into {connection}: pass --create-test-customer to allow it "
            "(it is archived, or deleted, afterwards)"
        )
        raise typer.Exit(Exit.USAGE)

    async def go() -> Any:
        async with build_connector(cfg, connection) as connector:
            return await run_probe(connector)

    try:
        report = asyncio.run(go())
    except (ConnectorError, ProbeError) as exc:
        err.print(f"probe of {connection} could not run: {escape(_one_line(str(exc)))}")
        raise typer.Exit(Exit.FAILED) from None
    if as_json:
        stdout.write(json.dumps(report.summary(), ensure_ascii=False) + "\n")
    else:
        table = Table(title=f"probe {connection} ({report.system}): test customer {report.remote_id}")
        for col in ("field", "result", "sent", "read back"):
            table.add_column(col, overflow="fold")
        for r in report.fields:
            got = "" if r.got is None else str(r.got)
            table.add_row(r.field, r.status, escape(str(r.sent)), escape(got) if r.status == "changed" else "")
        out.print(table)
        out.print(f"test customer {report.remote_id}: {escape(report.cleanup)}")
    if not report.cleaned:
        err.print(f"warning: the test customer {report.remote_id} is still in {connection}: {escape(report.cleanup)}")
    raise typer.Exit(Exit.OK)


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
