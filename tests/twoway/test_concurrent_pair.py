"""Both pipelines of a two-way pair run at the same moment, with edits on both sides: every edit arrives.

Bigcapital ⇄ Thredfi, on SQLite and on PostgreSQL, with no broker (the CLI
locks through the state store). Both sides are seeded with customers of their
own and synced both ways. Then, on every customer both sides hold, Bigcapital
edits the phone and Thredfi the e-mail, and ``custsync run bigcapital_to_thredfi``
and ``custsync run thredfi_to_bigcapital`` start as two real processes at one
instant against the sandbox served on loopback; the listings answer slowly so
both runs have read their source before either writes. Afterwards:

- both runs succeeded (neither is skipped: they are different pipelines), and their
  recorded runs overlap in time;
- every edit arrived on the other side and none was reverted on its own side;
- no copy was made (record counts unchanged, every e-mail once per system);
- a sequential round after them writes nothing and leaves every edit in place
  (what each run remembered of the other's writes was not lost in the race).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sandbox.server import Sandbox
from state.store import Store
from tests.support.twoway import (
    by_email,
    connectors,
    duplicated_emails,
    edit,
    run_cli_together,
    seed_pair,
    snapshot,
    twoway_config,
    twoway_toml,
    writes,
)
from worker.config import AppConfig
from worker.sync import run_pipeline

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

BC, TH = "bigcapital", "thredfi"
PIPELINES = (f"{BC}_to_{TH}", f"{TH}_to_{BC}")
CLOSED_BROKER = "redis://127.0.0.1:1/0"
PHONES = {"MX": "+525598765400", "US": "+15125550100", "GB": "+442079460100", "CL": "+56229876500"}


async def sequential_round(config: AppConfig, store_url: str) -> None:
    store = Store(store_url)
    try:
        for name in PIPELINES:
            result = await run_pipeline(config, name, store=store)
            assert result.status == "succeeded", result.summary()
    finally:
        store.close()


async def test_given_edits_on_both_sides_when_both_pipelines_run_at_once_then_all_arrive_none_reverted_no_copy(
    served: tuple[Sandbox, str], store_url: str, tmp_path: Path
) -> None:
    box, url = served
    seed_pair(box, BC, TH)
    config = twoway_config(store_url, base_url=url, broker_url=CLOSED_BROKER)
    path = tmp_path / "custsync.toml"
    path.write_text(twoway_toml(store_url, base_url=url, broker_url=CLOSED_BROKER), encoding="utf-8")
    await sequential_round(config, store_url)
    mapping = connectors(config, (BC, TH))
    bc, th = (by_email(snapshot(box, mapping[s], s)) for s in (BC, TH))
    shared = sorted(bc.keys() & th.keys())
    assert len(shared) >= 20, f"only {len(shared)} customers on both sides"
    counts = {s: len(box[s].records) for s in (BC, TH)}
    expected: dict[str, tuple[str, str]] = {}  # old email → (new phone, new email)
    for n, email in enumerate(shared):
        country = bc[email][1].country or "US"
        phone, new_email = PHONES.get(country, PHONES["US"])[:-2] + f"{n:02d}", f"edited.{email}"
        edit(box, BC, bc[email][0], "phone", phone)
        edit(box, TH, th[email][0], "email", new_email)
        expected[email] = (phone, new_email)
    # Each listing answers slowly: both runs hold their source's records before either writes.
    for system in (BC, TH):
        box[system].faults.add("slow", method="GET", path=r"customers/?$", delay_s=1.5, times=None)

    try:
        results = run_cli_together(path, PIPELINES)
    finally:
        for system in (BC, TH):
            box[system].faults.clear()

    for (code, stdout, stderr), name in zip(results, PIPELINES, strict=True):
        assert code == 0, (name, code, stdout, stderr[-3000:])
        assert json.loads(stdout.strip().splitlines()[-1])["status"] == "succeeded", (name, stdout)
    store = Store(store_url)
    try:
        (one,), (two,) = (store.runs(name, limit=1) for name in PIPELINES)
    finally:
        store.close()
    assert one.finished_at is not None
    assert two.finished_at is not None
    assert max(one.started_at, two.started_at) < min(one.finished_at, two.finished_at), "the runs did not overlap"
    for rounds in ("after the concurrent runs", "after one more round"):
        now = {s: snapshot(box, mapping[s], s) for s in (BC, TH)}
        for email, (phone, new_email) in expected.items():
            for system, rid in ((BC, bc[email][0]), (TH, th[email][0])):
                got = now[system][rid]
                assert got is not None, (rounds, system, rid)
                assert (got.phone, got.email) == (phone, new_email), f"{rounds}: {system} {rid} ({email})"
        for system in (BC, TH):
            assert len(box[system].records) == counts[system], f"{rounds}: {system} got a copy"
            assert duplicated_emails(box, mapping[system], system) == {}, rounds
        if rounds == "after the concurrent runs":
            before = writes(box, (BC, TH))
            await sequential_round(config, store_url)
            assert writes(box, (BC, TH)) == before, "the round after the concurrent runs wrote"
