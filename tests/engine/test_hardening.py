"""Issue 9 / 8 / 13, engine side: garbage stays with its record, natural keys never guess,
quarantine retries on (de)activation, ``--full`` restores state, writes are verified,
external-id aliases keep identities, found records count as matched, dry runs plan quarantines."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import select
from structlog.testing import capture_logs
from typer.testing import CliRunner

from connectors.bigcapital import BigcapitalConnector
from sandbox.server import Sandbox, sandbox_config
from state.models import Link
from state.store import Store
from tests.conftest import SANDBOX_URL, SyncFn, make_config, one_way
from tests.engine.asgi import Tamper, TamperingApp, json_answer
from worker.cli import app as cli_app
from worker.config import AppConfig
from worker.engine import RunResult
from worker.runner import run_pipeline

SQLITE_ONLY = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
TH_CUSTOMERS = r"^/thredfi/v1/platform/businesses/[^/]+/customers/"
BC_LIST = r"^/bigcapital/api/customers\?"


def _tampering(sandbox: Sandbox) -> tuple[TamperingApp, dict[str, httpx.AsyncBaseTransport]]:
    app = TamperingApp(sandbox.app)
    transport = httpx.ASGITransport(app=app)
    return app, dict.fromkeys(sandbox.emulators, transport)


async def _via(
    config: AppConfig, store: Store, transports: dict[str, httpx.AsyncBaseTransport], pipeline: str, **options: Any
) -> RunResult:
    """A run through the tampering transport."""
    return await run_pipeline(config, pipeline, store=store, transports=transports, **options)


def _thredfi_writes(sandbox: Sandbox) -> list[Any]:
    """Thredfi's record writes (a token request is none: a run that reads Thredfi asks for one)."""
    return list(sandbox["thredfi"].writes())


# -- 9.6 garbage contained to its record -----------------------------------------------


async def test_given_a_record_listed_twice_in_one_page_when_run_then_it_counts_once_and_the_run_goes_on(
    sandbox: Sandbox, sync: SyncFn, config: AppConfig, store: Store
) -> None:
    sandbox["bigcapital"].seed_fake(5)
    app, transports = _tampering(sandbox)
    twice = json_answer(lambda body: {**body, "customers": [*body["customers"], *body["customers"][:1]]})
    app.add(Tamper("GET", BC_LIST, answer=twice, times=None))

    with capture_logs() as events:
        first = await _via(config, store, transports, "bigcapital_to_thredfi")
    second = await _via(config, store, transports, "bigcapital_to_thredfi")

    assert first.status == "succeeded", first.summary()
    assert (first.counts.pulled, first.counts.created) == (5, 5)
    assert len(sandbox["thredfi"].records) == 5
    # The paging layer drops the repeat and says the listing proves nothing (no deletes from it).
    assert any(e["event"] == "listing_unproven" and "repeated 1 records" in e["reason"] for e in events), events
    assert second.status == "succeeded", second.summary()
    assert (second.counts.pulled, second.counts.unchanged) == (5, 5)


@pytest.mark.parametrize(
    "answer", [b"<html>bad gateway</html>", b'{"company_name": "no id here"}'], ids=["not_json", "no_id"]
)
async def test_given_a_create_answered_without_an_id_when_run_then_no_write_to_the_collection_and_it_lands_once(
    answer: bytes, sandbox: Sandbox, sync: SyncFn, config: AppConfig, store: Store
) -> None:
    sandbox["bigcapital"].seed_fake(3)
    app, transports = _tampering(sandbox)
    rule = app.add(Tamper("POST", TH_CUSTOMERS + r"\?", answer=lambda _body, _path: answer))

    result = await _via(config, store, transports, "bigcapital_to_thredfi")

    assert rule.fired == 1
    assert result.status == "succeeded", result.summary()
    assert Counter(r["external_id"] for r in sandbox["thredfi"].records.values()).most_common(1)[0][1] == 1
    assert len(sandbox["thredfi"].records) == 3
    collection_writes = [r for r in _thredfi_writes(sandbox) if r.method != "POST" and r.path.endswith("/customers/")]
    assert not collection_writes, "never a PUT/PATCH to the collection URL"
    again = await _via(config, store, transports, "bigcapital_to_thredfi")
    assert again.counts.unchanged == 3


