"""9.1: two ``custsync run`` processes of one pipeline, started at once, no Redis answering: no duplicates.

The state store locks the run itself (an advisory lock on PostgreSQL, a
lease row on SQLite), so the CLI is safe with no broker. Both runs are real
processes released at the same instant, with the broker pointed at a closed
port; the sandbox is served on loopback from this process, and the source
listing is slowed so the first run is still at work when the second asks.
Into Bigcapital and Timbrix (no identity slot: a second run would create
every customer again): exactly one run succeeds, the other is recorded
``skipped`` and exits 3 naming the holder, and the target holds each
customer once.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from sandbox.fake import fake_customers
from sandbox.server import Sandbox, sandbox_config
from state.store import Store

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

COUNT = 40
CLOSED_BROKER = "redis://127.0.0.1:1/0"


def _seed_thredfi(box: Sandbox, *, countries: tuple[str, ...] | None) -> None:
    """Active Thredfi customers (Mexican ones for Timbrix, which needs an RFC and a Mexican address)."""
    fakes = fake_customers(COUNT, seed=11, countries=countries) if countries else fake_customers(COUNT, seed=11)
    for fake in fakes:
        box["thredfi"].admin_seed(
            {
                "individual_name": fake.name if fake.kind == "individual" else "",
                "company_name": fake.company_name or "",
                "email": fake.email,
                "office_phone": fake.phone,
                "address_line1": fake.address_line1,
                "address_line2": fake.address_line2,
                "city": fake.city,
                "state_county": fake.state,
                "postal_code": fake.postal_code,
                "country": countries[0] if countries else fake.country,
                "vat_number": fake.tax_id,
                "status": "active",
            }
        )


def _run_together(config: Path, pipeline: str, *, processes: int = 2) -> list[tuple[int, str, str]]:
    """Start ``custsync run PIPELINE --json`` in several processes, released at the same instant."""
    start = time.time() + 4.0  # past every interpreter's start-up and imports
    code = (
        "import sys, time\n"
        "from worker.cli import main\n"
        "import worker.lock, worker.sync, state.store\n"  # the run's imports, before the start line
        f"time.sleep(max(0.0, {start} - time.time()))\n"
        f"sys.argv = ['custsync', 'run', {pipeline!r}, '--json', '--config', {str(config)!r}]\n"
        "main()\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUSTSYNC_")}
    env |= {"CUSTSYNC_LOG_FORMAT": "json", "PYTHONPATH": str(Path(__file__).parents[2])}
    children = [
        subprocess.Popen(
            [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        for _ in range(processes)
    ]
    results = []
    for child in children:
        stdout, stderr = child.communicate(timeout=150)
        results.append((child.returncode, stdout, stderr))
    return results


@pytest.mark.parametrize("store_url", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
@pytest.mark.parametrize(
    ("pipeline", "target", "countries"),
    [
        ("thredfi_to_bigcapital", "bigcapital", None),
        ("thredfi_to_timbrix", "timbrix", ("MX",)),
    ],
)
def test_given_two_runs_started_at_once_without_redis_when_both_finish_then_one_ran_one_was_skipped_no_duplicates(
    served: tuple[Sandbox, str],
    store_url: str,
    tmp_path: Path,
    pipeline: str,
    target: str,
    countries: tuple[str, ...] | None,
) -> None:
    box, url = served
    for emulator in box.emulators.values():
        emulator.reset()
    _seed_thredfi(box, countries=countries)
    # The source's pages answer slowly: the winner holds the lock well past the loser's start.
    box["thredfi"].faults.add("slow", method="GET", path="/customers", delay_s=1.0, times=None)
    config = tmp_path / "custsync.toml"
    config.write_text(sandbox_config(url, state_url=store_url, broker_url=CLOSED_BROKER), encoding="utf-8")

    results = _run_together(config, pipeline)

    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 3], [(c, out, err[-2000:]) for c, out, err in results]
    (_, won, _), (_, lost, lost_err) = sorted(results, key=lambda r: r[0])
    assert won.strip(), [(c, out, err[-3000:]) for c, out, err in results]
    assert lost.strip(), [(c, out, err[-3000:]) for c, out, err in results]
    winner, loser = json.loads(won), json.loads(lost)
    assert winner["status"] == "succeeded"
    assert winner["created"] == COUNT
    assert loser["status"] == "skipped"
    skipped_lines = [line for line in lost_err.splitlines() if "not run" in line]
    assert len(skipped_lines) == 1, lost_err
    assert "state-store lock held by cli on" in skipped_lines[0]
    assert socket.gethostname() in skipped_lines[0], "the message names who holds it"
    records = list(box[target].records.values())
    emails = Counter(str(r.get("email") or r.get("Email") or r.get("contact_email") or "") for r in records)
    assert len(records) == COUNT, f"{target} holds {len(records)} customers for {COUNT}"
    assert all(n == 1 for n in emails.values()), emails.most_common(3)
    store = Store(store_url)
    try:
        statuses = sorted(r.status for r in store.runs(pipeline))
    finally:
        store.close()
    assert statuses == ["skipped", "succeeded"]
