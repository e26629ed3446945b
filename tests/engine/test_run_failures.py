"""Runs that cannot finish: credentials refused, source unreachable. Exit 3, nothing lost, no secret kept."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from structlog.testing import capture_logs

from connectors.thredfi import ThredfiConnector
from sandbox import bigcapital, thredfi
from sandbox.server import Sandbox, sandbox_config
from state.store import Store
from tests.conftest import SANDBOX_URL, SyncFn
from worker.config import AppConfig, parse_config

SECRETS = (bigcapital.SANDBOX_API_KEY, thredfi.SANDBOX_API_KEY, "thred_sk_wrong_key")


def _config(store_url: str, *replace: tuple[str, str]) -> AppConfig:
    raw = sandbox_config(SANDBOX_URL, state_url=store_url)
    for old, new in replace:
        raw = raw.replace(old, new)
    return parse_config(tomllib.loads(raw), path=Path("sandbox.toml"), environ={})


def _everything_stored(store: Store) -> str:
    dump: list[str] = []
    with store.engine.connect() as connection:
        for table in inspect(store.engine).get_table_names():
            for row in connection.execute(text(f"SELECT * FROM {table}")):  # table names come from the schema
                dump.append(" ".join(str(v) for v in row))
    return "\n".join(dump)


async def test_given_thredfi_refuses_credentials_when_run_then_failed_exit_3_and_next_run_lands_each_once(
    sandbox: Sandbox, sync: SyncFn, store: Store, store_url: str
) -> None:
    sandbox["bigcapital"].seed_fake(5)
    wrong = _config(store_url, (thredfi.SANDBOX_API_KEY, "thred_sk_wrong_key"))

    failed = await sync("bigcapital_to_thredfi", config=wrong)

    assert (failed.status, failed.exit_code) == ("failed", 3)
    assert failed.error is not None
    assert failed.error.startswith("thredfi"), "the error names the system that refused"
    assert "401" in failed.error
    assert sandbox["thredfi"].records == {}
    run = store.get_run(failed.run_id)
    assert run is not None
    assert (run.status, run.error) == ("failed", failed.error)
    stored = _everything_stored(store)
    assert not any(secret in stored for secret in SECRETS), "no key is ever kept in the state store"

    fixed = await sync("bigcapital_to_thredfi")

    assert fixed.status == "succeeded", fixed.summary()
    assert fixed.counts.created == 5
    assert len({r["external_id"] for r in sandbox["thredfi"].records.values()}) == len(sandbox["thredfi"].records) == 5


async def test_given_bigcapital_refuses_credentials_when_run_then_failed_before_any_write(
    sandbox: Sandbox, sync: SyncFn, store_url: str
) -> None:
    sandbox["bigcapital"].seed_fake(3)
    wrong = _config(store_url, (bigcapital.SANDBOX_API_KEY, "bc_not_the_key_at_all"))

    result = await sync("bigcapital_to_thredfi", config=wrong)

    assert (result.status, result.exit_code) == ("failed", 3)
    assert "bc_not_the_key_at_all" not in (result.error or "")
    assert sandbox["thredfi"].writes() == []
    assert result.summary()["status"] == "failed"


async def test_given_source_server_down_when_run_then_failed_exit_3(sandbox: Sandbox, sync: SyncFn) -> None:
    sandbox["bigcapital"].seed_fake(3)
    sandbox["bigcapital"].faults.add("error_before", method="GET", status=503, times=None)

    result = await sync("bigcapital_to_thredfi")

    assert (result.status, result.exit_code) == ("failed", 3)
    assert "503" in (result.error or "") or "server error" in (result.error or "")
    assert sandbox["thredfi"].writes() == []


async def test_given_unexpected_error_mid_run_when_run_then_run_is_recorded_failed_and_summary_logged(
    sandbox: Sandbox, sync: SyncFn, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox["bigcapital"].seed_fake(3)

    async def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(ThredfiConnector, "create", broken)

    with capture_logs() as events:
        result = await sync("bigcapital_to_thredfi")

    # Returned, not raised: `--json` still prints its object, with a one-line error.
    assert (result.status, result.exit_code) == ("failed", 3)
    assert result.error is not None
    assert "RuntimeError" in result.error
    assert "\n" not in result.error
    assert "a bug" not in result.error, "the traceback and message go to the log only"
    assert result.summary()["error"] == result.error
    (crashed,) = [e for e in events if e["event"] == "run_crashed"]
    assert crashed["log_level"] == "error"
    assert crashed.get("exc_info"), "the log keeps the traceback"
    (run,) = store.runs("bigcapital_to_thredfi")
    assert run.status == "failed", "a crashed run is never left 'running'"
    assert run.error is not None
    assert "RuntimeError" in run.error
    assert run.finished_at is not None
    finished = [e for e in events if e["event"] == "run_finished"]
    assert len(finished) == 1
    assert finished[0]["status"] == "failed"
