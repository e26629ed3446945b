"""`defaults` fill only what the source lacks, on create: never over a target's own value, never as a match key."""

from __future__ import annotations

from sandbox.server import Sandbox
from tests.conftest import SyncFn, one_way
from worker.config import AppConfig


async def test_given_a_default_phone_when_the_target_edits_it_and_the_source_changes_then_the_edit_stays(
    sandbox: Sandbox, sync: SyncFn, config: AppConfig
) -> None:
    pipeline = config.pipelines["bigcapital_to_thredfi"].model_copy(update={"defaults": {"phone": "+15550000000"}})
    cfg = one_way(config.model_copy(update={"pipelines": {"bigcapital_to_thredfi": pipeline}}), "bigcapital_to_thredfi")
    (source,) = sandbox["bigcapital"].seed([{"displayName": "No Phone Co", "email": "nophone@example.com"}])
    await sync("bigcapital_to_thredfi", config=cfg)
    (target,) = sandbox["thredfi"].records.values()
    assert target["office_phone"] == "+15550000000", "a create takes the default"
    sandbox["thredfi"].admin_edit(target, {"office_phone": "+15559998888"})
    sandbox["bigcapital"].admin_edit(source, {"note": "changed at the source"})

    result = await sync("bigcapital_to_thredfi", config=cfg)

    assert result.counts.updated == 1, result.summary()
    assert target["notes"] == "changed at the source"
    assert target["office_phone"] == "+15559998888", "an update never writes a default over the target's value"


async def test_given_a_default_email_and_match_on_email_when_a_target_record_has_it_then_it_is_not_matched(
    sandbox: Sandbox, sync: SyncFn, config: AppConfig
) -> None:
    pipeline = config.pipelines["thredfi_to_bigcapital"].model_copy(
        update={"defaults": {"email": "billing@example.com", "currency": "USD"}, "match_on": ["email"]}
    )
    cfg = one_way(config.model_copy(update={"pipelines": {"thredfi_to_bigcapital": pipeline}}), "thredfi_to_bigcapital")
    sandbox["bigcapital"].seed([{"displayName": "Someone Else", "email": "billing@example.com", "currencyCode": "USD"}])
    sandbox["thredfi"].seed([{"company_name": "No Email Ltd"}])

    result = await sync("thredfi_to_bigcapital", config=cfg)

    assert (result.counts.created, result.counts.matched) == (1, 0), result.summary()
    names = sorted(r["display_name"] for r in sandbox["bigcapital"].records.values())
    assert names == ["No Email Ltd", "Someone Else"], "the default never found (and renamed) another customer"
