"""Issue 2: edits and (in)activations in the source become exactly the matching writes.

Each scenario syncs, changes one or two records in the source the way a user
of that system would (its admin surface), syncs again, and checks the target
received those writes and nothing else, with the counts product.md defines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest

from sandbox.server import Sandbox
from state.store import Store
from tests.conftest import SyncFn

SEEDED = 12

SQLITE_ONLY = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)  # the store plays no part here


@dataclass(frozen=True)
class Direction:
    """How to drive one pipeline: its systems and how a user edits the source."""

    pipeline: str
    source: str
    target: str
    phone_edit: dict[str, Any]  # in the source's read shape
    deactivate: dict[str, Any]
    reactivate: dict[str, Any]
    update_write: str  # method and path regex of the target's update
    archive_write: str
    reactivate_write: str

    def active(self, record: dict[str, Any]) -> bool:
        return bool(record["active"]) if "active" in record else not record["is_archived"]


BC_TO_TH = Direction(
    pipeline="bigcapital_to_thredfi",
    source="bigcapital",
    target="thredfi",
    phone_edit={"work_phone": "+15550100999"},
    deactivate={"active": False},
    reactivate={"active": True},
    update_write=r"PATCH /thredfi/v1/platform/businesses/[^/]+/customers/{id}/$",
    archive_write=r"POST /thredfi/v1/platform/businesses/[^/]+/customers/{id}/archive/$",
    reactivate_write=r"PATCH /thredfi/v1/platform/businesses/[^/]+/customers/{id}/$",
)
TH_TO_BC = Direction(
    pipeline="thredfi_to_bigcapital",
    source="thredfi",
    target="bigcapital",
    phone_edit={"office_phone": "+15550100999"},
    deactivate={"status": "archived"},
    reactivate={"status": "active"},
    update_write=r"PUT /bigcapital/api/customers/{id}$",
    archive_write=r"PATCH /bigcapital/api/contacts/{id}/inactivate$",
    reactivate_write=r"PATCH /bigcapital/api/contacts/{id}/activate$",
)
DIRECTIONS = [pytest.param(BC_TO_TH, id="bigcapital_to_thredfi"), pytest.param(TH_TO_BC, id="thredfi_to_bigcapital")]


def _target_id(store: Store, d: Direction, source_id: str) -> str:
    link = store.links_by_remote(d.source, [source_id])[source_id]
    target = store.links_by_identity(d.target, [link.identity_id])[link.identity_id]
    assert target.remote_id is not None
    return target.remote_id


def _writes_since(sandbox: Sandbox, system: str, before: int) -> list[str]:
    return [f"{w.method} {w.path}" for w in sandbox[system].writes()[before:]]


def _assert_writes(writes: list[str], expected: list[str]) -> None:
    assert len(writes) == len(expected), writes
    for write, pattern in zip(writes, expected, strict=True):
        assert re.fullmatch(pattern, write), (write, pattern)


async def _synced(sandbox: Sandbox, sync: SyncFn, d: Direction) -> list[dict[str, Any]]:
    sandbox[d.source].seed_fake(SEEDED)
    first = await sync(d.pipeline)
    assert first.status == "succeeded", first.summary()
    # The fake data's inactive customers make the tests below less clear: pick active ones.
    return [r for r in sandbox[d.source].records.values() if d.active(r)]


@pytest.mark.parametrize("d", DIRECTIONS)
async def test_given_synced_when_source_record_edited_then_exactly_one_update_is_written(
    sandbox: Sandbox, sync: SyncFn, store: Store, d: Direction
) -> None:
    record = (await _synced(sandbox, sync, d))[0]
    sandbox[d.source].admin_edit(record, d.phone_edit)
    target_id = _target_id(store, d, str(record["id"]))
    before = len(sandbox[d.target].writes())

    result = await sync(d.pipeline)

    assert result.status == "succeeded"
    assert (result.counts.updated, result.counts.unchanged) == (1, SEEDED - 1)
    assert (result.counts.created, result.counts.archived, result.counts.failed) == (0, 0, 0)
    _assert_writes(_writes_since(sandbox, d.target, before), [d.update_write.format(id=re.escape(target_id))])
    target = sandbox[d.target].records[target_id]
    assert "+15550100999" in (target.get("office_phone"), target.get("work_phone"))
    assert (await sync(d.pipeline)).counts.unchanged == SEEDED


@pytest.mark.parametrize("d", DIRECTIONS)
async def test_given_synced_when_source_record_deactivated_then_only_an_archive_is_written(
    sandbox: Sandbox, sync: SyncFn, store: Store, d: Direction
) -> None:
    record = (await _synced(sandbox, sync, d))[0]
    sandbox[d.source].admin_edit(record, d.deactivate)
    target_id = _target_id(store, d, str(record["id"]))
    before = len(sandbox[d.target].writes())

    result = await sync(d.pipeline)

    assert (result.counts.archived, result.counts.updated, result.counts.unchanged) == (1, 0, SEEDED - 1)
    _assert_writes(_writes_since(sandbox, d.target, before), [d.archive_write.format(id=re.escape(target_id))])
    assert not d.active(sandbox[d.target].records[target_id])
    again_before = len(sandbox[d.target].writes())
    assert (await sync(d.pipeline)).counts.unchanged == SEEDED
    assert len(sandbox[d.target].writes()) == again_before


@pytest.mark.parametrize("d", DIRECTIONS)
async def test_given_archived_target_when_source_reactivated_then_one_reactivation_counted_as_updated(
    sandbox: Sandbox, sync: SyncFn, store: Store, d: Direction
) -> None:
    record = (await _synced(sandbox, sync, d))[0]
    sandbox[d.source].admin_edit(record, d.deactivate)
    await sync(d.pipeline)
    sandbox[d.source].admin_edit(record, d.reactivate)
    target_id = _target_id(store, d, str(record["id"]))
    before = len(sandbox[d.target].writes())

    result = await sync(d.pipeline)

    assert (result.counts.updated, result.counts.archived, result.counts.unchanged) == (1, 0, SEEDED - 1)
    _assert_writes(_writes_since(sandbox, d.target, before), [d.reactivate_write.format(id=re.escape(target_id))])
    assert d.active(sandbox[d.target].records[target_id])
    assert (await sync(d.pipeline)).counts.unchanged == SEEDED


@pytest.mark.parametrize("d", DIRECTIONS)
async def test_given_synced_when_record_edited_and_another_deactivated_then_counts_each_once(
    sandbox: Sandbox, sync: SyncFn, store: Store, d: Direction
) -> None:
    edited, deactivated, both = (await _synced(sandbox, sync, d))[:3]
    sandbox[d.source].admin_edit(edited, d.phone_edit)
    sandbox[d.source].admin_edit(deactivated, d.deactivate)
    sandbox[d.source].admin_edit(both, {**d.phone_edit, **d.deactivate})
    before = len(sandbox[d.target].writes())

    result = await sync(d.pipeline)

    c = result.counts
    assert (c.pulled, c.updated, c.archived, c.unchanged, c.created, c.failed) == (SEEDED, 1, 2, SEEDED - 3, 0, 0)
    writes = _writes_since(sandbox, d.target, before)
    assert len(writes) == 4, writes  # update; archive; update + archive
    both_id = re.escape(_target_id(store, d, str(both["id"])))
    assert [w for w in writes if re.fullmatch(d.archive_write.format(id=both_id), w)]
    assert not d.active(sandbox[d.target].records[_target_id(store, d, str(both["id"]))])


@pytest.mark.parametrize("d", DIRECTIONS)
async def test_given_synced_when_new_source_record_added_then_only_it_is_created(
    sandbox: Sandbox, sync: SyncFn, d: Direction
) -> None:
    await _synced(sandbox, sync, d)
    body = (
        {"displayName": "Newco Ltd", "companyName": "Newco Ltd", "email": "new@example.com"}
        if d.source == "bigcapital"
        else {"company_name": "Newco Ltd", "email": "new@example.com"}
    )
    sandbox[d.source].seed([body])
    before = len(sandbox[d.target].writes())

    result = await sync(d.pipeline)

    assert (result.counts.created, result.counts.unchanged) == (1, SEEDED)
    assert len(_writes_since(sandbox, d.target, before)) == 1
    assert len(sandbox[d.target].records) == SEEDED + 1


@SQLITE_ONLY
async def test_given_inactive_source_record_when_created_then_counted_as_created_not_archived(
    sandbox: Sandbox, sync: SyncFn
) -> None:
    sandbox["bigcapital"].seed([{"displayName": "Gone Ltd", "email": "gone@example.com", "active": False}])

    result = await sync("bigcapital_to_thredfi")

    assert (result.counts.created, result.counts.archived) == (1, 0)
    (target,) = sandbox["thredfi"].records.values()
    assert target["is_archived"] is True


@SQLITE_ONLY
async def test_given_archive_off_when_source_deactivated_then_target_is_left_active(
    sandbox: Sandbox, store: Store, sync: SyncFn, store_url: str
) -> None:
    from tests.conftest import make_config

    config = make_config(store_url, archive=False)
    (record,) = sandbox["bigcapital"].seed([{"displayName": "Stay Ltd", "email": "stay@example.com"}])
    await sync("bigcapital_to_thredfi", config=config)
    sandbox["bigcapital"].admin_edit(record, {"active": False})
    before = len(sandbox["thredfi"].writes())

    result = await sync("bigcapital_to_thredfi", config=config)

    assert result.counts.unchanged == 1
    assert len(sandbox["thredfi"].writes()) == before
    (target,) = sandbox["thredfi"].records.values()
    assert target["is_archived"] is False


@SQLITE_ONLY
async def test_given_full_run_when_nothing_changed_then_every_linked_record_is_rewritten(
    sandbox: Sandbox, sync: SyncFn
) -> None:
    sandbox["bigcapital"].seed_fake(5)
    await sync("bigcapital_to_thredfi")
    before = len(sandbox["thredfi"].writes())

    result = await sync("bigcapital_to_thredfi", full=True)

    assert result.counts.updated == 5
    assert len(sandbox["thredfi"].writes()) == before + 5


@SQLITE_ONLY
@pytest.mark.parametrize("dry_run", [False, True], ids=["run", "dry_run"])
async def test_given_mixed_changes_when_run_then_each_record_counts_exactly_once(
    sandbox: Sandbox, sync: SyncFn, dry_run: bool
) -> None:
    records = [r for r in await _synced(sandbox, sync, BC_TO_TH) if r["active"]]
    source = sandbox["bigcapital"]
    source.admin_edit(records[0], {"work_phone": "+15550100444"})  # updated
    source.admin_edit(records[1], {"active": False})  # archived
    source.admin_edit(records[2], {"active": False, "note": "closed"})  # archived (and updated)
    source.admin_edit(records[3], {"email": "nope"})  # Thredfi would refuse it: failed before the push
    source.admin_edit(records[4], {"billing_address_country": "Narnia"})  # cannot be mapped: failed
    source.seed([{"displayName": "Fresh Ltd", "email": "fresh@example.com"}])  # created
    source.seed([{"displayName": "Fresh Gone Ltd", "email": "gone2@example.com", "active": False}])  # created

    result = await sync(BC_TO_TH.pipeline, dry_run=dry_run)

    c = result.counts
    assert c.pulled == SEEDED + 2
    assert c.created + c.updated + c.archived + c.unchanged + c.failed == c.pulled
    assert (c.created, c.archived) == (2, 2)
    assert c.updated == 1  # the invalid e-mail is caught by the check before the push, in both modes
    assert c.failed == 2, "a dry run knows what the target's declared checks refuse"
