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
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import IO, Annotated, Any, cast

import structlog
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from connectors.plugin import System
from connectors.registry import PluginError, systems
from connectors.secrets import scrub
from worker.config import AppConfig, ConfigError, load_config
from worker.logging import configure_logging
from worker.settings import get_settings

log = structlog.get_logger("custsync.cli")


def _registered() -> dict[str, System]:
    """The registered systems, for help texts; none if a plug-in is broken (a command that needs them says so)."""
    try:
        return systems()
    except PluginError:
        return {}


def _prose(words: list[str], empty: str = "none") -> str:
    """``A, B and C``."""
    if len(words) < 2:
        return "".join(words) or empty
    return ", ".join(words[:-1]) + " and " + words[-1]


_SYSTEMS = _registered()
_TITLES = _prose([s.title for s in _SYSTEMS.values()], "the systems of its plug-ins")
_COUNT = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six"}.get(len(_SYSTEMS), str(len(_SYSTEMS)))
_SINCE = [s.title for s in _SYSTEMS.values() if s.connector.can_filter_since]
_NO_SINCE = [s.title for s in _SYSTEMS.values() if not s.connector.can_filter_since]
_DEMO_PAIR = next(((s.name, t) for s in _SYSTEMS.values() for t in s.demo_next if t in _SYSTEMS), ("", ""))
_FAULT_EXAMPLE = next(iter(_SYSTEMS), "NAME")

app = typer.Typer(
    name="custsync",
    help=(
        f"Keep customer records in step between {_TITLES}.\n\n"
        f"New here? Run `custsync demo`: it starts local emulators of the {_COUNT} APIs and syncs "
        "a few hundred customers, with nothing to configure."
    ),
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion (bash, zsh, fish, PowerShell)
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
VerboseOption = Annotated[
    bool,
    typer.Option(
        "--verbose", "-v", help="Log every record's event; by default a terminal shows progress and a summary."
    ),
]


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


def _store(config: AppConfig, *, planning: bool = False, create: bool = True) -> Any:
    """Open the state store; one line and exit 2/3 when it cannot.

    A dry run opens it read-only and never creates it. Without ``create``
    (``status``, ``failures``), a SQLite file that does not exist yet is not
    created: the report says so and reads an empty state (a missing folder
    is still an error: the URL is wrong).
    """
    from state.store import Store, StoreError, normalise_url, sqlite_file

    try:
        if planning:
            return Store.for_planning(config.state.url)
        path = sqlite_file(normalise_url(config.state.url))
        if not create and path is not None and not path.exists() and path.parent.is_dir():
            err.print(f"note: no state store at {path} yet: no pipeline has run with this config")
            return Store.empty()
        return Store(config.state.url)
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
    from worker.render import print_counts

    print_counts(out, title, c)
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

    from worker.lock import dead_local_process, reachable
    from worker.runner import run_exclusive, run_pipeline

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
            progress=options.pop("progress", None),
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
    verbose: VerboseOption = False,
) -> None:
    """Run one pipeline once, in this process (no broker needed).

    Every run scans the whole source (none of the four systems can list
    "changed since"), skips records whose fingerprint is unchanged, and
    writes only the differences.
    """
    cfg = _load(config)
    _check_pipeline(cfg, pipeline)
    with _run_display(cfg, pipeline, verbose=verbose, dry_run=dry_run) as progress:
        result = _execute(cfg, pipeline, dry_run=dry_run, full=full, progress=progress)
    _print_result(result, as_json)
    raise typer.Exit(result.exit_code)


