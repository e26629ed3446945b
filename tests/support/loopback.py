"""What the tests that drive the CLI in process share: the emulators on loopback, and a clean process.

The CLI builds its own connectors, so these tests need the emulators behind real HTTP. Import the
fixtures into a ``conftest.py`` to use them in a folder.

- ``served``: the four emulators on 127.0.0.1, one server per module, and its URL;
- ``box``: those emulators, reset for the test;
- :func:`clean_process`: no ``CUSTSYNC_*`` from the outside, settings read again, remembered
  secrets forgotten and logging restored after the test.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import structlog

from connectors.secrets import forget_all
from sandbox.server import BackgroundServer, Sandbox
from worker.settings import get_settings

#: what a CLI test must not inherit from the environment it runs in.
CLI_VARIABLES = (
    "CUSTSYNC_CONFIG",
    "CUSTSYNC_STATE_URL",
    "CUSTSYNC_BROKER_URL",
    "CUSTSYNC_LOG_FORMAT",
    "CUSTSYNC_LOG_LEVEL",
)


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[Sandbox, str]]:
    """The four emulators on 127.0.0.1 and their URL, one server per module."""
    sandbox = Sandbox()
    with BackgroundServer(sandbox.app) as server:
        yield sandbox, server.url


@pytest.fixture
def box(served: tuple[Sandbox, str]) -> Sandbox:
    """The loopback emulators, reset for the test."""
    sandbox, _ = served
    for emulator in sandbox.emulators.values():
        emulator.reset()
    return sandbox


@contextmanager
def clean_process(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No ``CUSTSYNC_*`` from the outside; settings, remembered secrets and logging as they were, after."""
    for name in CLI_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    config = structlog.get_config()
    get_settings.cache_clear()
    try:
        yield
    finally:
        get_settings.cache_clear()
        forget_all()
        root.handlers[:] = handlers
        root.setLevel(level)
        structlog.reset_defaults()
        structlog.configure(**config)
