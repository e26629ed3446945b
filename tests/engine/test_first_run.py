"""Issue 2: the first run lands every customer once, mapped; a re-run writes nothing.

Both directions between Bigcapital and Thredfi, against the emulators over
HTTP (in process), with the store on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from collections import Counter

import pytest

from sandbox.bigcapital import SANDBOX_ORGANIZATION_ID
from sandbox.server import Sandbox
from state.store import Store
from tests.conftest import SyncFn

SEEDED = 24  # enough to hold a few inactive customers

SQLITE_ONLY = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)  # the store plays no part here


def _target_id(store: Store, source: str, source_id: str, target: str) -> str:
    link = store.links_by_remote(source, [source_id])[source_id]
    target_link = store.links_by_identity(target, [link.identity_id])[link.identity_id]
    assert target_link.status == "linked"
    assert target_link.remote_id
    return target_link.remote_id


async def test_given_bigcapital_customers_when_first_run_then_each_lands_once_in_thredfi_with_fields_mapped(
    sandbox: Sandbox, sync: SyncFn, store: Store
) -> None:
    seeded = sandbox["bigcapital"].seed_fake(SEEDED)
    inactive = [r for r in seeded if not r["active"]]
    assert inactive, "the fake data should hold inactive customers"

    result = await sync("bigcapital_to_thredfi")

    assert result.status == "succeeded", result.summary()
    assert (result.counts.pulled, result.counts.created, result.counts.failed) == (SEEDED, SEEDED, 0)
    assert result.counts.archived == 0, "created in an archived state counts as created"
    thredfi = sandbox["thredfi"].records
    assert len(thredfi) == SEEDED
    external_ids = Counter(r["external_id"] for r in thredfi.values())
    assert set(external_ids.values()) == {1}
    assert set(external_ids) == {f"bigcapital:{SANDBOX_ORGANIZATION_ID}:{r['id']}" for r in seeded}
    for source in seeded:
        target = thredfi[_target_id(store, "bigcapital", str(source["id"]), "thredfi")]
        assert target["external_id"] == f"bigcapital:{SANDBOX_ORGANIZATION_ID}:{source['id']}"
        if source["contact_type"] == "business":
            assert target["company_name"] == source["display_name"]
            assert target["individual_name"] == ""
        else:
            assert target["individual_name"] == source["display_name"]
            assert target["company_name"] == ""
        assert target["email"] == (source["email"] or "")
        assert target["office_phone"] == (source["work_phone"] or "")
        assert target["mobile_phone"] == (source["personal_phone"] or "")
        assert target["address_line1"] == (source["billing_address1"] or "")
        assert target["address_line2"] == (source["billing_address2"] or "")
        assert target["city"] == (source["billing_address_city"] or "")
        assert target["state_county"] == (source["billing_address_state"] or "")
        assert source["billing_address_postcode"]  # imported: the API cannot write one
        assert target["postal_code"] == "", "Bigcapital keeps no postcode: none is read from it"
        assert target["notes"] == (source["note"] or "")
        country = {"United States": "US", "Mexico": "MX", "Chile": "CL", "United Kingdom": "GB"}
        assert target["country"] == country[source["billing_address_country"]]
        assert target["is_archived"] is (not source["active"])


async def test_given_thredfi_customers_when_first_run_then_each_lands_once_in_bigcapital_with_fields_mapped(
    sandbox: Sandbox, sync: SyncFn, store: Store
) -> None:
    seeded = sandbox["thredfi"].seed_fake(SEEDED)
    assert any(r["is_archived"] for r in seeded)

    result = await sync("thredfi_to_bigcapital")

    assert result.status == "succeeded", result.summary()
    assert (result.counts.pulled, result.counts.created, result.counts.failed) == (SEEDED, SEEDED, 0)
    bigcapital = sandbox["bigcapital"].records
    assert len(bigcapital) == SEEDED
    assert len({r["email"] for r in bigcapital.values()}) == SEEDED
    names = {"US": "United States", "MX": "Mexico", "CL": "Chile", "GB": "United Kingdom"}
    for source in seeded:
        target = bigcapital[_target_id(store, "thredfi", source["id"], "bigcapital")]
        company = bool(source["company_name"])
        assert target["contact_type"] == ("business" if company else "individual")
        assert target["display_name"] == source["display_name"]
        if company:
            assert target["company_name"] == source["company_name"]
        else:
            first, _, last = source["individual_name"].partition(" ")
            assert (target["first_name"], target["last_name"]) == (first, last)
        assert target["email"] == source["email"]
        assert target["work_phone"] == (source["office_phone"] or None)
        assert target["personal_phone"] == (source["mobile_phone"] or None)
        assert target["billing_address1"] == source["address_line1"]
        assert target["billing_address_city"] == source["city"]
        assert target["billing_address_state"] == source["state_county"]
        assert target["billing_address_postcode"] is None, "no request can write a postcode to Bigcapital"
        assert target["billing_address_country"] == names[source["country"]]
        assert target["note"] == (source["notes"] or None)
        assert target["currency_code"] == "USD", "the pipeline default fills the currency Thredfi lacks"
        assert target["active"] == (0 if source["is_archived"] else 1)


async def test_given_synced_bigcapital_when_run_again_then_no_write_calls(sandbox: Sandbox, sync: SyncFn) -> None:
    sandbox["bigcapital"].seed_fake(SEEDED)
    await sync("bigcapital_to_thredfi")
    writes = len(sandbox["thredfi"].writes())
    source_writes = len(sandbox["bigcapital"].writes())

    again = await sync("bigcapital_to_thredfi")

    assert again.status == "succeeded"
    assert again.counts.unchanged == SEEDED
    assert (again.counts.created, again.counts.updated, again.counts.archived) == (0, 0, 0)
    assert len(sandbox["thredfi"].writes()) == writes
    assert len(sandbox["bigcapital"].writes()) == source_writes == 0


async def test_given_synced_thredfi_when_run_again_then_no_write_calls(sandbox: Sandbox, sync: SyncFn) -> None:
    sandbox["thredfi"].seed_fake(SEEDED)
    await sync("thredfi_to_bigcapital")
    writes = len(sandbox["bigcapital"].writes())

    again = await sync("thredfi_to_bigcapital")

    assert again.counts.unchanged == SEEDED
    assert len(sandbox["bigcapital"].writes()) == writes
    assert sandbox["thredfi"].writes() == []


@SQLITE_ONLY
async def test_given_empty_source_when_run_then_succeeds_with_zero_counts(
    sandbox: Sandbox, sync: SyncFn, store: Store
) -> None:
    result = await sync("bigcapital_to_thredfi")

    assert result.status == "succeeded"
    assert result.summary()["pulled"] == 0
    assert sandbox["thredfi"].writes() == []
    run = store.get_run(result.run_id)
    assert run is not None
    assert run.status == "succeeded"
    assert run.finished_at is not None
