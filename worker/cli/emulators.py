"""``sandbox``, ``demo``: the local emulators, which come with the ``sandbox`` extra."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from worker import cli
from worker.cli.common import DEMO_PAIR, FAULT_EXAMPLE, Exit, VerboseOption
from worker.logging import configure_logging
from worker.settings import get_settings


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
            f"probability, after, field. E.g. --fault {FAULT_EXAMPLE}:error_after:method=POST,probability=0.1,times=",
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
            cli.err.print(f"error: {exc}")
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
        cli.err.print(f"wrote {write_config}")
    cli.err.print(f"sandbox on {url}: {' '.join('/' + name for name in box.emulators)} (Ctrl-C to stop)")
    uvicorn.run(box.app, host=host, port=port, log_level="warning")


def demo(
    source: Annotated[str, typer.Option(help="Source system.")] = DEMO_PAIR[0],
    target: Annotated[str, typer.Option(help="Target system.")] = DEMO_PAIR[1],
    count: Annotated[int, typer.Option(min=1, max=5000, help="Customers to seed in the source.")] = 300,
    workdir: Annotated[Path, typer.Option(help="Where the demo keeps its config and SQLite state.")] = Path(
        "custsync-demo"
    ),
    verbose: VerboseOption = False,
    two_way: Annotated[
        bool,
        typer.Option(
            "--two-way",
            help="Run SOURCE ⇄ TARGET as a two-way pair: an edit on each side arrives on the other, "
            "a conflict is held and resolved, and a third round writes nothing.",
        ),
    ] = False,
) -> None:
    """A complete run on the sandbox with an embedded state store: start here.

    Seeds customers in the source, syncs them to the target, edits a few in
    the source, and syncs again to show that only those changes are written.
    With --two-way, both directions run, with edits on both sides and a conflict.
    """
    _require_sandbox_extra()
    from worker.demo import run_demo

    configure_logging(fmt=get_settings().log_format, level="warning")
    if two_way:
        from worker.demo_twoway import run_two_way_demo

        configure_logging(fmt=get_settings().log_format, level="error")  # the demo tells of each held conflict
        raise typer.Exit(
            run_two_way_demo(first=source, second=target, count=min(count, 50), workdir=workdir, console=cli.out)
        )
    raise typer.Exit(
        run_demo(source=source, target=target, count=count, workdir=workdir, console=cli.out, verbose=verbose)
    )


def _require_sandbox_extra() -> None:
    """The emulators come with the ``sandbox`` extra: without it, say how to install it (exit 2)."""
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        missing = exc.name or "a package"
        cli.err.print(escape(f"error: the sandbox needs {missing}, from its extra: pip install 'custsync[sandbox]'"))
        raise typer.Exit(Exit.USAGE) from None


def _check_sandbox_options(host: str, write_config: Path | None, *, allow_remote: bool) -> None:
    from sandbox.server import is_loopback

    if not is_loopback(host) and not allow_remote:
        cli.err.print(
            f"error: --host {host} is not a loopback address: the sandbox accepts public credentials and serves "
            "an unauthenticated /_admin surface; use 127.0.0.1, or add --allow-remote if you mean it"
        )
        raise typer.Exit(Exit.USAGE)
    if write_config is not None and write_config.exists():
        cli.err.print(f"error: {write_config} exists; not overwriting it (remove it, or name another file)")
        raise typer.Exit(Exit.USAGE)
