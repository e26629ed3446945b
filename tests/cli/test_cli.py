"""The ``custsync`` command line against the sandbox served on loopback.

The CLI builds its own connectors (no transports), so the four emulators are
served by uvicorn on 127.0.0.1 and the config file points there. Commands that
touch the state store run on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from sandbox import bigcapital, thredfi
from sandbox.server import Sandbox, free_port, sandbox_config
from state.store import Store
from worker import cli
from worker.settings import get_settings

RUN_KEYS = {
    "pipeline",
    "run_id",
    "status",
    "pulled",
    "created",
    "updated",
    "archived",
    "unchanged",
    "failed",
    "matched",
    "duration_s",
}
PIPELINE = "bigcapital_to_thredfi"

SQLITE_ONLY = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)  # the store plays no part here


@pytest.fixture
def config_file(tmp_path: Path, served: tuple[Sandbox, str], store_url: str) -> Path:
    path = tmp_path / "custsync.toml"
    # No broker: these tests run in parallel on the same pipeline names, and the CLI
    # takes the pipeline's Redis lock whenever a broker answers (tested below).
    path.write_text(sandbox_config(served[1], state_url=store_url, broker_url=NO_BROKER), encoding="utf-8")
    return path


NO_BROKER = "redis://127.0.0.1:1/0"
LOCK_REDIS = "redis://127.0.0.1:6379/10"


def test_given_a_worker_holds_the_pipeline_lock_when_run_then_skipped_with_exit_3(
    tmp_path: Path, served: tuple[Sandbox, str]
) -> None:
    import redis

    from worker.lock import KEY_PREFIX

    path = tmp_path / "locked.toml"
    path.write_text(
        sandbox_config(served[1], state_url=f"sqlite:///{tmp_path}/s.db", broker_url=LOCK_REDIS), encoding="utf-8"
    )
    client = redis.Redis.from_url(LOCK_REDIS)
    client.set(KEY_PREFIX + PIPELINE, "task:abc@elsewhere:1#x", px=30_000)
    try:
        result = invoke("run", PIPELINE, "--json", "--config", str(path))
    finally:
        client.delete(KEY_PREFIX + PIPELINE)
        client.close()
    assert result.exit_code == 3, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["status"] == "skipped"
    assert "task:abc" in result.stderr
    assert served[0]["thredfi"].writes() == []


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    get_settings.cache_clear()
    return CliRunner().invoke(cli.app, list(args), env=env)


def run_json(config_file: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    result = invoke("run", PIPELINE, "--json", "--config", str(config_file), *extra)
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, result.stdout
    return result.exit_code, json.loads(lines[0])


# -- run ------------------------------------------------------------------------


def test_given_sandbox_when_run_json_then_one_object_with_exactly_the_contract_keys(
    box: Sandbox, config_file: Path
) -> None:
    box["bigcapital"].seed_fake(7)

    code, summary = run_json(config_file)

    assert code == 0
    assert set(summary) == RUN_KEYS
    assert summary["pipeline"] == PIPELINE
    assert summary["status"] == "succeeded"
    assert (summary["pulled"], summary["created"], summary["failed"]) == (7, 7, 0)
    assert isinstance(summary["duration_s"], float)
    assert summary["run_id"]
    assert len(box["thredfi"].records) == 7
    code, again = run_json(config_file)
    assert (code, again["unchanged"], again["created"]) == (0, 7, 0)
    assert again["run_id"] != summary["run_id"]


@SQLITE_ONLY
def test_given_stderr_not_a_tty_when_run_then_logs_are_json_on_stderr_and_results_on_stdout(
    box: Sandbox, config_file: Path
) -> None:
    box["bigcapital"].seed_fake(3)

    result = invoke("run", PIPELINE, "--json", "--config", str(config_file))

    assert result.exit_code == 0
    assert json.loads(result.stdout)["created"] == 3
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    names = [e["event"] for e in events]
    assert names.count("run_started") == 1
    assert names.count("run_finished") == 1
    assert "run_finished" not in result.stdout
    assert bigcapital.SANDBOX_API_KEY not in result.stderr
    assert thredfi.SANDBOX_API_KEY not in result.stderr


@SQLITE_ONLY
def test_given_text_output_when_run_then_counts_table_is_printed(box: Sandbox, config_file: Path) -> None:
    box["bigcapital"].seed_fake(2)

    result = invoke("run", PIPELINE, "--config", str(config_file))

    assert result.exit_code == 0
    assert f"{PIPELINE}: succeeded" in result.stdout
    assert "created" in result.stdout
    assert "unchanged" in result.stdout


@SQLITE_ONLY
def test_given_config_from_env_when_run_without_option_then_env_config_is_used(
    box: Sandbox, config_file: Path, tmp_path: Path
) -> None:
    box["bigcapital"].seed_fake(2)
    other_state = f"sqlite:///{tmp_path / 'override.db'}"

    result = invoke(
        "run", PIPELINE, "--json", env={"CUSTSYNC_CONFIG": str(config_file), "CUSTSYNC_STATE_URL": other_state}
    )

    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["created"] == 2
    store = Store(other_state)
    try:
        assert len(store.runs(PIPELINE)) == 1, "CUSTSYNC_STATE_URL overrides [state] url"
    finally:
        store.close()


# -- dry run --------------------------------------------------------------------


def test_given_dry_run_when_run_then_plan_is_printed_and_nothing_is_written(
    box: Sandbox, config_file: Path, store_url: str
) -> None:
    seeded = box["bigcapital"].seed_fake(4)

    result = invoke("run", PIPELINE, "--dry-run", "--config", str(config_file))

    assert result.exit_code == 0, result.stderr
    assert "dry run" in result.stdout
    assert "Planned changes:" in result.stdout
    for record in seeded:
        assert f"bigcapital:{bigcapital.SANDBOX_ORGANIZATION_ID}:{record['id']}" in result.stdout
    assert all(not emulator.writes() for emulator in box.emulators.values())
    store = Store(store_url)
    try:
        assert store.runs() == []
        assert store.count_links("bigcapital") == 0
    finally:
        store.close()
    code, summary = run_json(config_file, "--dry-run")
    assert code == 0
    assert summary["dry_run"] is True
    assert set(summary) >= RUN_KEYS
    assert summary["created"] == 4
    assert len(summary["planned"]) == 4
    assert not box["thredfi"].writes()


# -- quarantine: run, failures, status, retry ---------------------------------------


def test_given_record_thredfi_refuses_when_run_then_exit_1_and_failures_lists_it(
    box: Sandbox, config_file: Path
) -> None:
    seeded = box["bigcapital"].seed_fake(5)
    box["bigcapital"].admin_edit(seeded[2], {"email": "not-an-email"})

    code, summary = run_json(config_file)

    assert code == 1
    assert (summary["status"], summary["failed"], summary["created"]) == ("partial", 1, 4)
    listed = invoke("failures", PIPELINE, "--json", "--config", str(config_file))
    assert listed.exit_code == 0
    (entry,) = json.loads(listed.stdout)
    assert entry["source_id"] == str(seeded[2]["id"])
    assert entry["external_id"] == f"bigcapital:{bigcapital.SANDBOX_ORGANIZATION_ID}:{seeded[2]['id']}"
    assert entry["field"] == "email"
    assert "email" in entry["reason"]
    text = invoke("failures", PIPELINE, "--config", str(config_file))
    assert text.exit_code == 0
    assert str(seeded[2]["id"]) in text.stdout
    assert "email" in text.stdout
    assert "1 quarantined" in text.stdout


def test_given_quarantine_when_status_then_runs_counts_and_quarantine_size_are_reported(
    box: Sandbox, config_file: Path
) -> None:
    seeded = box["bigcapital"].seed_fake(4)
    box["bigcapital"].admin_edit(seeded[0], {"email": "not-an-email"})
    run_json(config_file)

    result = invoke("status", PIPELINE, "--json", "--config", str(config_file))

    assert result.exit_code == 0
    report = json.loads(result.stdout)
    assert report["pipeline"] == PIPELINE
    assert report["quarantined"] == 1
    (last,) = report["runs"]
    assert (last["status"], last["kind"], last["created"], last["failed"], last["pulled"]) == (
        "partial",
        "run",
        3,
        1,
        4,
    )
    everything = invoke("status", "--json", "--config", str(config_file))
    assert everything.exit_code == 0
    pipelines = {entry["pipeline"]: entry for entry in json.loads(everything.stdout)}
    assert len(pipelines) == 12
    assert pipelines["thredfi_to_bigcapital"]["runs"] == []
    overview = invoke("status", "--config", str(config_file))
    assert overview.exit_code == 0
    assert PIPELINE in overview.stdout  # one line per pipeline, names kept whole
    assert "never run" in overview.stdout
    text = invoke("status", PIPELINE, "--config", str(config_file))
    assert text.exit_code == 0
    assert "1 quarantined" in text.stdout
    assert "partial" in text.stdout


def test_given_quarantined_record_when_retry_then_pushed_again_and_exit_reflects_outcome(
    box: Sandbox, config_file: Path
) -> None:
    seeded = box["bigcapital"].seed_fake(3)
    box["bigcapital"].admin_edit(seeded[1], {"email": "not-an-email"})
    run_json(config_file)
    before = len(box["thredfi"].writes())

    still = invoke("retry", PIPELINE, "--json", "--config", str(config_file))

    assert still.exit_code == 1
    assert json.loads(still.stdout)["failed"] == 1
    # The retry checks the record again; an invalid e-mail is refused before any request.
    assert len(box["thredfi"].writes()) == before, "an e-mail thredfi would refuse is never sent"
    box["bigcapital"].records[str(seeded[1]["id"])]["email"] = "fixed@example.com"
    fixed = invoke("retry", PIPELINE, "--json", "--config", str(config_file))
    assert fixed.exit_code == 0
    assert json.loads(fixed.stdout)["created"] == 1
    assert json.loads(invoke("failures", PIPELINE, "--json", "--config", str(config_file)).stdout) == []
    status = json.loads(invoke("status", PIPELINE, "--json", "--config", str(config_file)).stdout)
    assert [r["kind"] for r in status["runs"]] == ["retry", "retry", "run"]


# -- could not finish: exit 3 ---------------------------------------------------------


def test_given_wrong_api_key_when_run_then_exit_3_and_run_recorded_failed(box: Sandbox, config_file: Path) -> None:
    box["bigcapital"].seed_fake(2)
    config_file.write_text(config_file.read_text().replace(bigcapital.SANDBOX_API_KEY, "bc_wrong_key_0000000"))

    code, summary = run_json(config_file)

    assert code == 3
    assert summary["status"] == "failed"
    assert "credentials" in summary["error"]
    assert "bc_wrong_key_0000000" not in json.dumps(summary)
    assert box["thredfi"].records == {}
    status = json.loads(invoke("status", PIPELINE, "--json", "--config", str(config_file)).stdout)
    assert status["runs"][0]["status"] == "failed"


@SQLITE_ONLY
def test_given_unreachable_source_when_run_then_exit_3(box: Sandbox, config_file: Path) -> None:
    text = config_file.read_text()
    url = next(line for line in text.splitlines() if "/bigcapital" in line).split('"')[1]
    config_file.write_text(text.replace(url, f"http://127.0.0.1:{free_port()}/bigcapital"))

    code, summary = run_json(config_file)

    assert code == 3
    assert summary["status"] == "failed"
    assert summary["error"]


@SQLITE_ONLY
def test_given_valid_config_when_check_then_every_connection_ok_and_exit_0(box: Sandbox, config_file: Path) -> None:
    # check also pings the broker (13.4): this one answers (Redis DB 7, nothing written to it).
    config_file.write_text(config_file.read_text().replace(NO_BROKER, "redis://127.0.0.1:6379/7"))
    result = invoke("check", "--config", str(config_file))

    assert result.exit_code == 0, result.stdout
    assert "valid (4 connections, 12 pipelines)" in result.stdout
    for name in ("bigcapital", "thredfi", "piriod", "timbrix"):
        assert f"{name} ({name}): ok" in result.stdout


@SQLITE_ONLY
def test_given_wrong_api_key_when_check_then_that_connection_fails_and_exit_3(box: Sandbox, config_file: Path) -> None:
    config_file.write_text(config_file.read_text().replace(thredfi.SANDBOX_API_KEY, "thred_sk_wrong"))

    result = invoke("check", "--config", str(config_file))

    assert result.exit_code == 3
    assert "thredfi (thredfi): FAILED" in result.stdout
    assert "bigcapital (bigcapital): ok" in result.stdout
    assert "thred_sk_wrong" not in result.stdout + result.stderr


# -- configuration and usage errors: exit 2 -----------------------------------------------


def _sandbox_text() -> str:
    return sandbox_config("http://127.0.0.1:9", state_url="sqlite:///unused.db")


CONFIG_ERRORS = [
    pytest.param(
        lambda t: t.replace(f'"{bigcapital.SANDBOX_API_KEY}"', '"${CUSTSYNC_TEST_NO_SUCH_VAR}"'),
        ["connections.bigcapital.api_key", "CUSTSYNC_TEST_NO_SUCH_VAR"],
        id="missing env var",
    ),
    pytest.param(
        lambda t: t.replace("test_mode = true", 'test_mode = true\nflavour = "x"'),
        ["connections.piriod.flavour", "unknown key"],
        id="unknown key",
    ),
    pytest.param(
        lambda t: t.replace('system = "timbrix"', 'system = "xero"'),
        ["connections.timbrix.system", "xero"],
        id="unknown system",
    ),
    pytest.param(
        lambda t: t.replace(
            '[pipelines.bigcapital_to_thredfi]\nsource = "bigcapital"',
            '[pipelines.bigcapital_to_thredfi]\nsource = "books"',
        ),
        ["pipelines.bigcapital_to_thredfi.source", "books"],
        id="missing connection",
    ),
    pytest.param(
        lambda t: t.replace('target = "thredfi"\n', 'target = "thredfi"\nschedule = "*/99 * *"\n', 1),
        ["schedule", "cron"],
        id="bad cron",
    ),
    pytest.param(lambda t: t + "\n[pipelines.broken\n", ["not valid TOML"], id="bad TOML"),
]


@pytest.mark.parametrize(("edit", "expected"), CONFIG_ERRORS)
def test_given_config_error_when_any_command_then_exit_2_naming_file_and_key(
    tmp_path: Path, edit: Any, expected: list[str]
) -> None:
    path = tmp_path / "custsync.toml"
    path.write_text(edit(_sandbox_text()), encoding="utf-8")

    for args in (["run", PIPELINE], ["check"], ["status"], ["failures", PIPELINE], ["retry", PIPELINE]):
        result = invoke(*args, "--config", str(path))
        assert result.exit_code == 2, (args, result.stdout, result.stderr)
        assert str(path) in result.stderr
        for part in expected:
            assert part in result.stderr, result.stderr
        assert result.stdout == ""


def test_given_config_path_with_brackets_when_error_then_message_is_printed_verbatim(tmp_path: Path) -> None:
    folder = tmp_path / "[prod]"
    folder.mkdir()
    path = folder / "custsync.toml"
    path.write_text(_sandbox_text().replace('system = "timbrix"', 'system = "xero"'), encoding="utf-8")

    result = invoke("check", "--config", str(path))

    assert result.exit_code == 2
    assert f"{path}: connections.timbrix.system" in result.stderr


def test_given_unknown_pipeline_when_run_then_exit_2_listing_known_ones(tmp_path: Path) -> None:
    path = tmp_path / "custsync.toml"
    path.write_text(_sandbox_text(), encoding="utf-8")

    for command in ("run", "failures", "retry", "status"):
        result = invoke(command, "nope", "--config", str(path))
        assert result.exit_code == 2, command
        assert "nope" in result.stderr
        assert "bigcapital_to_thredfi" in result.stderr


def test_given_missing_config_file_when_run_then_exit_2(tmp_path: Path) -> None:
    result = invoke("run", PIPELINE, "--config", str(tmp_path / "absent.toml"))

    assert result.exit_code == 2
    assert "absent.toml" in result.stderr
    assert "no such config file" in result.stderr


def test_given_missing_argument_when_run_then_usage_error_exit_2() -> None:
    assert invoke("run").exit_code == 2
    assert invoke("run", PIPELINE, "--no-such-flag").exit_code == 2


@SQLITE_ONLY
def test_given_unexpected_error_when_run_then_exit_3_not_1(
    box: Sandbox, config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from connectors.thredfi import ThredfiConnector

    box["bigcapital"].seed_fake(2)

    async def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(ThredfiConnector, "create", broken)

    result = invoke("run", PIPELINE, "--json", "--config", str(config_file))

    assert result.exit_code == 3, "1 means 'some records quarantined'; a crash is 'could not finish'"
    assert "RuntimeError" in result.stderr
    status = json.loads(invoke("status", PIPELINE, "--json", "--config", str(config_file)).stdout)
    assert status["runs"][0]["status"] == "failed"