async def test_given_a_create_answered_without_an_id_into_bigcapital_when_run_then_contained_and_found_again(
    sandbox: Sandbox, sync: SyncFn, store: Store, config: AppConfig
) -> None:
    """No identity slot: the record is looked up like a lost answer, never addressed as ``?``."""
    sandbox["thredfi"].seed_fake(3)
    app, transports = _tampering(sandbox)
    app.add(Tamper("POST", r"^/bigcapital/api/customers$", answer=json_answer(lambda b: {"message": "created"})))

    result = await _via(config, store, transports, "thredfi_to_bigcapital")
    again = await _via(config, store, transports, "thredfi_to_bigcapital")

    assert len(sandbox["bigcapital"].records) == 3, "each customer once"
    assert not [r for r in sandbox["bigcapital"].requests if "?" in r.path or r.path.endswith("/customers/")]
    assert result.status in ("succeeded", "partial"), result.summary()
    assert again.status == "succeeded", again.summary()
    assert not [link for link in store.links_of("bigcapital") if (link.remote_id or "").startswith("?")]


# -- 9.8 natural keys never guess -----------------------------------------------------


async def test_given_two_source_customers_matching_one_unlinked_target_record_by_email_then_both_quarantined(
    sandbox: Sandbox, sync: SyncFn, store: Store
) -> None:
    sandbox["thredfi"].seed(
        [
            {"company_name": "First Ltd", "email": "shared@example.com"},
            {"company_name": "Second Ltd", "email": "shared@example.com"},
        ]
    )
    (theirs,) = sandbox["bigcapital"].seed([{"displayName": "Theirs", "email": "shared@example.com"}])

    result = await sync("thredfi_to_bigcapital")

    assert (result.counts.created, result.counts.matched, result.counts.failed) == (0, 0, 2), result.summary()
    assert [r["display_name"] for r in sandbox["bigcapital"].records.values()] == ["Theirs"], "never renamed"
    entries = store.quarantined("thredfi_to_bigcapital")
    assert len(entries) == 2
    assert {q.field for q in entries} == {"email"}
    assert all("ambiguous" in q.reason and "shared@" not in q.reason for q in entries)
    assert theirs["id"] not in {link.remote_id for link in store.links_of("bigcapital")}


async def test_given_two_source_customers_on_different_pages_matching_one_target_record_then_both_quarantined(
    sandbox: Sandbox, sync: SyncFn, store: Store
) -> None:
    """The first is on page 1 and the second on page 2 (Thredfi pages hold 100): still never a guess."""
    fillers = [{"company_name": f"Filler {n}", "email": f"filler{n}@example.com"} for n in range(120)]
    sandbox["thredfi"].seed(
        [
            {"company_name": "First Ltd", "email": "shared@example.com"},
            *fillers,
            {"company_name": "Second Ltd", "email": "shared@example.com"},
        ]
    )
    (theirs,) = sandbox["bigcapital"].seed([{"displayName": "Theirs", "email": "shared@example.com"}])

    result = await sync("thredfi_to_bigcapital")

    assert (result.counts.created, result.counts.matched, result.counts.failed) == (120, 0, 2), result.summary()
    assert sandbox["bigcapital"].records[str(theirs["id"])]["display_name"] == "Theirs", "never renamed"
    entries = store.quarantined("thredfi_to_bigcapital")
    assert {q.field for q in entries} == {"email"}
    assert len(entries) == 2
    assert all("ambiguous" in q.reason for q in entries)
    assert theirs["id"] not in {link.remote_id for link in store.links_of("bigcapital")}


# -- 9.11 quarantine retries, --full --------------------------------------------------


@SQLITE_ONLY
async def test_given_a_quarantined_record_only_deactivated_when_run_then_it_is_tried_again(
    sandbox: Sandbox, sync: SyncFn, store: Store
) -> None:
    (record,) = sandbox["bigcapital"].seed([{"displayName": "Bad Mail", "email": "bad@example.com"}])
    sandbox["bigcapital"].records[str(record["id"])]["email"] = "not-an-email"
    await sync("bigcapital_to_thredfi")
    await sync("bigcapital_to_thredfi")
    (entry,) = store.quarantined("bigcapital_to_thredfi")
    assert entry.attempts == 1, "unchanged since it failed: not tried again"

    sandbox["bigcapital"].admin_edit(sandbox["bigcapital"].records[str(record["id"])], {"active": False})
    await sync("bigcapital_to_thredfi")

    (entry,) = store.quarantined("bigcapital_to_thredfi")
    assert entry.attempts == 2, "its (de)activation is a change: tried again"


