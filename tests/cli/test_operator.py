"""The operator's first hour, through the CLI: version, completion, init, sandbox guards,
readable status and failures when piped, progress, and the demo's verdict."""

from __future__ import annotations

import io
import json
import logging
import re
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
import redis
import structlog
from rich.console import Console
from structlog.testing import capture_logs
from typer.testing import CliRunner, Result

from sandbox import bigcapital
from sandbox.server import Sandbox, is_loopback, sandbox_config
from worker import cli, metrics
from worker.config import load_config
from worker.progress import LiveProgress, RecordTally
from worker.settings import get_settings

PIPELINE = "bigcapital_to_thredfi"
NO_BROKER = "redis://127.0.0.1:1/0"
REDIS_URL = "redis://127.0.0.1:6379/10"


@pytest.fixture(autouse=True)
def _no_terminal_width(monkeypatch: pytest.MonkeyPatch) -> None:
    """The output's width is the console's own, not the terminal the tests run in (the rest: conftest.py)."""
    monkeypatch.delenv("COLUMNS", raising=False)


def _config(tmp_path: Path, url: str, *, broker_url: str = NO_BROKER, schedule: str | None = None) -> Path:
    text = sandbox_config(url, state_url=f"sqlite:///{tmp_path}/state.db", broker_url=broker_url)
    if schedule:
        text = text.replace(
            f'[pipelines.{PIPELINE}]\nsource = "bigcapital"',
            f'[pipelines.{PIPELINE}]\nschedule = "{schedule}"\nsource = "bigcapital"',
        )
    path = tmp_path / "custsync.toml"
    path.write_text(text, encoding="utf-8")
    return path


def invoke(*args: str) -> Result:
    get_settings.cache_clear()
    return CliRunner().invoke(cli.app, list(args))


# -- version and completion ------------------------------------------------------------


def test_version_prints_the_installed_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"custsync {version('custsync')}"
    assert re.fullmatch(r"custsync \d+\.\d+\.\d+\S*", result.stdout.strip())


def test_shell_completion_is_offered(monkeypatch: pytest.MonkeyPatch) -> None:
    # Typer guesses the shell from the process tree unless told; here it is told, as `--show-completion bash`.
    monkeypatch.setenv("_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION", "1")
    result = invoke("--help")
    assert "--install-completion" in result.stdout
    assert "--show-completion" in result.stdout
    shown = invoke("--show-completion", "bash")
    assert shown.exit_code == 0, shown.output
    assert "complete" in shown.stdout
    assert "custsync" in shown.stdout.lower()


# -- init -------------------------------------------------------------------------------


def test_init_writes_a_commented_config_that_loads_once_filled_in(tmp_path: Path) -> None:
    path = tmp_path / "custsync.toml"
    result = invoke("init", "--systems", "bigcapital,thredfi", "--path", str(path))
    assert result.exit_code == 0, result.output
    text = path.read_text()
    assert "[connections.bigcapital]" in text
    assert "[connections.thredfi]" in text
    assert "[connections.piriod]" not in text
    assert "partner_uuid" in text
    assert "business_id" in text
    assert "GET /api/organization/current" in text
    assert "[pipelines.bigcapital_to_thredfi]" in text
    assert "[pipelines.thredfi_to_bigcapital]" in text
    tomllib.loads(text)  # valid TOML as written
    filled = text.replace('"TODO"', '"964f4325-3efb-400d-a1bd-8b1f29e828cf"')
    path.write_text(filled)
    env = {"BIGCAPITAL_API_KEY": "bc_x", "THREDFI_PARTNER_UUID": "p", "THREDFI_API_KEY": "k"}
    config = load_config(path, environ=env)
    assert set(config.connections) == {"bigcapital", "thredfi"}
    assert set(config.pipelines) == {"bigcapital_to_thredfi", "thredfi_to_bigcapital"}


