"""The no-op fast path (worker/engine/memo.py): a page listed as a quiet run listed it is not planned again.

Thredfi lists 100 customers a page, so 250 customers are three pages. Every
test compares what a run with skipped pages reports and writes with what the
same run planning every page would: the fast path may only save work.
"""

from __future__ import annotations

from typing import Any

import pytest
from structlog.testing import capture_logs

from sandbox.server import Sandbox
from state.store import LinkWrite, Store
from tests.conftest import SyncFn, make_config, one_way
from worker.config import AppConfig
from worker.engine.results import RunResult

PIPELINE = "thredfi_to_bigcapital"
COUNT = 250  # three Thredfi pages


@pytest.fixture
def cfg(store_url: str) -> AppConfig:
    return one_way(make_config(store_url, propagate_deletes=True), PIPELINE)


async def _run(sync: SyncFn, cfg: AppConfig, status: str = "succeeded", **options: Any) -> tuple[RunResult, list[bool]]:
    """A run, and for each listed page whether it was planned."""
    with capture_logs() as logs:
        result = await sync(PIPELINE, config=cfg, **options)
    assert result.status == status, result.summary()
    return result, [e["planned"] for e in logs if e["event"] == "page_synced"]


async def _quiet(sandbox: Sandbox, sync: SyncFn, cfg: AppConfig) -> None:
    """A first sync, then the re-sync that plans every page and proves it quiet."""
    sandbox["thredfi"].seed_fake(COUNT)
    first, planned = await _run(sync, cfg)
    assert first.counts.created == COUNT
    again, planned = await _run(sync, cfg)
    assert (again.counts.unchanged, planned) == (COUNT, [True, True, True]), "the run after a sync plans every page"


async def test_given_a_quiet_run_when_nothing_changed_then_no_page_is_planned_and_all_count_unchanged(
    sandbox: Sandbox, sync: SyncFn, cfg: AppConfig
) -> None:
    await _quiet(sandbox, sync, cfg)
    writes = len(sandbox["bigcapital"].writes())

    result, planned = await _run(sync, cfg)

    assert planned == [False, False, False]
    assert (result.counts.pulled, result.counts.unchanged, result.counts.failed) == (COUNT, COUNT, 0)
    assert len(sandbox["bigcapital"].writes()) == writes


async def test_given_one_record_edited_when_run_then_only_its_page_is_planned_and_the_edit_arrives(
    sandbox: Sandbox, sync: SyncFn, cfg: AppConfig
) -> None:
    await _quiet(sandbox, sync, cfg)
    thredfi = sandbox["thredfi"]
    edited = list(thredfi.records.values())[150]  # page two
    thredfi.admin_edit(edited, {"notes": "moved to the new office"})

    result, planned = await _run(sync, cfg)

    assert planned == [False, True, False]
    assert (result.counts.updated, result.counts.unchanged) == (1, COUNT - 1)
    notes = [r.get("note") for r in sandbox["bigcapital"].records.values()]
    assert "moved to the new office" in notes
    after, planned = await _run(sync, cfg)
    assert planned == [True, True, True], "the run that wrote the edit left no memo: every page is proved again"
    assert after.counts.unchanged == COUNT
    _, planned = await _run(sync, cfg)
    assert planned == [False, False, False]


async def test_given_the_store_written_by_another_when_run_then_every_page_is_planned_and_the_change_is_acted_on(
    sandbox: Sandbox, sync: SyncFn, cfg: AppConfig, store: Store
) -> None:
    await _quiet(sandbox, sync, cfg)
    # Another writer says the Bigcapital copy of one customer holds something else now.
    link = next(iter(store.links_of("bigcapital")))
    store.save_links("bigcapital", [LinkWrite(link.identity_id, link.remote_id, "0" * 64, link.active)])

    result, planned = await _run(sync, cfg)

    assert planned == [True, True, True]
    assert (result.counts.updated, result.counts.unchanged) == (1, COUNT - 1)


async def test_given_the_pipeline_configured_otherwise_when_run_then_every_page_is_planned(
    sandbox: Sandbox, sync: SyncFn, cfg: AppConfig, store_url: str
) -> None:
    await _quiet(sandbox, sync, cfg)
    changed = one_way(make_config(store_url, propagate_deletes=True, truncate=True), PIPELINE)

    _, planned = await _run(sync, changed)

    assert planned == [True, True, True]


async def test_given_a_record_deleted_on_the_last_page_when_run_then_its_copy_is_archived(
    sandbox: Sandbox, sync: SyncFn, cfg: AppConfig, store: Store
) -> None:
    await _quiet(sandbox, sync, cfg)
    thredfi = sandbox["thredfi"]
    gone = [rid for rid, r in thredfi.records.items() if r["status"] == "ACTIVE"][-1]
    del thredfi.records[gone]

    result, planned = await _run(sync, cfg)

    # Every Thredfi page carries the listing's total: a deletion changes them all.
    assert planned == [True, True, True]
    assert result.counts.archived == 1
    (link,) = [lk for lk in store.links_of("thredfi") if lk.remote_id == gone]
    copy = next(lk for lk in store.links_of("bigcapital") if lk.identity_id == link.identity_id)
    assert copy.remote_id is not None
    assert not sandbox["bigcapital"].records[copy.remote_id]["active"], "archived in Bigcapital"


async def test_given_a_quarantined_record_when_run_again_then_its_page_is_planned_and_it_still_counts_failed(
    sandbox: Sandbox, sync: SyncFn, cfg: AppConfig
) -> None:
    thredfi = sandbox["thredfi"]
    thredfi.seed_fake(COUNT)
    bad = list(thredfi.records.values())[20]  # page one
    bad["display_name"] = bad["company_name"] = bad["individual_name"] = ""
    await _run(sync, cfg, status="partial")
    await _run(sync, cfg, status="partial")

    result, planned = await _run(sync, cfg, status="partial")

    assert planned == [True, False, False], "a page holding a failed record is never skipped"
    assert (result.counts.failed, result.counts.unchanged) == (1, COUNT - 1)


async def test_given_dry_run_full_or_retry_when_run_then_every_page_is_planned(
    sandbox: Sandbox, sync: SyncFn, cfg: AppConfig
) -> None:
    await _quiet(sandbox, sync, cfg)

    plain: list[dict[str, Any]] = [{"dry_run": True}, {"retry_quarantined": True}]
    for options in plain:
        _, planned = await _run(sync, cfg, **options)
        assert planned == [True, True, True], options
    _, planned = await _run(sync, cfg)
    assert planned == [False, False, False], "neither wrote a memo, nor spoiled one"
    full, planned = await _run(sync, cfg, full=True)
    assert planned == [True, True, True]
    assert full.counts.updated == COUNT
    _, planned = await _run(sync, cfg)
    assert planned == [True, True, True], "the full run rewrote every record: it left no memo"
