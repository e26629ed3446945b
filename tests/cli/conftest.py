"""Fixtures of the CLI tests that are not in test_cli.py: a loopback sandbox, a clean environment, ``invoke``."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import structlog

from connectors.secrets import forget_all
from sandbox.server import BackgroundServer, Sandbox
from worker.settings import get_settings

_VARIABLES = (
    "CUSTSYNC_CONFIG",
    "CUSTSYNC_STATE_URL",
    "CUSTSYNC_BROKER_URL",
    "CUSTSYNC_LOG_FORMAT",
    "CUSTSYNC_LOG_LEVEL",
)


@pytest.fixture(scope="module")
def loopback() -> Iterator[tuple[Sandbox, str]]:
    """The four emulators on 127.0.0.1 (the CLI builds its own connectors), one server per module."""
    box = Sandbox()
    with BackgroundServer(box.app) as server:
        yield box, server.url


@pytest.fixture
def emulators(loopback: tuple[Sandbox, str]) -> Sandbox:
    """The loopback emulators, reset."""
    box, _ = loopback
    for emulator in box.emulators.values():
        emulator.reset()
    return box


@pytest.fixture
def clean_cli(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No CUSTSYNC_* from the outside, no remembered secret; logging restored after each command."""
    for name in _VARIABLES:
        monkeypatch.delenv(name, raising=False)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    config = structlog.get_config()
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
    forget_all()
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()
    structlog.configure(**config)
