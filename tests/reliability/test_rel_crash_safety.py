"""Issue 5, part 1: crash-safe writes. A lost answer or a crash between the
remote write and the state commit never produces a duplicate when retried.

In process: the emulators answer through ``httpx.ASGITransport``; a "crash" is
an exception thrown out of the state commit (``Sync._record``), which leaves
exactly what a SIGKILL there leaves (the remote write done, the pending intent
committed, the link not). The real-process kill test is ``test_rel_kill.py``.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from sandbox._core import FaultKind
from sandbox.server import Sandbox
from state.store import Store
from tests.support.soak import PAIRS, config_text, load, seed_source, verify_async
from worker import sync as engine
from worker.config import AppConfig
from worker.sync import RunResult, run_pipeline

COUNT = 24
TARGET_PAIRS = ["bt", "tb", "tp", "tx"]  # one pipeline into each of the four systems


class Crash(BaseException):
    """Stands for SIGKILL: nothing catches it, nothing after it runs."""


def _config(store: Store, **options: Any) -> AppConfig:
    return load(config_text("http://sandbox.test", store.url, **options))


async def _run(
    config: AppConfig, pipeline: str, store: Store, transport: httpx.ASGITransport, **options: Any
) -> RunResult:
    return await run_pipeline(
        config, pipeline, store=store, transports={name: transport for name in config.connections}, **options
    )


def _pipeline(pair: str) -> tuple[str, str, str]:
    source, target = PAIRS[pair]
    return source, target, f"{source}_to_{target}"


@pytest.mark.parametrize("pair", TARGET_PAIRS)
@pytest.mark.parametrize("kind", ["error_after", "drop"])
async def test_given_lost_create_answers_when_rerun_then_every_customer_lands_once(
    pair: str, kind: FaultKind, sandbox: Sandbox, transport: httpx.ASGITransport, store: Store
) -> None:
    """A third of the creates are applied and their answer lost (500 or a dropped connection)."""
    _, target, pipeline = _pipeline(pair)
    config = _config(store)
    seed_source(sandbox, pair, COUNT)
    options: dict[str, Any] = {"after": True} if kind == "drop" else {}
    sandbox[target].faults.add(kind, method="POST", probability=0.35, times=None, **options)

    first = await _run(config, pipeline, store, transport)
    check = await verify_async(sandbox, config, pipeline)
    assert not check.duplicates, check
    assert not check.extra, check
    sandbox[target].faults.clear()
    second = await _run(config, pipeline, store, transport)

    check = await verify_async(sandbox, config, pipeline)
    assert check.clean, check
    assert check.found == check.expected == COUNT
    assert second.status == "succeeded", (first.summary(), second.summary())


@pytest.mark.parametrize("pair", TARGET_PAIRS)
async def test_given_crash_after_remote_writes_before_state_commit_when_rerun_then_no_duplicate(
    pair: str,
    sandbox: Sandbox,
    transport: httpx.ASGITransport,
    store: Store,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, target, pipeline = _pipeline(pair)
    config = _config(store)
    seed_source(sandbox, pair, COUNT)

    def crash(self: object, *args: object) -> None:
        raise Crash

    with monkeypatch.context() as patch:
        patch.setattr(engine.Sync, "_record", crash)
        with pytest.raises(Crash):
            await _run(config, pipeline, store, transport)
    reached = len(sandbox[target].records)
    assert reached, "creates reached the target before the crash"
    assert {link.status for link in store.links_of(target)} == {"pending"}, "only the intents were committed"

    again = await _run(config, pipeline, store, transport)

    assert again.status == "succeeded", again.summary()
    check = await verify_async(sandbox, config, pipeline)
    assert check.clean, check
    assert check.found == COUNT, check
    assert again.counts.created == COUNT - reached, "records found again are not created again"
    assert {link.status for link in store.links_of(target)} == {"linked"}


@pytest.mark.parametrize("pair", ["tb", "tp", "tx"])
async def test_given_create_refused_before_applying_when_run_then_looked_up_and_created_in_the_same_run(
    pair: str, sandbox: Sandbox, transport: httpx.ASGITransport, store: Store
) -> None:
    """Targets whose creates are not idempotent never resend a create blindly, yet a
    500 answered before applying does not wait for the next run: the engine looks
    the identity up in the target, finds nothing, and creates it once."""
    _, target, pipeline = _pipeline(pair)
    config = _config(store)
    seed_source(sandbox, pair, COUNT)
    rule = sandbox[target].faults.add("error_before", method="POST", times=6)

    result = await _run(config, pipeline, store, transport)

    assert rule.fired == 6
    assert result.status == "succeeded", result.summary()
    check = await verify_async(sandbox, config, pipeline)
    assert check.clean, check
    assert check.found == COUNT, check


@pytest.mark.parametrize("pair", ["bt", "tp"])
async def test_given_pending_intent_when_identity_slot_holds_nothing_then_a_lookalike_is_not_adopted(
    pair: str, sandbox: Sandbox, transport: httpx.ASGITransport, store: Store
) -> None:
    """Thredfi and Piriod say by external_id whether our record exists: a record with the
    same content but another identity is someone else's and is never taken over."""
    source, target, pipeline = _pipeline(pair)
    config = _config(store)
    seed_source(sandbox, pair, 1)
    sandbox[target].faults.add("error_before", method="POST", times=None)
    failed = await _run(config, pipeline, store, transport)
    assert failed.counts.failed == 1
    assert not sandbox[target].records
    assert [link.status for link in store.links_of(target)] == ["pending"]
    sandbox[target].faults.clear()
    # Someone else's record, identical in every field we write, under another identity.
    await _run(config, pipeline, Store("sqlite://"), transport)
    (lookalike_id,) = sandbox[target].records
    _set_external_id(sandbox, target, lookalike_id, f"{source}:elsewhere:1")

    again = await _run(config, pipeline, store, transport)

    assert again.status == "succeeded", again.summary()
    assert len(sandbox[target].records) == 2, "ours was created; the lookalike was left alone"
    assert _external_id(sandbox, target, lookalike_id) == f"{source}:elsewhere:1"
    check = await verify_async(sandbox, config, pipeline)
    assert not check.missing, check
    assert not check.duplicates, check


