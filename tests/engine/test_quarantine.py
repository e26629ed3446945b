"""Issue 2: a record the target refuses is quarantined, naming the field; the rest lands.

Two ways a record cannot go: Thredfi refuses it over HTTP (a 400 naming the
field), or the source holds a value that cannot be mapped (a country that is no
ISO 3166 country). Either way the run is ``partial`` (exit 1), the record is in
quarantine with a reason naming the field, and every other record lands.
"""

from __future__ import annotations

from typing import Any

import pytest

from sandbox.bigcapital import SANDBOX_ORGANIZATION_ID
from sandbox.server import Sandbox
from state.store import Store
from tests.conftest import SyncFn, make_config

SEEDED = 10

SQLITE_ONLY = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)  # the store plays no part here


def _seed_with_one_bad(sandbox: Sandbox, bad: dict[str, object]) -> Any:
    records = sandbox["bigcapital"].seed_fake(SEEDED)
    victim = records[1]
    # The web app lets a user save what the API would refuse (admin_edit skips validation).
    sandbox["bigcapital"].admin_edit(victim, bad)
    return victim


async def test_given_email_thredfi_refuses_when_run_then_quarantined_naming_email_and_rest_lands(
    sandbox: Sandbox, sync: SyncFn, store: Store
) -> None:
    victim = _seed_with_one_bad(sandbox, {"email": "not-an-email"})

    result = await sync("bigcapital_to_thredfi")

    assert result.status == "partial"
    assert result.exit_code == 1
    assert (result.counts.failed, result.counts.created) == (1, SEEDED - 1)
    assert len(sandbox["thredfi"].records) == SEEDED - 1
    landed = {r["external_id"] for r in sandbox["thredfi"].records.values()}
    assert f"bigcapital:{SANDBOX_ORGANIZATION_ID}:{victim['id']}" not in landed
    (entry,) = store.quarantined("bigcapital_to_thredfi")
    assert entry.source_id == str(victim["id"])
    assert entry.external_id == f"bigcapital:{SANDBOX_ORGANIZATION_ID}:{victim['id']}"
    assert entry.field == "email"
    assert "email" in entry.reason
    assert "thredfi" in entry.reason
    assert "not-an-email" not in entry.reason, "a reason carries no customer data"
    assert store.count_quarantined("bigcapital_to_thredfi") == 1
    run = store.get_run(result.run_id)
    assert run is not None
    assert (run.status, run.failed, run.created) == ("partial", 1, SEEDED - 1)


async def test_given_country_no_system_knows_when_run_then_quarantined_naming_country(
    sandbox: Sandbox, sync: SyncFn, store: Store
) -> None:
    victim = _seed_with_one_bad(sandbox, {"billing_address_country": "Atlantis"})

    result = await sync("bigcapital_to_thredfi")

    assert result.status == "partial"
    assert result.exit_code == 1
    assert (result.counts.failed, result.counts.created) == (1, SEEDED - 1)
    (entry,) = store.quarantined("bigcapital_to_thredfi")
    assert (entry.source_id, entry.field) == (str(victim["id"]), "country")
    assert "country" in entry.reason
    assert "Atlantis" not in entry.reason


async def test_given_quarantined_record_unchanged_when_run_again_then_not_pushed_and_still_partial(
    sandbox: Sandbox, sync: SyncFn, store: Store
) -> None:
    _seed_with_one_bad(sandbox, {"email": "not-an-email"})
    await sync("bigcapital_to_thredfi")
    before = len(sandbox["thredfi"].writes())

    again = await sync("bigcapital_to_thredfi")

    assert again.status == "partial"
    assert (again.counts.failed, again.counts.unchanged, again.counts.created) == (1, SEEDED - 1, 0)
    assert len(sandbox["thredfi"].writes()) == before, "an unchanged failure is not sent again"
    assert store.count_quarantined("bigcapital_to_thredfi") == 1


async def test_given_quarantined_record_when_fixed_at_source_then_it_lands_and_leaves_quarantine(
    sandbox: Sandbox, sync: SyncFn, store: Store
) -> None:
    victim = _seed_with_one_bad(sandbox, {"email": "not-an-email"})
    await sync("bigcapital_to_thredfi")
    sandbox["bigcapital"].admin_edit(victim, {"email": "fixed@example.com"})

    result = await sync("bigcapital_to_thredfi")

    assert result.status == "succeeded"
    assert (result.counts.created, result.counts.failed) == (1, 0)
    assert store.quarantined("bigcapital_to_thredfi") == []
    emails = {r["email"] for r in sandbox["thredfi"].records.values()}
    assert "fixed@example.com" in emails


