"""``backfill_command`` in process: the progress bar, --since, and running without Redis."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
import redis
from rich.console import Console
from structlog.testing import capture_logs

from sandbox.server import BackgroundServer, Sandbox, sandbox_config
from state.store import Store
from worker.backfill import ProgressLog, backfill_command
from worker.config import AppConfig, load_config

PIPELINE = "bigcapital_to_thredfi"
REDIS_URL = "redis://127.0.0.1:6379/13"
NO_REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1


@pytest.fixture
def box() -> Iterator[tuple[Sandbox, str]]:
    """The sandbox on loopback, 40 customers in Bigcapital."""
    sandbox = Sandbox()
    sandbox["bigcapital"].seed_fake(40)
    with BackgroundServer(sandbox.app) as server:
        yield sandbox, server.url


def _config(tmp_path: Path, url: str, broker_url: str) -> AppConfig:
    path = tmp_path / "custsync.toml"
    path.write_text(sandbox_config(url, state_url=f"sqlite:///{tmp_path}/state.db", broker_url=broker_url))
    return load_config(path, environ={})


def _consoles(*, terminal: bool) -> tuple[Console, Console, io.StringIO, io.StringIO]:
    out, err = io.StringIO(), io.StringIO()
    return (Console(file=out, width=120), Console(file=err, force_terminal=terminal, width=120), out, err)


@pytest.mark.redis
def test_given_a_terminal_when_backfilling_then_a_progress_bar_counts_the_pulled(
    box: tuple[Sandbox, str], tmp_path: Path
) -> None:
    sandbox, url = box
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    console, err, out, err_text = _consoles(terminal=True)
    try:
        code = backfill_command(
            _config(tmp_path, url, REDIS_URL), PIPELINE, since=None, enqueue=False, console=console, err=err
        )
    finally:
        client.flushdb()
        client.close()
    assert code == 0
    assert "customers pulled" in err_text.getvalue()
    assert "40" in err_text.getvalue()
    assert f"backfill {PIPELINE}: succeeded" in out.getvalue()
    assert len(sandbox["thredfi"].records) == 40


def test_given_no_redis_when_backfilling_inline_then_it_runs_without_the_lock_and_says_so(
    box: tuple[Sandbox, str], tmp_path: Path
) -> None:
    sandbox, url = box
    console, err, _, _ = _consoles(terminal=False)
    with capture_logs() as logs:
        code = backfill_command(
            _config(tmp_path, url, NO_REDIS_URL), PIPELINE, since=None, enqueue=False, console=console, err=err
        )
    assert code == 0
    assert "lock_unavailable" in [e["event"] for e in logs]
    assert "backfill_progress" in [e["event"] for e in logs]
    assert len(sandbox["thredfi"].records) == 40


def test_given_since_when_the_source_filters_then_only_newer_customers_are_pulled(
    box: tuple[Sandbox, str], tmp_path: Path
) -> None:
    # Piriod filters by creation date; Bigcapital cannot (its server never sets created_at).
    sandbox, url = box
    sandbox["piriod"].seed_fake(40)
    pipeline = "piriod_to_thredfi"
    config = _config(tmp_path, url, NO_REDIS_URL)
    console, err, _, _ = _consoles(terminal=False)
    tomorrow = date.today() + timedelta(days=2)
    assert backfill_command(config, pipeline, since=tomorrow, enqueue=False, console=console, err=err) == 0
    assert sandbox["thredfi"].records == {}
    yesterday = date.today() - timedelta(days=2)
    assert backfill_command(config, pipeline, since=yesterday, enqueue=False, console=console, err=err) in (0, 1)
    landed = len(sandbox["thredfi"].records)
    store = Store(config.state.url)
    runs = store.runs(pipeline)
    store.close()
    assert [(r.kind, r.pulled) for r in reversed(runs)] == [("backfill", 0), ("backfill", 40)]
    assert landed == 40 - runs[0].failed


def test_given_since_when_the_source_is_bigcapital_then_refused_with_exit_2_and_nothing_pulled(
    box: tuple[Sandbox, str], tmp_path: Path
) -> None:
    sandbox, url = box
    config = _config(tmp_path, url, NO_REDIS_URL)
    console, err, _, errors = _consoles(terminal=False)
    yesterday = date.today() - timedelta(days=2)

    assert backfill_command(config, PIPELINE, since=yesterday, enqueue=False, console=console, err=err) == 2

    assert "created_at" in errors.getvalue()  # why; one line on the CLI: tests/engine/test_bigcapital_target.py
    assert sandbox["bigcapital"].requests == []
    assert sandbox["thredfi"].records == {}


def test_given_an_unreachable_broker_when_enqueueing_then_exit_3(box: tuple[Sandbox, str], tmp_path: Path) -> None:
    _, url = box
    console, err, out, err_text = _consoles(terminal=False)
    code = backfill_command(
        _config(tmp_path, url, NO_REDIS_URL), PIPELINE, since=None, enqueue=True, console=console, err=err
    )
    assert code == 3
    assert "cannot reach the broker" in err_text.getvalue()
    assert out.getvalue() == ""


def test_given_a_progress_log_when_pages_come_fast_then_it_logs_at_most_every_interval() -> None:
    progress = ProgressLog(PIPELINE, interval_s=60)
    with capture_logs() as logs:
        for pulled in (100, 200, 300):
            progress(pulled)
    assert [(e["event"], e["pulled"]) for e in logs] == [("backfill_progress", 100)]
