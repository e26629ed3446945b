"""Issue 12.5: a create is one request where the answer carries the record (no alias lookup on a first sync)."""

from __future__ import annotations

from collections import Counter

from sandbox.server import Sandbox
from state.store import Store
from tests.conftest import SyncFn, one_way
from worker.config import AppConfig


def _thredfi_calls(sandbox: Sandbox) -> Counter[str]:
    calls: Counter[str] = Counter()
    for request in sandbox["thredfi"].requests:
        if "oauth2" in request.path:
            calls["token"] += 1
        elif request.method == "GET" and "external_id" in str(request.query):
            calls["lookup"] += 1
        else:
            calls[request.method] += 1
    return calls


async def test_given_a_first_sync_from_bigcapital_into_an_empty_thredfi_when_run_then_one_request_per_create(
    sandbox: Sandbox, sync: SyncFn
) -> None:
    sandbox["bigcapital"].seed_fake(30)
    active = sum(1 for r in sandbox["bigcapital"].records.values() if r.get("active", True))

    result = await sync("bigcapital_to_thredfi")

    assert result.counts.created == 30, result.summary()
    calls = _thredfi_calls(sandbox)
    assert calls["lookup"] == 0, calls
    writes = calls["POST"] + calls["PATCH"] + calls["PUT"] + calls["DELETE"]
    assert writes == 30 + (30 - active), f"one create each, and an archive for the inactive: {calls}"
    assert calls["GET"] <= 1, f"at most one page, to see that Thredfi holds nothing: {calls}"


async def test_given_a_store_that_knows_the_target_when_new_records_are_created_then_no_lookup_either(
    sandbox: Sandbox, sync: SyncFn, store: Store, config: AppConfig
) -> None:
    config = one_way(config, "bigcapital_to_thredfi")
    sandbox["bigcapital"].seed_fake(5)
    await sync("bigcapital_to_thredfi", config=config)
    sandbox["bigcapital"].seed_fake(5)
    sandbox["thredfi"].requests.clear()

    result = await sync("bigcapital_to_thredfi", config=config)

    assert result.counts.created == 5, result.summary()
    calls = _thredfi_calls(sandbox)
    assert (calls["lookup"], calls["GET"], calls["POST"]) == (0, 0, 5), calls


async def test_given_a_two_way_pair_when_new_records_are_created_then_one_listing_per_run_finds_copies(
    sandbox: Sandbox, sync: SyncFn, store: Store
) -> None:
    """In a pair, a record new to the store may be a copy (Bigcapital keeps no identity): Thredfi is
    listed once per run to find its original by e-mail, never once per record."""
    sandbox["bigcapital"].seed_fake(5)
    await sync("bigcapital_to_thredfi")
    sandbox["bigcapital"].seed_fake(150, seed=8)
    sandbox["thredfi"].requests.clear()

    result = await sync("bigcapital_to_thredfi")

    # The fake generator repeats the first batch's e-mails: those are refused as second identities.
    assert result.counts.created + result.counts.failed == 150, result.summary()
    calls = _thredfi_calls(sandbox)
    assert calls["lookup"] == 0, calls
    assert calls["GET"] <= 1 + 2, f"one page to see the target holds records, then one listing: {calls}"
