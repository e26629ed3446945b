"""What the commands share: the help texts' facts, the secret-masking stream, the options, the exit codes,
and loading the config and the state store (one line and an exit code when they fail).

Every message goes through the consoles of :mod:`worker.cli` (``cli.out``, ``cli.err``, ``cli.stdout``),
looked up at each call, so that replacing one there reaches every command.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from connectors.plugin import System
from connectors.registry import PluginError, systems
from connectors.secrets import scrub
from worker import cli
from worker.config import AppConfig, ConfigError, load_config
from worker.logging import configure_logging
from worker.settings import get_settings


def registered() -> dict[str, System]:
    """The registered systems, for help texts; none if a plug-in is broken (a command that needs them says so)."""
    try:
        return systems()
    except PluginError:
        return {}


def prose(words: list[str], empty: str = "none") -> str:
    """``A, B and C``."""
    if len(words) < 2:
        return "".join(words) or empty
    return ", ".join(words[:-1]) + " and " + words[-1]


SYSTEMS = registered()
TITLES = prose([s.title for s in SYSTEMS.values()], "the systems of its plug-ins")
COUNT = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six"}.get(len(SYSTEMS), str(len(SYSTEMS)))
SINCE = [s.title for s in SYSTEMS.values() if s.connector.can_filter_since]
NO_SINCE = [s.title for s in SYSTEMS.values() if not s.connector.can_filter_since]
DEMO_PAIR = next(((s.name, t) for s in SYSTEMS.values() for t in s.demo_next if t in SYSTEMS), ("", ""))
FAULT_EXAMPLE = next(iter(SYSTEMS), "NAME")


class Scrubbed(io.TextIOBase):
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


def load(path: Path | None) -> AppConfig:
    settings = get_settings()
    configure_logging(fmt=settings.log_format, level=settings.log_level)
    try:
        return load_config(path or settings.config, state_url=settings.state_url, broker_url=settings.broker_url)
    except ConfigError as exc:
        for line in str(exc).splitlines():
            cli.err.print(f"[bold red]config error:[/] {escape(line)}", markup=True)
        raise typer.Exit(Exit.USAGE) from None


def open_store(config: AppConfig, *, planning: bool = False, create: bool = True) -> Any:
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
            cli.err.print(f"note: no state store at {path} yet: no pipeline has run with this config")
            return Store.empty()
        return Store(config.state.url)
    except StoreError as exc:
        cli.err.print(f"error: {escape(str(exc))}")
        raise typer.Exit(Exit.FAILED if exc.unreachable else Exit.USAGE) from None


def check_pipeline(config: AppConfig, pipeline: str) -> None:
    try:
        config.pipeline(pipeline)
    except ConfigError as exc:
        cli.err.print(f"[bold red]error:[/] {escape(str(exc))}", markup=True)
        raise typer.Exit(Exit.USAGE) from None


def one_line(text: str) -> str:
    return " ".join(text.split())[:500]
