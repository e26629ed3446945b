"""Issue 5, part 5: the state store is deleted after a full sync, and the sync runs again.

Targets that recover identity (Thredfi by external_id, Piriod by metadata)
get zero new records; Bigcapital and Timbrix get none either, every record
being found again by its natural keys, and those matches are reported
(``RunResult.matched``, the ``natural_key_matched`` events, the
``run_finished`` summary).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import structlog.testing

from sandbox.server import BackgroundServer, Sandbox
from state.store import Store
from tests.support.soak import PAIRS, config_text, load, mutate_source, seed_source, verify_async
from worker.sync import run_pipeline

COUNT = 20
CUSTSYNC = str(Path(sys.executable).parent / "custsync")


def _delete(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _creates(sandbox: Sandbox, system: str) -> int:
    return sum(1 for r in sandbox[system].requests if r.method == "POST" and r.status == 201)


@pytest.mark.parametrize(
    ("pair", "recovery"),
    [
        ("bt", "external_id"),
        ("tp", "external_id"),
        ("tb", "natural_key"),
        ("tx", "natural_key"),
        ("xt", "external_id"),
        ("pb", "natural_key"),
    ],
)
@pytest.mark.parametrize("edited", [False, True])
async def test_given_the_state_store_deleted_after_a_full_sync_when_run_again_then_zero_new_records(
    pair: str, recovery: str, edited: bool, sandbox: Sandbox, tmp_path: Path
) -> None:
    target, pipeline = PAIRS[pair][1], "_to_".join(PAIRS[pair])
    state = tmp_path / "state.db"
    config = load(config_text("http://sandbox.test", f"sqlite:///{state}"))
    transports = {name: httpx.ASGITransport(app=sandbox.app) for name in config.connections}
    seed_source(sandbox, pair, COUNT)
    store = Store(f"sqlite:///{state}")
    first = await run_pipeline(config, pipeline, store=store, transports=transports)
    store.close()
    expected = (await verify_async(sandbox, config, pipeline)).expected
    assert first.counts.created == expected > 0
    if edited:  # and the source moved on meanwhile: edits, (in)activations
        mutate_source(sandbox, pair, random.Random(3), added_seed=None)
    _delete(state)
    records_before, creates_before = set(sandbox[target].records), _creates(sandbox, target)

    store = Store(f"sqlite:///{state}")
    with structlog.testing.capture_logs() as events:
        again = await run_pipeline(config, pipeline, store=store, transports=transports)
    store.close()

    assert again.status == "succeeded", again.summary()
    assert set(sandbox[target].records) == records_before, "no new record in the target"
    assert _creates(sandbox, target) == creates_before, "not one create was answered 201"
    check = await verify_async(sandbox, config, pipeline)
    assert check.clean, check
    assert check.found == expected, check
    matched = [e for e in events if e["event"] == "natural_key_matched"]
    (summary,) = [e for e in events if e["event"] == "run_finished"]
    # Found, not created, however found: each record counts once, as matched (product.md).
    assert again.counts.created == 0
    assert again.matched == expected == summary["matched"]
    if recovery == "natural_key":
        assert len(matched) == expected
        assert {e["key"] for e in matched} <= {"tax_id", "email"}
    else:
        assert not matched, "the identity slot answers; no natural key is needed"
    assert all("external_id" in e and "target_id" in e for e in matched)


def test_given_the_sqlite_file_deleted_when_custsync_runs_again_then_matches_are_reported_and_nothing_created(
    tmp_path: Path,
) -> None:
    """The same through the command line: the file is gone, ``--json`` and the logs tell what happened."""
    box = Sandbox()
    seed_source(box, "tb", COUNT)
    state = tmp_path / "state.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUSTSYNC_")}
    env["CUSTSYNC_LOG_FORMAT"] = "json"
    with BackgroundServer(box.app) as server:
        config = tmp_path / "custsync.toml"
        config.write_text(config_text(server.url, f"sqlite:///{state}"), encoding="utf-8")

        def run() -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [CUSTSYNC, "run", "thredfi_to_bigcapital", "-c", str(config), "--json"],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )

        first = run()
        records = set(box["bigcapital"].records)
        _delete(state)
        again = run()

    assert (first.returncode, again.returncode) == (0, 0), again.stderr[-2000:]
    assert json.loads(first.stdout)["created"] == COUNT
    summary = json.loads(again.stdout)
    assert (summary["created"], summary["matched"], summary["status"]) == (0, COUNT, "succeeded")
    assert set(box["bigcapital"].records) == records
    events = [json.loads(line) for line in again.stderr.splitlines() if line.startswith("{")]
    assert sum(e["event"] == "natural_key_matched" for e in events) == COUNT
    (finished,) = [e for e in events if e["event"] == "run_finished"]
    assert finished["matched"] == COUNT
