"""Issue 2: losing the state store and re-running creates no duplicate in the target."""

from __future__ import annotations

from collections import Counter

import pytest

from sandbox.server import Sandbox
from state.store import Store
from tests.conftest import SyncFn, make_config
from worker.runner import run_pipeline

SEEDED = 20

SQLITE_ONLY = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)  # the store plays no part here


def _wiped(store: Store) -> Store:
    """Drop every table (the store is gone), then open it again: a blank, migrated store."""
    with store.engine.begin() as connection:
        for table in ("quarantine", "runs", "links", "identities", "run_leases", "page_memos", "alembic_version"):
            connection.exec_driver_sql(f"DROP TABLE {table}")
    store.close()
    return Store(store.url)


async def test_given_lost_state_store_when_bigcapital_to_thredfi_reruns_then_no_duplicate_in_thredfi(
    sandbox: Sandbox, sync: SyncFn, store: Store, transport: object
) -> None:
    sandbox["bigcapital"].seed_fake(SEEDED)
    await sync("bigcapital_to_thredfi")
    thredfi_before = {k: dict(v) for k, v in sandbox["thredfi"].records.items()}
    applied_before = sandbox["thredfi"].write_count
    fresh = _wiped(store)
    try:
        config = make_config(fresh.url)
        transports = {name: transport for name in config.connections}
        result = await run_pipeline(config, "bigcapital_to_thredfi", store=fresh, transports=transports)  # type: ignore[arg-type]

        assert result.status == "succeeded", result.summary()
        assert set(sandbox["thredfi"].records) == set(thredfi_before), "no new Thredfi record"
        assert Counter(r["external_id"] for r in sandbox["thredfi"].records.values()).most_common(1)[0][1] == 1
        assert sandbox["thredfi"].write_count == applied_before, "nothing was changed in Thredfi"
        # Thredfi answers a create with a known external_id with the record it holds: each record
        # was found, not created, and counts as matched (product.md).
        assert (result.counts.created, result.counts.matched) == (0, SEEDED)
        assert result.counts.failed == 0
        # The links are rebuilt: the next run is quiet.
        writes = len(sandbox["thredfi"].writes())
        again = await run_pipeline(config, "bigcapital_to_thredfi", store=fresh, transports=transports)  # type: ignore[arg-type]
        assert again.counts.unchanged == SEEDED
        assert len(sandbox["thredfi"].writes()) == writes
    finally:
        fresh.close()


async def test_given_lost_state_and_edited_source_when_rerun_then_thredfi_record_is_updated_not_copied(
    sandbox: Sandbox, sync: SyncFn, store: Store, transport: object
) -> None:
    (record,) = sandbox["bigcapital"].seed([{"displayName": "Keep Ltd", "email": "keep@example.com"}])
    await sync("bigcapital_to_thredfi")
    sandbox["bigcapital"].admin_edit(record, {"work_phone": "+15550100777"})
    fresh = _wiped(store)
    try:
        config = make_config(fresh.url)
        transports = {name: transport for name in config.connections}
        result = await run_pipeline(config, "bigcapital_to_thredfi", store=fresh, transports=transports)  # type: ignore[arg-type]

        assert (result.counts.created, result.counts.matched) == (0, 1), "found and made current, counted once"
        (target,) = sandbox["thredfi"].records.values()
        assert target["office_phone"] == "+15550100777"
    finally:
        fresh.close()


async def test_given_lost_state_and_reactivated_source_when_rerun_then_archived_thredfi_record_is_reactivated(
    sandbox: Sandbox, sync: SyncFn, store: Store, transport: object
) -> None:
    (record,) = sandbox["bigcapital"].seed([{"displayName": "Back Ltd", "email": "back@example.com", "active": False}])
    await sync("bigcapital_to_thredfi")
    (target,) = sandbox["thredfi"].records.values()
    assert target["is_archived"] is True
    sandbox["bigcapital"].admin_edit(record, {"active": True})
    fresh = _wiped(store)
    try:
        config = make_config(fresh.url)
        transports = {name: transport for name in config.connections}
        result = await run_pipeline(config, "bigcapital_to_thredfi", store=fresh, transports=transports)  # type: ignore[arg-type]

        assert result.status == "succeeded"
        assert len(sandbox["thredfi"].records) == 1
        assert target["is_archived"] is False, "the record found again is made current, its state included"
        writes = len(sandbox["thredfi"].writes())
        assert (
            await run_pipeline(config, "bigcapital_to_thredfi", store=fresh, transports=transports)
        ).counts.unchanged == 1
        assert len(sandbox["thredfi"].writes()) == writes
    finally:
        fresh.close()


@SQLITE_ONLY
async def test_given_lost_state_and_archived_records_when_rerun_then_no_archive_call_is_repeated(
    sandbox: Sandbox, sync: SyncFn, store: Store, transport: object
) -> None:
    sandbox["bigcapital"].seed(
        [{"displayName": f"Old {n} Ltd", "email": f"old{n}@example.com", "active": False} for n in range(3)]
    )
    await sync("bigcapital_to_thredfi")
    fresh = _wiped(store)
    try:
        config = make_config(fresh.url)
        transports = {name: transport for name in config.connections}
        before = len(sandbox["thredfi"].writes())
        await run_pipeline(config, "bigcapital_to_thredfi", store=fresh, transports=transports)  # type: ignore[arg-type]

        new = [w for w in sandbox["thredfi"].writes()[before:] if w.path.endswith("/archive/")]
        assert new == [], "records already archived in Thredfi are not archived again"
    finally:
        fresh.close()


async def test_given_lost_state_store_when_thredfi_to_bigcapital_reruns_then_matched_by_email_not_copied(
    sandbox: Sandbox, sync: SyncFn, store: Store, transport: object
) -> None:
    sandbox["thredfi"].seed_fake(SEEDED)
    await sync("thredfi_to_bigcapital")
    ids_before = set(sandbox["bigcapital"].records)
    fresh = _wiped(store)
    try:
        config = make_config(fresh.url)
        transports = {name: transport for name in config.connections}
        result = await run_pipeline(config, "thredfi_to_bigcapital", store=fresh, transports=transports)  # type: ignore[arg-type]

        assert result.status == "succeeded", result.summary()
        assert set(sandbox["bigcapital"].records) == ids_before
        assert result.counts.created == 0
        assert result.matched == SEEDED
        writes = len(sandbox["bigcapital"].writes())
        again = await run_pipeline(config, "thredfi_to_bigcapital", store=fresh, transports=transports)  # type: ignore[arg-type]
        assert again.counts.unchanged == SEEDED
        assert len(sandbox["bigcapital"].writes()) == writes
    finally:
        fresh.close()
