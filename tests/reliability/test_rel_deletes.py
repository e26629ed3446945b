"""Issue 5, part 8: careful deletes.

A source customer that vanished (hard delete) is found on a full scan and
archived in the target only when the pipeline enables ``propagate_deletes``,
and never more than ``max_delete_share`` of the target's linked customers in
one run: a broken source can never empty a target.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from connectors.bigcapital import BigcapitalConnector
from connectors.model import RemoteCustomer
from sandbox.server import Sandbox
from state.store import LinkWrite, Store
from tests.engine.asgi import Tamper, TamperingApp, json_answer
from tests.support.soak import config_text, load, seed_source
from worker.config import AppConfig
from worker.sync import RunResult, run_pipeline

COUNT = 30


def _config(store: Store, **options: Any) -> AppConfig:
    return load(config_text("http://sandbox.test", store.url, **options))


async def _run(
    config: AppConfig, pipeline: str, store: Store, transport: httpx.ASGITransport, **options: Any
) -> RunResult:
    return await run_pipeline(
        config, pipeline, store=store, transports={name: transport for name in config.connections}, **options
    )


def _active_in_thredfi(sandbox: Sandbox) -> int:
    return sum(1 for r in sandbox["thredfi"].records.values() if not r["is_archived"])


async def _synced(sandbox: Sandbox, store: Store, transport: httpx.ASGITransport, **options: Any) -> AppConfig:
    """Bigcapital → Thredfi synced with every customer active; returns the config."""
    seed_source(sandbox, "bt", COUNT)
    for record in sandbox["bigcapital"].records.values():
        record["active"] = 1  # the emulator stores the raw row: active is 1/0
    config = _config(store, **options)
    first = await _run(config, "bigcapital_to_thredfi", store, transport)
    assert first.counts.created == COUNT
    assert _active_in_thredfi(sandbox) == COUNT
    return config


def _hard_delete(sandbox: Sandbox, system: str, count: int) -> list[str]:
    ids = list(sandbox[system].records)[:count]
    for record_id in ids:
        del sandbox[system].records[record_id]
    return ids


async def test_given_propagate_deletes_when_source_customers_vanish_then_their_targets_are_archived_once(
    sandbox: Sandbox, transport: httpx.ASGITransport, store: Store
) -> None:
    config = await _synced(sandbox, store, transport, propagate_deletes=True, max_delete_share=0.1)
    _hard_delete(sandbox, "bigcapital", 3)

    result = await _run(config, "bigcapital_to_thredfi", store, transport)

    assert result.status == "succeeded", result.summary()
    assert (result.counts.archived, result.counts.unchanged) == (3, COUNT - 3)
    assert _active_in_thredfi(sandbox) == COUNT - 3
    assert len(sandbox["thredfi"].records) == COUNT, "archived, never deleted"
    writes = len(sandbox["thredfi"].writes())
    again = await _run(config, "bigcapital_to_thredfi", store, transport)
    assert again.counts.archived == 0, "archived once"
    assert len(sandbox["thredfi"].writes()) == writes, "archived once"


async def test_given_deletes_not_propagated_by_default_when_source_customers_vanish_then_the_target_is_untouched(
    sandbox: Sandbox, transport: httpx.ASGITransport, store: Store
) -> None:
    config = await _synced(sandbox, store, transport)
    assert config.pipelines["bigcapital_to_thredfi"].propagate_deletes is False
    _hard_delete(sandbox, "bigcapital", 3)
    writes = len(sandbox["thredfi"].writes())

    result = await _run(config, "bigcapital_to_thredfi", store, transport)

    assert result.status == "succeeded"
    assert result.counts.archived == 0
    assert len(sandbox["thredfi"].writes()) == writes
    assert _active_in_thredfi(sandbox) == COUNT


async def test_given_more_vanished_than_max_delete_share_when_run_then_nothing_is_archived_and_the_run_says_why(
    sandbox: Sandbox, transport: httpx.ASGITransport, store: Store
) -> None:
    config = await _synced(sandbox, store, transport, propagate_deletes=True, max_delete_share=0.1)
    _hard_delete(sandbox, "bigcapital", 4)  # 4 of 30 > 10 %
    writes = len(sandbox["thredfi"].writes())

    result = await _run(config, "bigcapital_to_thredfi", store, transport)

    assert result.status == "partial"
    assert result.exit_code == 1
    assert "max_delete_share" in (result.error or "")
    assert "refused to archive 4 of 30" in (result.error or "")
    assert result.counts.archived == 0
    assert len(sandbox["thredfi"].writes()) == writes
    # The operator checks the source, then lets this one run through with a higher share.
    relaxed = _config(store, propagate_deletes=True, max_delete_share=0.2)
    through = await _run(relaxed, "bigcapital_to_thredfi", store, transport)
    assert (through.status, through.counts.archived) == ("succeeded", 4)


@pytest.mark.parametrize("share", [0.1, 0.5, 0.9])
async def test_given_a_broken_source_listing_nothing_when_run_then_the_target_is_never_emptied(
    share: float, sandbox: Sandbox, transport: httpx.ASGITransport, store: Store
) -> None:
    config = await _synced(sandbox, store, transport, propagate_deletes=True, max_delete_share=share)
    sandbox["bigcapital"].records.clear()  # the source answers, with nothing in it

    result = await _run(config, "bigcapital_to_thredfi", store, transport)

    assert result.status == "partial"
    assert result.counts.archived == 0
    assert _active_in_thredfi(sandbox) == COUNT


async def test_given_the_scan_fails_half_way_when_run_then_nothing_is_archived(
    sandbox: Sandbox, transport: httpx.ASGITransport, store: Store
) -> None:
    """Bigcapital lists active, then inactive customers: the second listing fails for good."""
    config = await _synced(sandbox, store, transport, propagate_deletes=True, max_delete_share=1.0)
    _hard_delete(sandbox, "bigcapital", 2)
    sandbox["bigcapital"].faults.add("error_before", method="GET", path="/api/customers", times=None, skip=1)
    writes = len(sandbox["thredfi"].writes())

    result = await _run(config, "bigcapital_to_thredfi", store, transport)

    assert result.status == "failed"
    assert len(sandbox["thredfi"].writes()) == writes
    assert _active_in_thredfi(sandbox) == COUNT


async def test_given_a_source_record_listed_without_its_id_when_run_then_no_vanished_record_is_archived(
    sandbox: Sandbox, transport: httpx.ASGITransport, store: Store
) -> None:
    """A record the scan could not identify may be any of the missing ones: the scan proves nothing."""
    seed_source(sandbox, "tb", 10)
    for record in sandbox["thredfi"].records.values():
        record["status"], record["is_archived"] = "ACTIVE", False
    config = _config(store, propagate_deletes=True, max_delete_share=0.5)
    await _run(config, "thredfi_to_bigcapital", store, transport)
    first, second = list(sandbox["thredfi"].records.values())[:2]
    first["id"] = ""  # listed, but without its id
    _hard_delete(sandbox, "thredfi", 0)
    del sandbox["thredfi"].records[second["id"]]  # and one really deleted
    writes = len(sandbox["bigcapital"].writes())

    result = await _run(config, "thredfi_to_bigcapital", store, transport)

    assert result.counts.archived == 0
    assert len(sandbox["bigcapital"].writes()) == writes
    assert result.counts.failed == 1, "the record without an id is quarantined"
    (entry,) = store.quarantined("thredfi_to_bigcapital")
    assert entry.field == "id"


async def test_given_a_dry_run_when_source_customers_vanished_then_the_archives_are_planned_not_made(
    sandbox: Sandbox, transport: httpx.ASGITransport, store: Store
) -> None:
    config = await _synced(sandbox, store, transport, propagate_deletes=True, max_delete_share=0.1)
    _hard_delete(sandbox, "bigcapital", 2)
    writes = len(sandbox["thredfi"].writes())

    result = await _run(config, "bigcapital_to_thredfi", store, transport, dry_run=True)

    assert result.counts.archived == 2
    assert [p.action for p in result.planned] == ["archive", "archive"]
    assert len(sandbox["thredfi"].writes()) == writes


async def test_given_a_backfill_since_a_date_when_customers_vanished_then_no_deletes_from_a_partial_scan(
    sandbox: Sandbox, transport: httpx.ASGITransport, store: Store
) -> None:
    # Piriod filters by creation date (Bigcapital cannot: its server never sets created_at).
    sandbox["piriod"].seed_fake(COUNT)
    for record in sandbox["piriod"].records.values():
        record["status"] = "active"
    config = _config(store, propagate_deletes=True, max_delete_share=1.0)
    first = await _run(config, "piriod_to_thredfi", store, transport)
    assert first.counts.created == COUNT, first.summary()
    _hard_delete(sandbox, "piriod", 2)

    result = await _run(config, "piriod_to_thredfi", store, transport, since=date(2000, 1, 1), kind="backfill")

    assert result.counts.pulled == COUNT - 2
    assert result.counts.archived == 0
    assert _active_in_thredfi(sandbox) == COUNT


@pytest.mark.parametrize("delete_on_archive", [False, True])
async def test_given_a_target_without_archive_when_source_customers_vanish_then_deleted_only_if_allowed(
    delete_on_archive: bool, sandbox: Sandbox, transport: httpx.ASGITransport, store: Store
) -> None:
    seed_source(sandbox, "tx", 10)
    for record in sandbox["thredfi"].records.values():
        record["status"], record["is_archived"] = "ACTIVE", False
    config = _config(store, propagate_deletes=True, max_delete_share=0.2, delete_on_archive=delete_on_archive)
    await _run(config, "thredfi_to_timbrix", store, transport)
    assert len(sandbox["timbrix"].records) == 10
    _hard_delete(sandbox, "thredfi", 2)

    result = await _run(config, "thredfi_to_timbrix", store, transport)

    assert result.status == "succeeded", result.summary()
    assert len(sandbox["timbrix"].records) == (8 if delete_on_archive else 10)
    assert result.counts.archived == (2 if delete_on_archive else 0)


async def test_given_a_vanished_customer_restored_in_the_source_when_run_then_its_target_is_reactivated(
    sandbox: Sandbox, transport: httpx.ASGITransport, store: Store
) -> None:
    config = await _synced(sandbox, store, transport, propagate_deletes=True, max_delete_share=0.1)
    record_id = next(iter(sandbox["bigcapital"].records))
    record = sandbox["bigcapital"].records.pop(record_id)
    await _run(config, "bigcapital_to_thredfi", store, transport)
    assert _active_in_thredfi(sandbox) == COUNT - 1
    sandbox["bigcapital"].records[record_id] = record  # restored (an undo, a restore from backup)

    result = await _run(config, "bigcapital_to_thredfi", store, transport)

    assert result.counts.updated == 1
    assert _active_in_thredfi(sandbox) == COUNT


# -- deletes only on proof of a complete listing (issue 9, part 2) ------------------


ACTIVE_PAGE_2 = r"^/bigcapital/api/customers\?(?=.*inactiveMode=false)(?=.*\bpage=2\b)"


@pytest.fixture
def pages_of_100(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bigcapital asks 1,000 a page; these attacks need several pages of a few hundred records."""
    monkeypatch.setattr(
        BigcapitalConnector, "paginator", dataclasses.replace(BigcapitalConnector.paginator, page_size=100)
    )