@SQLITE_ONLY
async def test_given_quarantined_record_when_retried_unchanged_then_pushed_again_and_attempts_counted(
    sandbox: Sandbox, sync: SyncFn, store: Store
) -> None:
    # A refusal no check before the push can foresee: Thredfi answers 400 to one create, and again
    # to the retry (the only create then). An invalid e-mail would never be sent at all.
    sandbox["bigcapital"].seed_fake(SEEDED)
    refuse = {"method": "POST", "path": "/customers/$", "status": 400, "times": 1}
    sandbox["thredfi"].faults.add("error_before", **refuse)
    await sync("bigcapital_to_thredfi")
    before = len(sandbox["thredfi"].writes())
    sandbox["thredfi"].faults.add("error_before", **refuse)

    retried = await sync("bigcapital_to_thredfi", retry_quarantined=True, kind="retry")

    assert retried.status == "partial"
    assert retried.counts.failed == 1
    assert len(sandbox["thredfi"].writes()) == before + 1, "retry sends the record once more"
    (entry,) = store.quarantined("bigcapital_to_thredfi")
    assert entry.attempts == 2
    run = store.get_run(retried.run_id)
    assert run is not None
    assert run.kind == "retry"


async def test_given_thredfi_source_without_currency_and_no_default_when_run_then_quarantined_naming_currency(
    sandbox: Sandbox, sync: SyncFn, store: Store, store_url: str
) -> None:
    sandbox["thredfi"].seed_fake(3)
    config = make_config(store_url, defaults={})

    result = await sync("thredfi_to_bigcapital", config=config)

    assert result.status == "partial"
    assert result.counts.failed == 3
    assert sandbox["bigcapital"].writes() == [], "a record that cannot be valid is never sent"
    entries = store.quarantined("thredfi_to_bigcapital")
    assert {e.field for e in entries} == {"currency"}
    assert all("currency" in e.reason for e in entries)


@SQLITE_ONLY
async def test_given_default_currency_when_source_record_has_none_then_default_fills_it(
    sandbox: Sandbox, sync: SyncFn, store_url: str
) -> None:
    sandbox["thredfi"].seed([{"company_name": "Pound Ltd", "email": "pound@example.co.uk", "country": "GB"}])
    config = make_config(store_url, defaults={"currency": "GBP"})

    result = await sync("thredfi_to_bigcapital", config=config)

    assert result.status == "succeeded"
    (target,) = sandbox["bigcapital"].records.values()
    assert target["currency_code"] == "GBP"


@SQLITE_ONLY
async def test_given_synced_record_when_edit_is_refused_then_quarantined_and_target_keeps_last_good_state(
    sandbox: Sandbox, sync: SyncFn, store: Store
) -> None:
    records = sandbox["bigcapital"].seed_fake(4)
    victim = next(r for r in records if r["active"])
    await sync("bigcapital_to_thredfi")
    (target,) = [
        r
        for r in sandbox["thredfi"].records.values()
        if r["external_id"] == f"bigcapital:{SANDBOX_ORGANIZATION_ID}:{victim['id']}"
    ]
    good_email = target["email"]
    sandbox["bigcapital"].admin_edit(victim, {"email": "broken@", "work_phone": "+15550100333"})

    result = await sync("bigcapital_to_thredfi")

    assert result.status == "partial"
    assert (result.counts.failed, result.counts.updated, result.counts.unchanged) == (1, 0, 3)
    (entry,) = store.quarantined("bigcapital_to_thredfi")
    assert (entry.source_id, entry.field) == (str(victim["id"]), "email")
    assert target["email"] == good_email, "the refused edit changed nothing in Thredfi"
    sandbox["bigcapital"].admin_edit(victim, {"email": "good@example.com"})
    fixed = await sync("bigcapital_to_thredfi")
    assert (fixed.status, fixed.counts.updated) == ("succeeded", 1)
    assert store.quarantined("bigcapital_to_thredfi") == []
    assert target["office_phone"] == "+15550100333"