@app.command()
def backfill(
    pipeline: Annotated[str, typer.Argument(help="Pipeline name from the config file.")],
    since: Annotated[
        str | None,
        typer.Option(
            help="Only source customers created on or after this date (YYYY-MM-DD). "
            f"{_prose(_SINCE)} {'filters' if len(_SINCE) == 1 else 'filter'} by creation date; "
            f"{_prose(_NO_SINCE)} cannot, so --since is refused for them."
        ),
    ] = None,
    enqueue: Annotated[
        bool, typer.Option("--enqueue", help="Hand the backfill to the Celery workers instead.")
    ] = False,
    config: ConfigOption = None,
    verbose: VerboseOption = False,
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
        with _quiet_records(verbose):
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
    store = _store(cfg, create=False)
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
    _add_schedules(cfg, report)
    if as_json:
        stdout.write(json.dumps(report if not pipeline else report[0], ensure_ascii=False) + "\n")
        return
    from worker import render

    if pipeline is None:
        render.print_overview(out, report)
        for entry in report:
            _print_not_stored(entry)
        out.print("`custsync status PIPELINE` lists a pipeline's last runs.")
        return
    render.print_runs(out, report[0])
    if report[0]["runs"] and report[0]["runs"][0]["error"]:
        out.print(f"Last run's error: {escape(report[0]['runs'][0]['error'])}")
    _print_not_stored(report[0])


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
    store = _store(cfg, create=False)
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
    from worker.render import print_failures

    print_failures(out, pipeline, rows)
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
    from connectors.errors import ConnectorError
    from worker.runner import build_connector

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
            # The connector's messages already start with "NAME (SYSTEM): " where they name the connection.
            problem = problem.removeprefix(f"{name} ({settings.system}): ")
            out.print(f"  {name} ({settings.system}): FAILED: {escape(problem)}")
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
    from connectors.errors import ConnectorError
    from worker.probe import ProbeError
    from worker.probe import probe as run_probe
    from worker.runner import build_connector

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
    host: Annotated[
        str, typer.Option(help="Address to listen on: loopback only, unless --allow-remote.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8765,
    seed: Annotated[
        int, typer.Option(help="Fake customers to seed in each system (each emulator's own kind of customer).")
    ] = 0,
    fault: Annotated[
        list[str] | None,
        typer.Option(
            "--fault",
            "--faults",
            help="Inject a fault (repeatable): SYSTEM:KIND[:key=value,...]. KIND is error_before, "
            "error_after (applied, then 500: a lost response), rate_limit, slow, drop, drop_field "
            "(a write silently loses field=X) or kill (the process dies once a write is applied). "
            "Options: method, path (regex), status, retry_after, delay_s, times (empty: forever), skip, "
            f"probability, after, field. E.g. --fault {_FAULT_EXAMPLE}:error_after:method=POST,probability=0.1,times=",
        ),
    ] = None,
    token_ttl: Annotated[
        float | None, typer.Option(help="Token lifetime in seconds, in the emulators that issue tokens.")
    ] = None,
    write_config: Annotated[
        Path | None, typer.Option(help="Write a config file for the sandbox here (never over an existing file).")
    ] = None,
    allow_remote: Annotated[
        bool,
        typer.Option(
            "--allow-remote",
            "--force",
            help="Listen on a non-loopback address anyway: anyone who reaches it can use the public sandbox "
            "credentials and the unauthenticated /_admin surface.",
        ),
    ] = False,
) -> None:
    """Serve local emulators of the APIs, for trying pipelines without accounts.

    Each system is mounted under its name (http://HOST:PORT/NAME) with an
    admin surface under /_admin to seed, edit and inspect records and faults.
    """
    _require_sandbox_extra()
    import uvicorn

    from sandbox.plugin import emulators
    from sandbox.server import Sandbox, parse_fault, sandbox_config

    configure_logging(fmt=get_settings().log_format)
    _check_sandbox_options(host, write_config, allow_remote=allow_remote)
    box = Sandbox()
    for spec in fault or []:
        try:
            system, kind, options = parse_fault(spec)
        except ValueError as exc:
            err.print(f"error: {exc}")
            raise typer.Exit(Exit.USAGE) from None
        box[system].faults.add(kind, **options)  # type: ignore[arg-type]
    if token_ttl is not None:
        for system, plugin in emulators().items():
            if plugin.token_ttl:
                box[system].token_ttl_s = token_ttl  # type: ignore[attr-defined]
    if seed:
        for emulator in box.emulators.values():
            emulator.seed_fake(seed)
    url = f"http://{host}:{port}"
    if write_config is not None:
        with write_config.open("x", encoding="utf-8") as handle:  # checked above; "x" closes the race
            handle.write(sandbox_config(url))
        err.print(f"wrote {write_config}")
    err.print(f"sandbox on {url}: {' '.join('/' + name for name in box.emulators)} (Ctrl-C to stop)")
    uvicorn.run(box.app, host=host, port=port, log_level="warning")


@app.command()
def demo(
    source: Annotated[str, typer.Option(help="Source system.")] = _DEMO_PAIR[0],
    target: Annotated[str, typer.Option(help="Target system.")] = _DEMO_PAIR[1],
    count: Annotated[int, typer.Option(min=1, max=5000, help="Customers to seed in the source.")] = 300,
    workdir: Annotated[Path, typer.Option(help="Where the demo keeps its config and SQLite state.")] = Path(
        "custsync-demo"
    ),
    verbose: VerboseOption = False,
) -> None:
    """A complete run on the sandbox with an embedded state store: start here.

    Seeds customers in the source, syncs them to the target, edits a few in
    the source, and syncs again to show that only those changes are written.
    """
    _require_sandbox_extra()
    from worker.demo import run_demo

    configure_logging(fmt=get_settings().log_format, level="warning")
    raise typer.Exit(run_demo(source=source, target=target, count=count, workdir=workdir, console=out, verbose=verbose))


# -- operator's conveniences: version, init, status columns, progress, sandbox guards ----------------------


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            number = version("custsync")
        except PackageNotFoundError:  # run from a checkout that was never installed
            number = "unknown"
        out.print(f"custsync {number}")
        raise typer.Exit(Exit.OK)


@app.callback()
def _root(
    show_version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print `custsync X.Y.Z` and exit.")
    ] = False,
) -> None:
    """Keep customer records in step between the systems of the installed plug-ins."""


def _add_schedules(cfg: AppConfig, report: list[dict[str, Any]]) -> None:
    """Add each pipeline's schedule, next run (UTC) and last worker to a status report."""
    from worker.metrics import last_workers
    from worker.render import next_run

    workers = last_workers(cfg.broker.url, [entry["pipeline"] for entry in report])
    for entry in report:
        schedule = cfg.pipelines[entry["pipeline"]].schedule
        when = next_run(schedule)
        entry["schedule"] = schedule
        entry["next_run"] = when.isoformat() if when else None
        worker = workers.get(entry["pipeline"]) or {}
        entry["last_worker"] = worker.get("worker")
        entry["last_worker_run_id"] = worker.get("run_id")


@contextmanager
def _quiet_records(verbose: bool) -> Iterator[None]:
    """On a terminal, per-record events are summarised (debug level) unless --verbose."""
    if verbose or not err.is_terminal:
        yield
        return
    from worker.progress import tally_records

    with tally_records(verbose=False):
        yield


@contextmanager
def _run_display(cfg: AppConfig, pipeline: str, *, verbose: bool, dry_run: bool) -> Iterator[Any]:
    """A live progress line for `run` on a terminal (pulled of ~total, written, failed, ETA); else nothing."""
    if not err.is_terminal:
        yield None
        return
    from worker.progress import last_pulled, live_progress, tally_records

    total = None
    if not dry_run:  # a dry run must not create or migrate a state store, even to read an estimate
        store = _store(cfg)
        try:
            total = last_pulled(store, pipeline)
        finally:
            store.close()
    with tally_records(verbose=verbose) as tally, live_progress(f"run {pipeline}", err, tally, total) as progress:
        yield progress


def _require_sandbox_extra() -> None:
    """The emulators come with the ``sandbox`` extra: without it, say how to install it (exit 2)."""
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        missing = exc.name or "a package"
        err.print(escape(f"error: the sandbox needs {missing}, from its extra: pip install 'custsync[sandbox]'"))
        raise typer.Exit(Exit.USAGE) from None


def _check_sandbox_options(host: str, write_config: Path | None, *, allow_remote: bool) -> None:
    from sandbox.server import is_loopback

    if not is_loopback(host) and not allow_remote:
        err.print(
            f"error: --host {host} is not a loopback address: the sandbox accepts public credentials and serves "
            "an unauthenticated /_admin surface; use 127.0.0.1, or add --allow-remote if you mean it"
        )
        raise typer.Exit(Exit.USAGE)
    if write_config is not None and write_config.exists():
        err.print(f"error: {write_config} exists; not overwriting it (remove it, or name another file)")
        raise typer.Exit(Exit.USAGE)


@app.command()
def init(
    systems: Annotated[
        str, typer.Option(help=f"Comma-separated systems to configure: {', '.join(_SYSTEMS) or 'see custsync check'}.")
    ],
    path: Annotated[Path, typer.Option(help="Where to write the config.")] = Path("custsync.toml"),
) -> None:
    """Write a commented config for the chosen systems (never over an existing file).

    Each connection's settings say where to find them in that system; the
    secrets are ${NAME} references to environment variables. With two or
    more systems, a pipeline is written for each pair, on demand only.
    """
    from worker.init import InitError, init_config

    try:
        text = init_config([s.strip() for s in systems.split(",") if s.strip()])
    except InitError as exc:
        err.print(f"error: {exc}")
        raise typer.Exit(Exit.USAGE) from None
    try:
        with path.open("x", encoding="utf-8") as handle:
            handle.write(text)
    except FileExistsError:
        err.print(f"error: {path} exists; not overwriting it (remove it, or pass --path)")
        raise typer.Exit(Exit.USAGE) from None
    out.print(f"wrote {path}: fill in the ${{...}} variables, then run `custsync check --config {path}`")


def main() -> None:
    """Console-script entry point.

    A state store that cannot be opened is one line (exit 2, or 3 when it
    cannot be reached) wherever a command meets it; never a traceback. So is
    a plug-in that cannot be loaded (exit 2).
    """
    from sandbox.plugin import EmulatorPluginError
    from state.store import StoreError

    try:
        app(standalone_mode=True)
    except StoreError as exc:
        err.print(f"error: {escape(str(exc))}")
        sys.exit(Exit.FAILED if exc.unreachable else Exit.USAGE)
    except (PluginError, EmulatorPluginError) as exc:  # a broken plug-in: one line naming its entry point
        err.print(f"error: {escape(str(exc))}")
        sys.exit(Exit.USAGE)


__all__ = ["app", "main"]