def _tampered(sandbox: Sandbox) -> tuple[TamperingApp, httpx.ASGITransport]:
    app = TamperingApp(sandbox.app)
    return app, httpx.ASGITransport(app=app)


def _archive_writes(sandbox: Sandbox) -> int:
    return sum(1 for r in sandbox["thredfi"].writes() if r.method != "GET")


@pytest.mark.usefixtures("pages_of_100")
async def test_given_a_listing_page_silently_lacking_records_while_its_total_says_more_then_none_is_archived(
    sandbox: Sandbox, transport: httpx.ASGITransport, store: Store
) -> None:
    """The attack: page 2 of 3 comes back 3 records short, the total still says 250, the share would allow it."""
    sandbox["bigcapital"].seed_fake(250)
    for record in sandbox["bigcapital"].records.values():
        record["active"] = 1  # the emulator stores the raw row: active is 1/0
    config = _config(store, propagate_deletes=True, max_delete_share=0.1)
    first = await _run(config, "bigcapital_to_thredfi", store, transport)
    assert first.counts.created == 250
    app, tampered = _tampered(sandbox)

    def short_page(body: dict[str, Any]) -> dict[str, Any]:
        assert body["pagination"]["total"] == 250
        return {**body, "customers": body["customers"][3:]}

    rule = app.add(Tamper("GET", ACTIVE_PAGE_2, answer=json_answer(short_page)))
    writes = _archive_writes(sandbox)

    result = await _run(config, "bigcapital_to_thredfi", store, tampered)

    assert rule.fired == 1, "the short page was served"
    assert result.counts.archived == 0, result.summary()
    assert _archive_writes(sandbox) == writes, "no live customer archived"
    assert _active_in_thredfi(sandbox) == 250


