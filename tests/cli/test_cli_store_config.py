"""The CLI and its state store and config file (9.9, 9.10, 13.2, 13.3, 13.4).

- A state store or config file that cannot be used is one line, exit 2 (the
  URL or the file is wrong) or 3 (it cannot be reached or written), naming the
  file or the URL with its password masked; never a traceback, never exit 1.
- A dry run creates and migrates nothing.
- A relative SQLite URL lives next to the config file, not where custsync runs.
- ``check`` also reaches the state store and the broker; an empty config is a warning.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner, Result

from sandbox.server import Sandbox, sandbox_config
from tests.conftest import PG_SERVER
from worker import cli
from worker.settings import get_settings

pytestmark = pytest.mark.usefixtures("clean_cli")

PIPELINE = "bigcapital_to_thredfi"
NO_BROKER = "redis://127.0.0.1:1/0"
PASSWORD = "hunter2Secret9"


def invoke(*args: str) -> Result:
    get_settings.cache_clear()
    return CliRunner().invoke(cli.app, list(args))


def _config(tmp_path: Path, url: str, *, state_url: str, broker_url: str = NO_BROKER, name: str = "c.toml") -> Path:
    path = tmp_path / name
    path.write_text(sandbox_config(url, state_url=state_url, broker_url=broker_url), encoding="utf-8")
    return path


def _one_line_error(result: Result, code: int, *needles: str) -> str:
    """The command failed with ``code`` and one line on stderr naming every needle; no traceback."""
    assert result.exit_code == code, (result.exit_code, result.output)
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("{")]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert PASSWORD not in result.output
    return lines[0]


# -- 9.9: the state store cannot be used -------------------------------------------------


@pytest.mark.parametrize(
    "command", [["run", PIPELINE], ["status"], ["failures", PIPELINE], ["retry", PIPELINE], ["backfill", PIPELINE]]
)
def test_given_sqlite_file_in_a_missing_folder_when_any_store_command_then_exit_3_naming_the_folder(
    tmp_path: Path, served: tuple[Sandbox, str], command: list[str]
) -> None:
    missing = tmp_path / "no" / "such" / "folder"
    config = _config(tmp_path, served[1], state_url=f"sqlite:///{missing}/state.db")

    line = _one_line_error(invoke(*command, "--config", str(config)), 3, str(missing))
    assert "does not exist" in line
    assert not (tmp_path / "no").exists()


def test_given_postgres_down_when_run_then_exit_3_naming_the_url_with_its_password_masked(
    tmp_path: Path, served: tuple[Sandbox, str]
) -> None:
    url = f"postgresql://custsync:{PASSWORD}@127.0.0.1:1/custsync"
    config = _config(tmp_path, served[1], state_url=url)

    line = _one_line_error(invoke("run", PIPELINE, "--config", str(config)), 3, "custsync:***@127.0.0.1:1/custsync")
    assert "cannot open" in line


@pytest.mark.postgres
def test_given_unknown_postgres_database_when_status_then_exit_3_saying_it_does_not_exist(
    tmp_path: Path, served: tuple[Sandbox, str]
) -> None:
    name = f"custsync_missing_{uuid.uuid4().hex[:8]}"
    url = PG_SERVER.rsplit("/", 1)[0].replace("postgres@", f"postgres:{PASSWORD}@") + f"/{name}"
    config = _config(tmp_path, served[1], state_url=url)

    _one_line_error(invoke("status", "--config", str(config)), 3, name, "does not exist", "postgres:***@")


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        (f"mysql://root:{PASSWORD}@127.0.0.1/custsync", "unsupported database 'mysql'"),
        ("not a url at all", "not a database URL"),
        (f"oracle+cx://u:{PASSWORD}@h/db", "unsupported database"),
    ],
)
def test_given_unsupported_or_malformed_state_url_when_run_then_exit_2(
    tmp_path: Path, served: tuple[Sandbox, str], url: str, needle: str
) -> None:
    config = _config(tmp_path, served[1], state_url=url)

    _one_line_error(invoke("run", PIPELINE, "--config", str(config)), 2, needle)


def test_given_state_file_that_is_not_a_database_when_status_then_exit_2_naming_it(
    tmp_path: Path, served: tuple[Sandbox, str]
) -> None:
    state = tmp_path / "state.db"
    state.write_text("this is a text file, not SQLite " * 100, encoding="utf-8")
    config = _config(tmp_path, served[1], state_url=f"sqlite:///{state}")

    _one_line_error(invoke("status", "--config", str(config)), 2, str(state), "not a SQLite database")


_NO_OVERRIDE = "-dac_override,-dac_read_search"


def _without_file_override(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the CLI so that file permissions bind it: root reads and writes any file, so root drops the
    capabilities that let it (setpriv), as a user without them would run."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUSTSYNC_")}
    env |= {"PYTHONPATH": str(Path(__file__).parents[2])}
    command = [sys.executable, "-c", "from worker.cli import main; main()", *args]
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: permissions cannot bind")
        command = ["setpriv", f"--inh-caps={_NO_OVERRIDE}", f"--bounding-set={_NO_OVERRIDE}", *command]
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=env, timeout=120, check=False)


def _check_one_line(done: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr + done.stdout
    lines = [line for line in done.stderr.splitlines() if line.strip() and not line.startswith("{")]
    assert len(lines) == 1, done.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_given_read_only_state_file_when_run_then_exit_3_saying_it_cannot_write(
    tmp_path: Path, served: tuple[Sandbox, str]
) -> None:
    state = tmp_path / "state.db"
    from state.store import Store

    Store(f"sqlite:///{state}").close()
    state.chmod(0o444)
    config = _config(tmp_path, served[1], state_url=f"sqlite:///{state}")

    done = _without_file_override("run", PIPELINE, "--config", str(config), cwd=tmp_path)

    _check_one_line(done, 3, str(state), "cannot write")


# -- 9.9: the config file cannot be read -------------------------------------------------


def test_given_config_path_that_is_a_folder_when_run_then_exit_2_naming_it(tmp_path: Path) -> None:
    _one_line_error(invoke("run", PIPELINE, "--config", str(tmp_path)), 2, str(tmp_path), "is a folder")


def test_given_config_not_utf8_when_check_then_exit_2_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes('[state]\nurl = "sqlite:///caf\xe9.db"\n'.encode("latin-1"))

    _one_line_error(invoke("check", "--config", str(path)), 2, str(path), "not UTF-8")


def test_given_config_not_readable_when_run_then_exit_2_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "secret.toml"
    path.write_text("[state]\n", encoding="utf-8")
    path.chmod(0o000)

    done = _without_file_override("status", "--config", str(path), cwd=tmp_path)

    _check_one_line(done, 2, str(path), "cannot read")


# -- 9.10 / 13.2: a dry run touches nothing ----------------------------------------------


def test_given_no_sqlite_file_when_dry_run_then_plan_is_made_and_no_file_is_created(
    tmp_path: Path, served: tuple[Sandbox, str], box: Sandbox
) -> None:
    box["bigcapital"].seed_fake(5)
    state = tmp_path / "state.db"
    config = _config(tmp_path, served[1], state_url=f"sqlite:///{state}")

    result = invoke("run", PIPELINE, "--dry-run", "--json", "--config", str(config))

    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["dry_run"] is True
    assert summary["created"] == 5
    assert list(tmp_path.glob("state.db*")) == [], "the dry run created the state store"
    assert box["thredfi"].writes() == []


def test_given_existing_store_when_dry_run_then_it_plans_against_it_and_changes_nothing(
    tmp_path: Path, served: tuple[Sandbox, str], box: Sandbox
) -> None:
    box["bigcapital"].seed_fake(4)
    state = tmp_path / "state.db"
    config = _config(tmp_path, served[1], state_url=f"sqlite:///{state}")
    assert invoke("run", PIPELINE, "--config", str(config)).exit_code == 0
    from state.store import Store

    store = Store(f"sqlite:///{state}")
    runs_before = len(store.runs(PIPELINE))
    store.close()

    result = invoke("run", PIPELINE, "--dry-run", "--json", "--config", str(config))

    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert (summary["created"], summary["unchanged"]) == (0, 4), "planned against the real state"
    store = Store(f"sqlite:///{state}")
    try:
        assert len(store.runs(PIPELINE)) == runs_before, "a dry run records no run"
    finally:
        store.close()


@pytest.mark.postgres
def test_given_empty_postgres_database_when_dry_run_then_no_table_is_created(
    tmp_path: Path, served: tuple[Sandbox, str], box: Sandbox, pg_url: str
) -> None:
    box["bigcapital"].seed_fake(3)
    config = _config(tmp_path, served[1], state_url=pg_url)

    result = invoke("run", PIPELINE, "--dry-run", "--json", "--config", str(config))

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["created"] == 3
    with psycopg.connect(pg_url.replace("+psycopg", ""), autocommit=True) as conn:
        tables = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    assert tables == [], "the dry run migrated the database"


@pytest.mark.postgres
def test_given_unknown_postgres_database_when_dry_run_then_it_plans_against_an_empty_state(
    tmp_path: Path, served: tuple[Sandbox, str], box: Sandbox
) -> None:
    box["bigcapital"].seed_fake(2)
    name = f"custsync_missing_{uuid.uuid4().hex[:8]}"
    config = _config(tmp_path, served[1], state_url=f"{PG_SERVER.rsplit('/', 1)[0]}/{name}")

    result = invoke("run", PIPELINE, "--dry-run", "--json", "--config", str(config))

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["created"] == 2
    with psycopg.connect(PG_SERVER, autocommit=True) as conn:
        assert conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None


# -- 13.4: where the state lives, what check reaches -------------------------------------


def test_given_relative_sqlite_url_when_run_from_elsewhere_then_the_file_is_next_to_the_config(
    tmp_path: Path, served: tuple[Sandbox, str], box: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    box["bigcapital"].seed_fake(3)
    home, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    home.mkdir()
    elsewhere.mkdir()
    config = _config(home, served[1], state_url="sqlite:///state.db")
    monkeypatch.chdir(elsewhere)

    assert invoke("run", PIPELINE, "--config", str(config)).exit_code == 0
    status = invoke("status", PIPELINE, "--json", "--config", str(config))

    assert (home / "state.db").is_file()
    assert list(elsewhere.iterdir()) == [], "nothing is created where custsync happens to run"
    assert json.loads(status.stdout)["runs"][0]["created"] == 3, "status reads the same database"


def test_given_broker_down_when_check_then_exit_3_naming_the_masked_broker_url(
    tmp_path: Path, served: tuple[Sandbox, str], box: Sandbox
) -> None:
    config = _config(
        tmp_path, served[1], state_url=f"sqlite:///{tmp_path}/s.db", broker_url=f"redis://:{PASSWORD}@127.0.0.1:1/0"
    )

    result = invoke("check", "--config", str(config))

    assert result.exit_code == 3, result.output
    broker_lines = [line for line in result.stdout.splitlines() if line.startswith("  broker ")]
    assert len(broker_lines) == 1
    assert "127.0.0.1:1" in broker_lines[0]
    assert "FAILED" in broker_lines[0]
    assert PASSWORD not in result.output
    assert not (tmp_path / "s.db").exists(), "check creates no state store"


def test_given_state_store_unreachable_when_check_then_exit_3_naming_it(
    tmp_path: Path, served: tuple[Sandbox, str], box: Sandbox
) -> None:
    url = f"postgresql://custsync:{PASSWORD}@127.0.0.1:1/custsync"
    config = _config(tmp_path, served[1], state_url=url, broker_url="redis://127.0.0.1:6379/7")

    result = invoke("check", "--config", str(config))

    assert result.exit_code == 3, result.output
    state_lines = [line for line in result.stdout.splitlines() if line.startswith("  state store ")]
    assert len(state_lines) == 1
    assert "custsync:***@127.0.0.1:1" in state_lines[0]
    assert "FAILED" in state_lines[0]
    assert "broker redis://127.0.0.1:6379/7: ok" in result.stdout
    assert PASSWORD not in result.output


def test_given_everything_reachable_when_check_then_store_and_broker_ok_and_exit_0(
    tmp_path: Path, served: tuple[Sandbox, str], box: Sandbox
) -> None:
    config = _config(tmp_path, served[1], state_url=f"sqlite:///{tmp_path}/s.db", broker_url="redis://127.0.0.1:6379/7")

    result = invoke("check", "--config", str(config))

    assert result.exit_code == 0, result.output
    assert "state store" in result.stdout
    assert "not created yet" in result.stdout
    assert "broker redis://127.0.0.1:6379/7: ok" in result.stdout


def test_given_empty_config_when_check_then_a_warning_not_valid(tmp_path: Path) -> None:
    path = tmp_path / "empty.toml"
    path.write_text(f'[state]\nurl = "sqlite:///{tmp_path}/s.db"\n[broker]\nurl = "redis://127.0.0.1:6379/7"\n')

    result = invoke("check", "--config", str(path))

    assert "valid" not in result.stdout
    assert "warning: no connections and no pipelines" in result.stderr
    assert result.exit_code == 0, result.output


def test_given_no_redis_when_run_then_the_store_lock_covers_it_and_no_warning_is_printed(
    tmp_path: Path, served: tuple[Sandbox, str], box: Sandbox
) -> None:
    box["bigcapital"].seed_fake(2)
    config = _config(tmp_path, served[1], state_url=f"sqlite:///{tmp_path}/s.db")
    get_settings.cache_clear()

    result = CliRunner().invoke(
        cli.app, ["run", PIPELINE, "--config", str(config)], env={"CUSTSYNC_LOG_FORMAT": "json"}
    )

    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    unavailable = [e for e in events if e["event"] == "lock_unavailable"]
    assert len(unavailable) == 1
    assert unavailable[0]["level"] == "info"
    assert unavailable[0]["covered_by"] == "state_store_lock"
    assert any(e["event"] == "store_lock_acquired" for e in events)
    assert not [e for e in events if e["level"] in ("warning", "error")]


@pytest.mark.parametrize("command", [["status"], ["status", PIPELINE], ["failures", PIPELINE]])
def test_given_no_store_yet_when_status_or_failures_then_it_says_so_and_creates_nothing(
    tmp_path: Path, command: list[str]
) -> None:
    db = tmp_path / "never-run.db"
    path = _config(tmp_path, "http://127.0.0.1:1", state_url=f"sqlite:///{db}")

    result = invoke(*command, "--config", str(path))

    assert result.exit_code == 0, result.output
    assert f"no state store at {db} yet" in result.stderr
    assert not db.exists(), "a report reads; it never creates the state store"
