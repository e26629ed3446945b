"""Issue 2: ``--dry-run`` writes nothing anywhere and reports the plan with the same counts."""

from __future__ import annotations

import pytest
from sqlmodel import func, select

from sandbox.bigcapital import SANDBOX_ORGANIZATION_ID
from sandbox.server import Sandbox
from state.models import Identity, Link, QuarantineEntry, Run
from state.store import Store
from tests.conftest import SyncFn

SEEDED = 8

SQLITE_ONLY = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)  # the store plays no part here


def _rows(store: Store) -> dict[str, int]:
    with store.session() as s:
        return {
            model.__name__: int(s.exec(select(func.count()).select_from(model)).one())
            for model in (Identity, Link, Run, QuarantineEntry)
        }


def _all_writes(sandbox: Sandbox) -> int:
    return sum(len(sandbox[system].writes()) for system in ("bigcapital", "thredfi", "piriod", "timbrix"))


async def test_given_fresh_store_when_dry_run_then_no_writes_no_rows_and_plan_lists_every_create(
    sandbox: Sandbox, sync: SyncFn, store: Store
) -> None:
    seeded = sandbox["bigcapital"].seed_fake(SEEDED)
    # Both are refused before any push, so the plan counts them as the real run would.
    sandbox["bigcapital"].admin_edit(seeded[0], {"email": "not-an-email"})  # thredfi's e-mail check
    sandbox["bigcapital"].admin_edit(seeded[1], {"billing_address_country": "Atlantis"})  # cannot be mapped

    result = await sync("bigcapital_to_thredfi", dry_run=True)

    assert _all_writes(sandbox) == 0
    assert sandbox["thredfi"].records == {}
    assert _rows(store) == {"Identity": 0, "Link": 0, "Run": 0, "QuarantineEntry": 0}
    assert result.dry_run
    assert result.run_id == "dry-run"
    assert result.counts.pulled == SEEDED
    assert result.counts.created == SEEDED - 2
    assert result.counts.failed == 2, "a record the target would refuse is counted as it would be"
    summary = result.summary()
    assert summary["dry_run"] is True
    planned = [p for p in summary["planned"] if p["action"] != "quarantine"]
    quarantines = [p for p in summary["planned"] if p["action"] == "quarantine"]
    assert {q["source_id"] for q in quarantines} == {str(seeded[0]["id"]), str(seeded[1]["id"])}
    assert all(q["reason"] for q in quarantines), "a would-be quarantine says why"
    assert len(planned) == SEEDED - 2
    assert {p["action"].split("+")[0] for p in planned} == {"create"}
    assert {p["external_id"] for p in planned} == {
        f"bigcapital:{SANDBOX_ORGANIZATION_ID}:{r['id']}" for r in seeded[2:]
    }
    inactive = [p for p in planned if p["action"] == "create+archive"]
    assert len(inactive) == sum(1 for r in seeded[2:] if not r["active"])


async def test_given_synced_when_source_edited_and_dry_run_then_plan_shows_only_the_changes(
    sandbox: Sandbox, sync: SyncFn, store: Store
) -> None:
    seeded = sandbox["bigcapital"].seed_fake(SEEDED)
    await sync("bigcapital_to_thredfi")
    active = [r for r in seeded if r["active"]]
    sandbox["bigcapital"].admin_edit(active[0], {"work_phone": "+15550100111"})
    sandbox["bigcapital"].admin_edit(active[1], {"active": False})
    rows, writes = _rows(store), _all_writes(sandbox)
    thredfi = {k: dict(v) for k, v in sandbox["thredfi"].records.items()}

    result = await sync("bigcapital_to_thredfi", dry_run=True)

    assert _all_writes(sandbox) == writes
    assert sandbox["thredfi"].records == thredfi
    assert _rows(store) == rows
    assert (result.counts.updated, result.counts.archived, result.counts.unchanged) == (1, 1, SEEDED - 2)
    by_id = {p.external_id: p for p in result.planned}
    first, second = (f"bigcapital:{SANDBOX_ORGANIZATION_ID}:{record['id']}" for record in active[:2])
    assert set(by_id) == {first, second}
    assert by_id[first].action == "update"
    assert by_id[second].action == "archive"
    assert all(p.target_id for p in result.planned), "changes to linked records name the target record"
    # The real run then does exactly what was planned.
    real = await sync("bigcapital_to_thredfi")
    assert (real.counts.updated, real.counts.archived) == (1, 1)


@SQLITE_ONLY
async def test_given_quarantined_record_when_dry_run_then_quarantine_is_left_as_it_was(
    sandbox: Sandbox, sync: SyncFn, store: Store
) -> None:
    seeded = sandbox["bigcapital"].seed_fake(3)
    sandbox["bigcapital"].admin_edit(seeded[0], {"email": "not-an-email"})
    await sync("bigcapital_to_thredfi")
    sandbox["bigcapital"].admin_edit(seeded[0], {"email": "ok@example.com"})
    (before,) = store.quarantined("bigcapital_to_thredfi")

    result = await sync("bigcapital_to_thredfi", dry_run=True)

    assert result.counts.created == 1
    (after,) = store.quarantined("bigcapital_to_thredfi")
    assert (after.attempts, after.reason, after.last_seen) == (before.attempts, before.reason, before.last_seen)
