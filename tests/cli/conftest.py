"""Fixtures of every CLI test: the emulators on loopback (``served``, ``box``) and a clean process for each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.loopback import box, clean_process, served

__all__ = ["box", "served"]  # fixtures, for the tests of this folder


@pytest.fixture(autouse=True)
def clean_cli(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No CUSTSYNC_* from the outside, no remembered secret; logging restored after each test."""
    with clean_process(monkeypatch):
        yield
