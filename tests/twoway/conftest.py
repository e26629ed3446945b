"""Fixtures of the two-way tests that drive the CLI: a loopback sandbox, config files, a clean process.

- ``served``: the four emulators on 127.0.0.1, one server per module (the CLI builds its own
  connectors, so it needs real HTTP); ``box``: those emulators, reset for the test.
- ``config_file``: writes a config file for ``served`` on this test's store, with options on
  chosen pipelines, no broker (the CLI locks through the state store).
- ``cli``: runs ``custsync ARGS`` in process (typer's runner), with no CUSTSYNC_* from the outside
  and logging restored after each command.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import structlog
from typer.testing import CliRunner, Result

from connectors.secrets import forget_all
from sandbox.server import BackgroundServer, Sandbox
from tests.support.twoway import twoway_toml
from worker import cli as cli_app
from worker.settings import get_settings

NO_BROKER = "redis://127.0.0.1:1/0"
_VARIABLES = (
    "CUSTSYNC_CONFIG",
    "CUSTSYNC_STATE_URL",
    "CUSTSYNC_BROKER_URL",
    "CUSTSYNC_LOG_FORMAT",
    "CUSTSYNC_LOG_LEVEL",
)

ConfigFileFn = Callable[..., Path]
CliFn = Callable[..., Result]


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[Sandbox, str]]:
    box = Sandbox()
    with BackgroundServer(box.app) as server:
        yield box, server.url


@pytest.fixture
def box(served: tuple[Sandbox, str]) -> Sandbox:
    sandbox, _ = served
    for emulator in sandbox.emulators.values():
        emulator.reset()
    return sandbox


@pytest.fixture
def config_file(tmp_path: Path, served: tuple[Sandbox, str], store_url: str) -> ConfigFileFn:
    def write(options: Mapping[str, Mapping[str, Any]] | None = None, name: str = "custsync.toml") -> Path:
        path = tmp_path / name
        path.write_text(twoway_toml(store_url, options, base_url=served[1], broker_url=NO_BROKER), encoding="utf-8")
        return path

    return write


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> Iterator[CliFn]:
    for name in _VARIABLES:
        monkeypatch.delenv(name, raising=False)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    config = structlog.get_config()

    def invoke(*args: str) -> Result:
        get_settings.cache_clear()
        return CliRunner().invoke(cli_app.app, list(args))

    get_settings.cache_clear()
    yield invoke
    get_settings.cache_clear()
    forget_all()
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()
    structlog.configure(**config)