@SQLITE_ONLY
async def test_given_a_record_archived_by_hand_in_the_target_when_run_full_then_its_source_state_is_restored(
    sandbox: Sandbox, sync: SyncFn, config: AppConfig
) -> None:
    config = one_way(config, "bigcapital_to_thredfi")
    sandbox["bigcapital"].seed([{"displayName": "Active Co", "email": "active@example.com"}])
    await sync("bigcapital_to_thredfi", config=config)
    (target,) = sandbox["thredfi"].records.values()
    sandbox["thredfi"].admin_edit(target, {"status": "archived"})
    assert target["is_archived"] is True

    result = await sync("bigcapital_to_thredfi", full=True, config=config)

    assert result.status == "succeeded", result.summary()
    assert target["is_archived"] is False, "--full puts the source's active state back"


@SQLITE_ONLY
async def test_given_a_two_way_pair_and_a_hand_archive_in_the_target_when_run_full_then_it_is_a_held_conflict(
    sandbox: Sandbox, sync: SyncFn, store: Store
) -> None:
    """In a pair the target's archive is an edit of its own: --full does not silently undo it."""
    sandbox["bigcapital"].seed([{"displayName": "Active Co", "email": "active@example.com"}])
    await sync("bigcapital_to_thredfi")
    (target,) = sandbox["thredfi"].records.values()
    sandbox["thredfi"].admin_edit(target, {"status": "archived"})

    result = await sync("bigcapital_to_thredfi", full=True)

    assert result.status == "partial", result.summary()
    assert target["is_archived"] is True
    (entry,) = store.quarantined("bigcapital_to_thredfi")
    assert entry.reason == "conflict: active edited in bigcapital and in thredfi since the last sync"


# -- 8.3 write verification -----------------------------------------------------------


def _drop_phone(body: Any) -> Any:
    return {k: v for k, v in body.items() if k != "office_phone"} if isinstance(body, dict) else body


@SQLITE_ONLY
async def test_given_thredfi_silently_drops_the_phone_when_synced_then_reported_once_remembered_never_cleared(
    sandbox: Sandbox, sync: SyncFn, store: Store, config: AppConfig, tmp_path: Path
) -> None:
    seeded = sandbox["bigcapital"].seed(
        [
            {"displayName": f"Phone Co {n}", "email": f"phone{n}@example.com", "workPhone": f"+1555010{n:04d}"}
            for n in range(4)
        ]
    )
    app, transports = _tampering(sandbox)
    for method in ("POST", "PATCH", "PUT"):
        app.add(Tamper(method, TH_CUSTOMERS, request=_drop_phone, times=None))

    with capture_logs() as events:
        first = await _via(config, store, transports, "bigcapital_to_thredfi")

    assert (first.status, first.counts.created) == ("succeeded", 4), first.summary()
    reported = [e for e in events if e["event"] == "field_not_stored"]
    assert reported == [
        {"event": "field_not_stored", "system": "thredfi", "field": "phone", "count": 4, "log_level": "warning"}
    ], "once per run and field, no values"
    assert store.not_stored_counts("thredfi") == {"phone": 4}
    config_file = tmp_path / "custsync.toml"
    config_file.write_text(sandbox_config(SANDBOX_URL, state_url=store.url), encoding="utf-8")
    shown = CliRunner().invoke(cli_app, ["status", "bigcapital_to_thredfi", "--json", "-c", str(config_file)])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["field_not_stored"] == {"phone": 4}, "custsync status shows it"

    writes = len(_thredfi_writes(sandbox))
    with capture_logs() as events:
        second = await _via(config, store, transports, "bigcapital_to_thredfi")
    assert second.counts.unchanged == 4, second.summary()
    assert len(_thredfi_writes(sandbox)) == writes, "the field is not written again"
    assert not [e for e in events if e["event"] == "field_not_stored"]

    back = await _via(config, store, transports, "thredfi_to_bigcapital")
    assert back.status == "succeeded", back.summary()
    assert back.counts.updated == 0, "the opposite pipeline sees nothing to echo"
    assert [r["work_phone"] for r in sandbox["bigcapital"].records.values()] == [s["work_phone"] for s in seeded]

    # An edit of another field is still written, without the phone.
    record = next(iter(sandbox["bigcapital"].records.values()))
    sandbox["bigcapital"].admin_edit(record, {"note": "edited"})
    edited = await _via(config, store, transports, "bigcapital_to_thredfi")
    assert edited.counts.updated == 1, edited.summary()


# -- 8.1 external-id aliases ----------------------------------------------------------


