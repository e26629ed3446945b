"""The ``custsync`` command line (product.md, "Commands").

Results go to stdout and logs to stderr, so ``--json`` can be piped. Exit
codes: 0 every record went through; 1 some were quarantined; 2 configuration
or usage error; 3 the run could not finish.

The commands live by concern: :mod:`~worker.cli.runs` (run, backfill),
:mod:`~worker.cli.reports` (status, failures, retry), :mod:`~worker.cli.configure`
(check, probe, init), :mod:`~worker.cli.emulators` (sandbox, demo), and what they
share in :mod:`~worker.cli.common`. They print through ``out``, ``err`` and
``stdout`` below, looked up at each call.
"""

from __future__ import annotations

import sys
from typing import IO, Annotated, cast

import typer
from rich.console import Console
from rich.markup import escape

from connectors.registry import PluginError
from worker.cli.common import COUNT, TITLES, Exit, Scrubbed
from worker.cli.configure import check, init, probe
from worker.cli.emulators import demo, sandbox
from worker.cli.reports import failures, resolve, retry, status
from worker.cli.runs import backfill, run

stdout = cast(IO[str], Scrubbed("stdout"))
# soft_wrap: a message is never cut into lines at 80 columns when the output is not a terminal
# (CI logs, pipes), so it can be grepped whole; tables still fit the width.
out = Console(file=stdout, highlight=False, soft_wrap=True)
err = Console(file=cast(IO[str], Scrubbed("stderr")), highlight=False, soft_wrap=True)


app = typer.Typer(
    name="custsync",
    help=(
        f"Keep customer records in step between {TITLES}.\n\n"
        f"New here? Run `custsync demo`: it starts local emulators of the {COUNT} APIs and syncs "
        "a few hundred customers, with nothing to configure."
    ),
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion (bash, zsh, fish, PowerShell)
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)
# In the order `custsync --help` lists them.
for _command in (run, backfill, status, failures, retry, resolve, check, probe, sandbox, demo, init):
    app.command()(_command)


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