@pytest.mark.usefixtures("pages_of_100")
async def test_given_a_record_deactivated_mid_walk_shifting_the_pages_when_run_then_the_one_skipped_is_kept(
    sandbox: Sandbox, transport: httpx.ASGITransport, store: Store
) -> None:
    """A record moves from the active to the inactive listing while the active one is walked: every
    later page shifts by one and a live record is in neither page. It is looked up, found, kept."""
    sandbox["bigcapital"].seed_fake(150)
    for record in sandbox["bigcapital"].records.values():
        record["active"] = 1  # the emulator stores the raw row: active is 1/0
    config = _config(store, propagate_deletes=True, max_delete_share=0.5)
    await _run(config, "bigcapital_to_thredfi", store, transport)
    app, tampered = _tampered(sandbox)
    oldest = min(sandbox["bigcapital"].records.values(), key=lambda r: (r["created_at"], r["id"]))

    def deactivate_one_already_listed() -> None:
        oldest["active"] = 0

    app.add(Tamper("GET", ACTIVE_PAGE_2, before=deactivate_one_already_listed))
    with capture_logs() as events:
        result = await _run(config, "bigcapital_to_thredfi", store, tampered)

    assert result.status == "succeeded", result.summary()
    assert not [e for e in events if e.get("action") == "archive_vanished"], "no live customer archived"
    found = [e for e in events if e["event"] == "vanished_record_found"]
    assert len(found) == 1, "the record the shifted page skipped was looked up and found"
    (skipped,) = found
    assert sandbox["bigcapital"].records[skipped["source_id"]]["active"] == 1