def _new_scheme(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bigcapital's external ids now name the organization; the host-based form is an alias."""
    old = BigcapitalConnector.external_id_for
    monkeypatch.setattr(BigcapitalConnector, "external_id_for", lambda self, rid: f"bigcapital:org-1:{rid}")
    monkeypatch.setattr(BigcapitalConnector, "external_id_aliases", lambda self, rid: (old(self, rid),))


@SQLITE_ONLY
async def test_given_identities_under_the_old_external_id_form_when_the_scheme_changes_then_they_are_kept(
    sandbox: Sandbox, sync: SyncFn, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox["bigcapital"].seed_fake(4)
    await sync("bigcapital_to_thredfi")
    with store.session() as s:  # the source links are gone (the scheme change lost them)
        for link in s.exec(select(Link).where(Link.connection == "bigcapital")):
            s.delete(link)
    _new_scheme(monkeypatch)
    writes = len(_thredfi_writes(sandbox))

    result = await sync("bigcapital_to_thredfi")

    assert (result.counts.created, result.counts.unchanged) == (0, 4), result.summary()
    assert len(sandbox["thredfi"].records) == 4
    assert len(_thredfi_writes(sandbox)) == writes


@SQLITE_ONLY
async def test_given_a_lost_store_and_the_old_form_in_thredfis_slot_when_run_then_found_by_the_alias(
    sandbox: Sandbox, sync: SyncFn, transport: httpx.ASGITransport, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox["bigcapital"].seed_fake(4)
    await sync("bigcapital_to_thredfi")
    blank = Store("sqlite://")  # the state store is lost
    _new_scheme(monkeypatch)
    config = make_config("sqlite://")

    found = await run_pipeline(
        config, "bigcapital_to_thredfi", store=blank, transports=dict.fromkeys(config.connections, transport)
    )

    assert found.status == "succeeded", found.summary()
    assert len(sandbox["thredfi"].records) == 4, "no copy under the new form"
    assert (found.counts.created, found.counts.matched) == (0, 4)


# -- 9.10 / 13.2 dry run plans every quarantine ----------------------------------------


@SQLITE_ONLY
async def test_given_records_a_real_run_would_quarantine_when_dry_run_then_planned_with_the_same_reasons(
    sandbox: Sandbox, sync: SyncFn, store: Store
) -> None:
    sandbox["thredfi"].seed(
        [
            {"company_name": "First Ltd", "email": "shared@example.com"},
            {"company_name": "Second Ltd", "email": "shared@example.com"},
            {"company_name": "Fine Ltd", "email": "fine@example.com"},
            {"company_name": "Bad Money Ltd", "email": "money@example.com"},
        ]
    )
    sandbox["bigcapital"].seed([{"displayName": "Theirs", "email": "shared@example.com"}])
    bad = next(r for r in sandbox["thredfi"].records.values() if r["company_name"] == "Bad Money Ltd")
    bad["country"] = "Narnia"  # cannot be mapped

    planned = await sync("thredfi_to_bigcapital", dry_run=True)
    real = await sync("thredfi_to_bigcapital")

    would = {(p.source_id, p.fields, p.reason) for p in planned.planned if p.action == "quarantine"}
    did = {(q.source_id, (q.field,), q.reason) for q in store.quarantined("thredfi_to_bigcapital")}
    assert len(would) == 3
    assert would == did
    assert planned.counts.failed == real.counts.failed == 3


@pytest.mark.parametrize(
    ("vendor_key", "canonical", "value"),
    [
        ("email", "email", {"address": "x@example.com"}),
        ("billing_address_city", "city", ["Springfield", "IL"]),
        ("display_name", "name", {"first": "Ada"}),
    ],
    ids=["object_in_email", "array_in_city", "object_in_name"],
)
async def test_given_json_structure_in_a_text_field_when_run_then_quarantined_naming_the_field_never_written_as_repr(
    vendor_key: str, canonical: str, value: Any, sandbox: Sandbox, config: AppConfig, store: Store
) -> None:
    seeded = sandbox["bigcapital"].seed_fake(4)
    app, transports = _tampering(sandbox)
    bad_id = seeded[1]["id"]

    def structured(body: dict[str, Any]) -> dict[str, Any]:
        rows = [{**r, vendor_key: value} if r["id"] == bad_id else r for r in body["customers"]]
        return {**body, "customers": rows}

    app.add(Tamper("GET", BC_LIST, answer=json_answer(structured), times=None))

    result = await _via(config, store, transports, "bigcapital_to_thredfi")

    assert (result.counts.created, result.counts.failed) == (3, 1), result.summary()
    (entry,) = store.quarantined("bigcapital_to_thredfi")
    assert entry.source_id == str(bad_id)
    assert entry.field == canonical
    assert "not text" in entry.reason
    written = json.dumps(list(sandbox["thredfi"].records.values()))
    assert "{'" not in written, "no Python repr reached the target"
    assert "['" not in written, "no Python repr reached the target"