def test_init_refuses_to_overwrite_and_unknown_systems(tmp_path: Path) -> None:
    path = tmp_path / "custsync.toml"
    path.write_text("# mine\n")
    again = invoke("init", "--systems", "piriod", "--path", str(path))
    assert again.exit_code == 2
    assert "not overwriting" in again.stderr
    assert path.read_text() == "# mine\n"
    wrong = invoke("init", "--systems", "bigcapital,xero", "--path", str(tmp_path / "other.toml"))
    assert wrong.exit_code == 2
    assert "xero" in wrong.stderr
    assert not (tmp_path / "other.toml").exists()


# -- sandbox guards -----------------------------------------------------------------------


def test_sandbox_refuses_a_non_loopback_host_without_allow_remote(tmp_path: Path) -> None:
    result = invoke("sandbox", "--host", "0.0.0.0", "--port", "1")
    assert result.exit_code == 2
    assert "not a loopback address" in result.stderr
    assert "--allow-remote" in result.stderr
    assert is_loopback("127.0.0.1")
    assert is_loopback("::1")
    assert is_loopback("localhost")
    assert not is_loopback("0.0.0.0")
    assert not is_loopback("192.168.1.10")
    assert not is_loopback("example.com")


def test_sandbox_write_config_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "sandbox.toml"
    path.write_text("# my edits\n")
    result = invoke("sandbox", "--write-config", str(path), "--port", "1")
    assert result.exit_code == 2
    assert "not overwriting" in result.stderr
    assert path.read_text() == "# my edits\n"


# -- status and failures, piped ---------------------------------------------------------------


def test_piped_status_and_failures_fit_80_columns_and_keep_every_value_whole(
    box: Sandbox, served: tuple[Sandbox, str], tmp_path: Path
) -> None:
    seeded = box["bigcapital"].seed_fake(4)
    box["bigcapital"].admin_edit(seeded[1], {"email": "not-an-email"})
    path = _config(tmp_path, served[1], schedule="*/15 * * * *")
    assert invoke("run", PIPELINE, "--config", str(path)).exit_code == 1

    for args in (("status",), ("status", PIPELINE), ("failures", PIPELINE), ("run", PIPELINE)):
        result = invoke(*args, "--config", str(path))
        assert result.exit_code in (0, 1), result.output
        for line in result.stdout.splitlines():
            assert "…" not in line, f"{args}: a value was cut: {line!r}"
            if set(line) & set("┃│┏┡└"):
                assert len(line) <= 80, f"{args}: a table wider than 80 columns: {line!r}"
    overview = invoke("status", "--config", str(path)).stdout
    assert f"{PIPELINE}: partial" in overview
    assert "schedule */15 * * * *, next " in overview
    listed = invoke("failures", PIPELINE, "--config", str(path)).stdout
    assert "email" in listed
    assert str(seeded[1]["id"]) in listed
    report = json.loads(invoke("status", PIPELINE, "--json", "--config", str(path)).stdout)
    assert report["schedule"] == "*/15 * * * *"
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:(00|15|30|45):00\+00:00", report["next_run"]), report["next_run"]


@pytest.mark.redis
def test_status_shows_the_last_worker_recorded_by_the_task_layer(
    box: Sandbox, served: tuple[Sandbox, str], tmp_path: Path
) -> None:
    path = _config(tmp_path, served[1], broker_url=REDIS_URL)
    client = redis.Redis.from_url(REDIS_URL)
    client.delete(metrics.LAST_WORKER_KEY + PIPELINE)
    try:
        metrics.record_last_worker(REDIS_URL, {"pipeline": PIPELINE, "run_id": "r1", "status": "succeeded"})
        report = json.loads(invoke("status", PIPELINE, "--json", "--config", str(path)).stdout)
    finally:
        client.delete(metrics.LAST_WORKER_KEY + PIPELINE)
        client.close()
    import socket

    assert report["last_worker"] == socket.gethostname()