async def test_given_an_incomplete_scan_when_records_are_missing_then_deletes_are_skipped_and_logged(
    sandbox: Sandbox, transport: httpx.ASGITransport, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = await _synced(sandbox, store, transport, propagate_deletes=True, max_delete_share=0.5)
    _hard_delete(sandbox, "bigcapital", 2)
    walk = BigcapitalConnector.pages

    async def short_walk(self: BigcapitalConnector) -> AsyncIterator[list[RemoteCustomer]]:
        async for page in walk(self):
            yield page
        self.scan.fail("a page came back short before the last")  # what the paging code reports

    monkeypatch.setattr(BigcapitalConnector, "pages", short_walk)
    writes = _archive_writes(sandbox)

    with capture_logs() as events:
        result = await _run(config, "bigcapital_to_thredfi", store, transport)

    assert result.counts.archived == 0
    assert _archive_writes(sandbox) == writes
    (skipped,) = [e for e in events if e["event"] == "deletes_skipped"]
    assert skipped["reason"] == "a page came back short before the last"


async def test_given_pending_and_deleted_links_when_the_guard_counts_then_only_linked_records_make_the_share(
    sandbox: Sandbox, transport: httpx.ASGITransport, store: Store
) -> None:
    config = await _synced(sandbox, store, transport, propagate_deletes=True, max_delete_share=0.1)
    # 30 pending intents (creates cut off before their answer): not records of the target.
    ids = store.ensure_identities([f"bigcapital:elsewhere:{n}" for n in range(30)])
    store.save_links("thredfi", [LinkWrite(i, None, None, None, status="pending") for i in ids.values()])
    _hard_delete(sandbox, "bigcapital", 4)  # 4 of 30 linked > 10 %, though 4 of 60 links is not

    result = await _run(config, "bigcapital_to_thredfi", store, transport)

    assert result.status == "partial"
    assert "refused to archive 4 of 30" in (result.error or "")
    assert result.counts.archived == 0
