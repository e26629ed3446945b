"""Fixtures of the two-way tests that drive the CLI: a loopback sandbox, config files, a clean process.

- ``served``: the four emulators on 127.0.0.1, one server per module (the CLI builds its own
  connectors, so it needs real HTTP); ``box``: those emulators, reset for the test.
- ``config_file``: writes a config file for ``served`` on this test's store, with options on
  chosen pipelines, no broker (the CLI locks through the state store).
- ``cli``: runs ``custsync ARGS`` in process (typer's runner), with no CUSTSYNC_* from the outside
  and logging restored after each command.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from sandbox.server import Sandbox
from tests.support.loopback import box, clean_process, served
from tests.support.twoway import twoway_toml
from worker import cli as cli_app
from worker.settings import get_settings

NO_BROKER = "redis://127.0.0.1:1/0"

__all__ = ["box", "served"]  # fixtures, for the tests of this folder

ConfigFileFn = Callable[..., Path]
CliFn = Callable[..., Result]


@pytest.fixture
def config_file(tmp_path: Path, served: tuple[Sandbox, str], store_url: str) -> ConfigFileFn:
    def write(options: Mapping[str, Mapping[str, Any]] | None = None, name: str = "custsync.toml") -> Path:
        path = tmp_path / name
        path.write_text(twoway_toml(store_url, options, base_url=served[1], broker_url=NO_BROKER), encoding="utf-8")
        return path

    return write


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> Iterator[CliFn]:
    def invoke(*args: str) -> Result:
        get_settings.cache_clear()
        return CliRunner().invoke(cli_app.app, list(args))

    with clean_process(monkeypatch):
        yield invoke