# -- logs and progress ---------------------------------------------------------------------------------


def test_a_failed_run_logs_run_finished_at_error_level(
    box: Sandbox, served: tuple[Sandbox, str], tmp_path: Path
) -> None:
    box["bigcapital"].seed_fake(2)
    path = _config(tmp_path, served[1])
    path.write_text(path.read_text().replace(bigcapital.SANDBOX_API_KEY, "bc_wrong_key_0000000"))
    get_settings.cache_clear()
    result = invoke("run", PIPELINE, "--json", "--config", str(path))
    assert result.exit_code == 3
    finished = [json.loads(line) for line in result.stderr.splitlines() if '"run_finished"' in line]
    assert [(e["level"], e["status"]) for e in finished] == [("error", "failed")]


def test_live_progress_shows_pulled_of_the_estimate_written_failed_and_eta() -> None:
    text = io.StringIO()
    console = Console(file=text, force_terminal=True, width=120, color_system=None)
    tally = RecordTally()
    live = LiveProgress("run p", console, tally, total=40)
    with live.bar:
        tally.written, tally.quarantined = 9, 1
        live(10)
        live(50)  # more than estimated: the total follows
    out = text.getvalue()
    assert "50/~50 pulled" in out
    assert "9 written, 1 failed" in out
    assert live.total == 50


def test_record_tally_drops_per_record_events_unless_verbose_or_debug() -> None:
    logging.getLogger().setLevel(logging.INFO)
    tally = RecordTally()
    for _ in range(2):  # a create and its inactivation: one record written
        with pytest.raises(structlog.DropEvent):
            tally(None, "info", {"event": "record_written", "external_id": "a"})
    assert tally.written == 1
    with pytest.raises(structlog.DropEvent):
        tally(None, "warning", {"event": "record_quarantined"})
    assert tally(None, "info", {"event": "run_finished"}) == {"event": "run_finished"}
    assert tally.quarantined == 1
    assert RecordTally(verbose=True)(None, "info", {"event": "record_written"}) == {"event": "record_written"}


# -- demo ----------------------------------------------------------------------------------


def test_demo_of_a_pair_that_cannot_land_exits_1_and_says_why(tmp_path: Path) -> None:
    with capture_logs():
        result = invoke("demo", "--source", "piriod", "--target", "timbrix", "--count", "8", "--workdir", str(tmp_path))
    assert result.exit_code == 1, result.output
    assert "every customer lands once" not in result.stdout
    assert "0 of 8 customers land, 8 quarantined" in result.stdout
    assert "Most customers did not land" in result.stdout
    assert "no city" in result.stdout


def test_demo_of_a_pair_that_lands_exits_0(tmp_path: Path) -> None:
    result = invoke("demo", "--source", "thredfi", "--target", "timbrix", "--count", "20", "--workdir", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert re.search(r"First run: (1[1-9]|20) of 20 customers land", result.stdout), result.stdout
    assert "record_quarantined" not in result.stderr, "a summary, not one line per record"


def test_run_on_a_terminal_shows_progress_and_a_summary_not_one_line_per_record(
    box: Sandbox, served: tuple[Sandbox, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    box["bigcapital"].seed_fake(30)
    path = _config(tmp_path, served[1])
    terminal = io.StringIO()
    monkeypatch.setattr(cli, "err", Console(file=terminal, force_terminal=True, width=100, color_system=None))
    first = invoke("run", PIPELINE, "--config", str(path))
    second = invoke("run", PIPELINE, "--config", str(path))

    assert (first.exit_code, second.exit_code) == (0, 0), first.output + second.output
    shown = terminal.getvalue()
    assert "30 customers pulled, 30 written, 0 failed" in shown, shown[-2000:]
    assert "30/~30 pulled, 0 written, 0 failed" in shown, "the second run knows the first one's count"
    assert "record_written" not in first.stderr + second.stderr
    assert f"{PIPELINE}: succeeded" in first.stdout
