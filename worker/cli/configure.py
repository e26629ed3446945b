"""``check``, ``probe``, ``init``: writing a config, and trying its connections, state store and broker."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from worker import cli
from worker.cli.common import SYSTEMS, ConfigOption, Exit, JsonOption, load, one_line
from worker.config import AppConfig


def check(config: ConfigOption = None) -> None:
    """Validate the config file, try each connection's credentials, reach the state store and the broker."""
    from connectors.errors import ConnectorError
    from worker.runner import build_connector

    cfg = load(config)
    if not cfg.connections and not cfg.pipelines:
        cli.err.print(f"{cfg.path}: warning: no connections and no pipelines: there is nothing to sync")
    else:
        cli.out.print(f"{cfg.path}: valid ({len(cfg.connections)} connections, {len(cfg.pipelines)} pipelines)")

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
            cli.out.print(f"  {name} ({settings.system}): ok")
        else:
            failed += 1
            # The connector's messages already start with "NAME (SYSTEM): " where they name the connection.
            problem = problem.removeprefix(f"{name} ({settings.system}): ")
            cli.out.print(f"  {name} ({settings.system}): FAILED: {escape(problem)}")
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
            cli.out.print(f"  state store {mask_url(url)}: ok (not created yet: the first run creates it)")
        else:
            store = Store(url, migrate=False, readonly=True)
            try:
                store.ping()
            finally:
                store.close()
            cli.out.print(f"  state store {mask_url(url)}: ok")
    except StoreError as exc:
        cli.out.print(f"  {escape(str(exc))}: FAILED")
        code = Exit.FAILED if exc.unreachable else Exit.USAGE
    broker = maybe_sanitize_url(cfg.broker.url)
    if reachable(cfg.broker.url, timeout_s=3.0):
        cli.out.print(f"  broker {broker}: ok")
    else:
        cli.out.print(f"  broker {broker}: FAILED: does not answer (the service needs it; `custsync run` does not)")
        code = max(code, Exit.FAILED)
    return code


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

    cfg = load(config)
    if connection not in cfg.connections:
        known = ", ".join(sorted(cfg.connections)) or "none"
        cli.err.print(f"error: {cfg.path}: no connection {connection!r} (known: {known})")
        raise typer.Exit(Exit.USAGE)
    if not create_test_customer:
        cli.err.print(
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
        cli.err.print(f"probe of {connection} could not run: {escape(one_line(str(exc)))}")
        raise typer.Exit(Exit.FAILED) from None
    if as_json:
        cli.stdout.write(json.dumps(report.summary(), ensure_ascii=False) + "\n")
    else:
        table = Table(title=f"probe {connection} ({report.system}): test customer {report.remote_id}")
        for col in ("field", "result", "sent", "read back"):
            table.add_column(col, overflow="fold")
        for r in report.fields:
            got = "" if r.got is None else str(r.got)
            table.add_row(r.field, r.status, escape(str(r.sent)), escape(got) if r.status == "changed" else "")
        cli.out.print(table)
        cli.out.print(f"test customer {report.remote_id}: {escape(report.cleanup)}")
    if not report.cleaned:
        cli.err.print(
            f"warning: the test customer {report.remote_id} is still in {connection}: {escape(report.cleanup)}"
        )
    raise typer.Exit(Exit.OK)


def init(
    systems: Annotated[
        str, typer.Option(help=f"Comma-separated systems to configure: {', '.join(SYSTEMS) or 'see custsync check'}.")
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
        cli.err.print(f"error: {exc}")
        raise typer.Exit(Exit.USAGE) from None
    try:
        with path.open("x", encoding="utf-8") as handle:
            handle.write(text)
    except FileExistsError:
        cli.err.print(f"error: {path} exists; not overwriting it (remove it, or pass --path)")
        raise typer.Exit(Exit.USAGE) from None
    cli.out.print(f"wrote {path}: fill in the ${{...}} variables, then run `custsync check --config {path}`")