def _set_external_id(sandbox: Sandbox, system: str, record_id: str, value: str) -> None:
    record = sandbox[system].records[record_id]
    if system == "thredfi":
        record["external_id"] = value
    else:
        record["reference"] = value
        record["metadata"] = {**(record.get("metadata") or {}), "external_id": value}


def _external_id(sandbox: Sandbox, system: str, record_id: str) -> str:
    record = sandbox[system].records[record_id]
    return str(record["external_id"] if system == "thredfi" else record["metadata"]["external_id"])


@pytest.mark.parametrize("pair", TARGET_PAIRS)
async def test_given_target_record_deleted_and_crash_after_recreating_when_rerun_then_recreated_once(
    pair: str,
    sandbox: Sandbox,
    transport: httpx.ASGITransport,
    store: Store,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An update that finds its record gone recreates it; a crash before that is recorded
    must not make the next run create a second copy."""
    source, target, pipeline = _pipeline(pair)
    config = _config(store)
    seed_source(sandbox, pair, 3)
    await _run(config, pipeline, store, transport)
    victim = next(iter(sandbox[target].records))
    del sandbox[target].records[victim]  # deleted by hand in the target
    for record in sandbox[source].records.values():  # every source record changes: updates
        sandbox[source].admin_edit(record, _phone_edit(source))

    def crash(self: object, *args: object) -> None:
        raise Crash

    with monkeypatch.context() as patch:
        patch.setattr(engine.Sync, "_record", crash)
        with pytest.raises(Crash):
            await _run(config, pipeline, store, transport)
    assert len(sandbox[target].records) == 3, "the missing record was recreated"

    again = await _run(config, pipeline, store, transport)
    await _run(config, pipeline, store, transport)

    assert again.status == "succeeded", again.summary()
    check = await verify_async(sandbox, config, pipeline)
    assert check.clean, check
    assert check.found == 3, check


def _phone_edit(system: str) -> dict[str, str]:
    return {
        "bigcapital": {"work_phone": "+15550001111"},
        "thredfi": {"office_phone": "+15550001111"},
        "piriod": {"phone": "+56911112222"},
        "timbrix": {"phone": "+523311112222"},
    }[system]


# -- natural keys ---------------------------------------------------------------


async def test_given_no_link_when_timbrix_record_has_our_tax_id_then_it_is_matched_by_tax_id_before_email(
    sandbox: Sandbox, transport: httpx.ASGITransport, store: Store
) -> None:
    config = _config(store)
    seed_source(sandbox, "tx", 4)
    await _run(config, "thredfi_to_timbrix", store, transport)
    ours = next(iter(sandbox["timbrix"].records.values()))
    sandbox["timbrix"].admin_edit(ours, {"email": "changed-by-hand@example.mx"})
    blank = Store("sqlite://")  # the state store is lost

    result = await _run(config, "thredfi_to_timbrix", blank, transport)

    assert result.counts.created == 0, result.summary()
    assert result.matched == 4, result.summary()
    assert len(sandbox["timbrix"].records) == 4
    check = await verify_async(sandbox, config, "thredfi_to_timbrix")
    assert check.clean, check  # the edited e-mail was put back


async def test_given_match_on_empty_when_target_holds_the_same_email_then_it_is_not_adopted(
    sandbox: Sandbox, transport: httpx.ASGITransport, store: Store
) -> None:
    """``match_on`` is per pipeline: an empty list turns natural-key matching off."""
    config = _config(store, match_on=[])
    sandbox["thredfi"].seed([{"company_name": "Mine Ltd", "email": "same@example.com"}])
    sandbox["bigcapital"].seed([{"displayName": "Theirs", "email": "same@example.com"}])

    result = await _run(config, "thredfi_to_bigcapital", store, transport)

    assert (result.counts.created, result.matched) == (1, 0), result.summary()
    assert sorted(r["display_name"] for r in sandbox["bigcapital"].records.values()) == ["Mine Ltd", "Theirs"]


async def test_given_default_match_on_when_target_holds_the_same_email_then_it_is_adopted_and_reported(
    sandbox: Sandbox, transport: httpx.ASGITransport, store: Store
) -> None:
    config = _config(store)
    sandbox["thredfi"].seed([{"company_name": "Mine Ltd", "email": "same@example.com"}])
    sandbox["bigcapital"].seed([{"displayName": "Theirs", "email": "same@example.com"}])

    result = await _run(config, "thredfi_to_bigcapital", store, transport)

    # Found and made current: it counts once, as matched (not also as updated).
    assert (result.counts.created, result.counts.updated, result.matched) == (0, 0, 1), result.summary()
    assert [r["display_name"] for r in sandbox["bigcapital"].records.values()] == ["Mine Ltd"]


async def test_given_two_target_records_share_the_email_when_no_link_then_quarantined_as_ambiguous_never_guessed(
    sandbox: Sandbox, transport: httpx.ASGITransport, store: Store
) -> None:
    config = _config(store)
    (source,) = sandbox["thredfi"].seed([{"company_name": "Twin Ltd", "email": "twin@example.com"}])
    sandbox["bigcapital"].seed(
        [{"displayName": "Twin A", "email": "twin@example.com"}, {"displayName": "Twin B", "email": "twin@example.com"}]
    )
    writes = len(sandbox["bigcapital"].writes())

    result = await _run(config, "thredfi_to_bigcapital", store, transport)

    assert result.status == "partial"
    assert result.counts.failed == 1
    assert len(sandbox["bigcapital"].writes()) == writes, "nothing created, nothing overwritten"
    (entry,) = store.quarantined("thredfi_to_bigcapital")
    assert entry.source_id == source["id"]
    assert entry.field == "email"
    assert "ambiguous" in entry.reason


async def test_given_pending_intent_and_two_lookalikes_when_rerun_then_ambiguity_is_quarantined(
    sandbox: Sandbox, transport: httpx.ASGITransport, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A create cut off before its commit, then found twice in the target (someone
    copied it by hand meanwhile), is quarantined rather than guessed."""
    config = _config(store)
    sandbox["thredfi"].seed([{"company_name": "Copy Ltd", "email": "copy@example.com"}])

    def crash(self: object, *args: object) -> None:
        raise Crash

    with monkeypatch.context() as patch:
        patch.setattr(engine.Sync, "_record", crash)
        with pytest.raises(Crash):
            await _run(config, "thredfi_to_bigcapital", store, transport)
    (copy,) = sandbox["bigcapital"].records.values()
    sandbox["bigcapital"].seed([{"displayName": copy["display_name"], "email": copy["email"], "currencyCode": "USD"}])
    writes = len(sandbox["bigcapital"].writes())

    result = await _run(config, "thredfi_to_bigcapital", store, transport)

    assert result.counts.failed == 1
    assert len(sandbox["bigcapital"].records) == 2
    assert len(sandbox["bigcapital"].writes()) == writes
    (entry,) = store.quarantined("thredfi_to_bigcapital")
    assert entry.field == "email"
    assert "ambiguous" in entry.reason


@pytest.mark.parametrize("pair", ["bt", "tp"])
async def test_given_a_crash_before_the_commit_when_the_opposite_pipeline_runs_first_then_it_completes_the_link(
    pair: str, sandbox: Sandbox, transport: httpx.ASGITransport, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two-way: A→B dies after creating in B, before its commit; B→A runs next. The records it
    finds in B carry the identity in their slot: they complete the pending links, nothing is
    quarantined as a second claim, and no copy goes back to A."""
    source, target, pipeline = _pipeline(pair)
    config = _config(store)
    seed_source(sandbox, pair, 6)

    def crash(self: object, *args: object) -> None:
        raise Crash

    with monkeypatch.context() as patch:
        patch.setattr(engine.Sync, "_record", crash)
        with pytest.raises(Crash):
            await _run(config, pipeline, store, transport)
    created = len(sandbox[target].records)
    back = await _run(config, f"{target}_to_{source}", store, transport)
    forth = await _run(config, pipeline, store, transport)
    again = await _run(config, f"{target}_to_{source}", store, transport)

    assert back.status == "succeeded", (back.summary(), [q.reason for q in store.quarantined(back.pipeline)])
    assert back.counts.created == 0
    assert len(sandbox[source].records) == 6, "nothing echoed back as a new record"
    assert forth.status == "succeeded", forth.summary()
    assert forth.counts.created == 6 - created
    assert again.counts.unchanged == 6
    check = await verify_async(sandbox, config, pipeline)
    assert check.clean, check
    assert check.found == 6


async def test_given_lost_creates_on_every_page_when_run_then_the_target_is_listed_again_once_not_per_page(
    sandbox: Sandbox, transport: httpx.ASGITransport, store: Store
) -> None:
    """Recovering lost Bigcapital creates needs a fresh listing of the target: one per retry
    pass of the run, never one per source page (a 10k-customer sync has 100 pages)."""
    config = _config(store)
    seed_source(sandbox, "tb", 250)  # three Thredfi pages
    sandbox["bigcapital"].faults.add("error_after", method="POST", path="/api/customers$", probability=0.05, times=None)

    result = await _run(config, "thredfi_to_bigcapital", store, transport)

    assert result.status == "succeeded", result.summary()
    listings = [r for r in sandbox["bigcapital"].requests if r.method == "GET" and r.path.endswith("/customers")]
    pages_per_listing = 2 + 1  # active and inactive listings, up to 250 records each at 100 a page
    assert len(listings) <= 2 * 2 * pages_per_listing, "the first index, then one fresh listing for the retries"
    check = await verify_async(sandbox, config, "thredfi_to_bigcapital")
    assert check.clean, check
    assert check.found == 250
