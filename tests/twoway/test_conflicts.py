"""Conflicts in a two-way pair, under each policy of product.md ("Two-way pairs and rings").

A conflict is a field of one customer edited on both sides since the last sync.
The pair is Bigcapital ⇄ Thredfi (Bigcapital gives no ``updated_at``), and
Thredfi ⇄ Timbrix where both sides must give one (``newest_wins``). Each test
first syncs the pair both ways, then edits the customer on both sides, the way
a user of each system would, and runs the pipelines:

- ``hold`` (the default): the field goes to neither side, the run is ``partial``
  (exit 1), ``custsync failures`` lists the customer with the exact reason and no
  values, the customer's other fields still flow both ways, and the conflict is
  settled once both sides hold the same value;
- ``source_wins``: the running pipeline's source value is written and
  ``conflict_overwritten`` is logged (external_id, field, no values);
- ``newest_wins``: the later ``updated_at`` wins, whichever pipeline runs first;
  held as with ``hold`` where a side gives none;
- ``owner``: an owned field flows only from its owner; the other side's edit is
  overwritten on the next run, logged as ``owned_field_overwritten``;
- the two pipelines of a pair declaring different values: exit 2 from the CLI;
- ``custsync resolve PIPELINE --keep CONNECTION [EXTERNAL_ID ...]`` settles held
  conflicts at once, keeping either side, named through either pipeline.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from sandbox import thredfi
from sandbox.server import Sandbox
from tests.conftest import SyncFn
from tests.pairs.fixtures import FIXTURES, seed
from tests.support.twoway import (
    by_email,
    connectors,
    edit,
    failed_runs,
    run_round,
    snapshot,
    twoway_config,
    variant,
    writes,
)
from tests.twoway.conftest import CliFn, ConfigFileFn
from worker.config import AppConfig

BC, TH, TB = "bigcapital", "thredfi", "timbrix"
BC_TH, TH_BC = f"{BC}_to_{TH}", f"{TH}_to_{BC}"
TH_TB, TB_TH = f"{TH}_to_{TB}", f"{TB}_to_{TH}"
PHONE_BC, PHONE_TH = "+15125550111", "+15125550122"  # the two sides' edits of one phone
EMAIL = "ap@acme.example"  # us_company: the customer every test puts in conflict


def reason(field: str, first: str, second: str) -> str:
    return f"conflict: {field} edited in {first} and in {second} since the last sync"


def on_pair(a: str, b: str, **options: Any) -> dict[str, dict[str, Any]]:
    """The same options on both pipelines of the pair ``a`` ⇄ ``b``."""
    return {f"{a}_to_{b}": dict(options), f"{b}_to_{a}": dict(options)}


def config_for(store_url: str, options: Mapping[str, Mapping[str, Any]] | None = None) -> AppConfig:
    return twoway_config(store_url, options)


async def synced_bc_th(sandbox: Sandbox, sync: SyncFn, config: AppConfig) -> tuple[str, str]:
    """Bigcapital ⇄ Thredfi synced both ways (customers from each side); the us_company's ids (bigcapital, thredfi)."""
    seed(BC, sandbox[BC], {k: FIXTURES[k] for k in ("us_company", "gb_company", "us_person")})
    seed(TH, sandbox[TH], {"us_company_th": variant(FIXTURES["us_company"], "Beta")})
    results = await run_round(sync, [BC_TH, TH_BC], config=config)
    assert failed_runs(results) == []
    assert all(r.status == "succeeded" for r in results), [r.summary() for r in results]
    return ids_of(sandbox, config, EMAIL)


def ids_of(sandbox: Sandbox, config: AppConfig, email: str, systems: tuple[str, str] = (BC, TH)) -> tuple[str, str]:
    mapping = connectors(config, systems)
    found = [by_email(snapshot(sandbox, mapping[s], s)).get(email) for s in systems]
    assert all(found), f"{email} is not on both sides: {found}"
    return found[0][0], found[1][0]  # type: ignore[index]


def field_of(sandbox: Sandbox, config: AppConfig, system: str, rid: str, field: str) -> Any:
    customer = connectors(config, (system,))[system].read(sandbox[system].records[rid]).customer
    assert customer is not None
    return getattr(customer, field)


def external_id(sandbox: Sandbox, th_id: str) -> str:
    """The customer's identity (the one ``failures`` lists): as Thredfi holds it in its own slot for a
    customer that came from elsewhere, else the Thredfi record's own ``thredfi:BUSINESS:ID``."""
    held = sandbox[TH].records[th_id]["external_id"]
    return str(held) if held else f"thredfi:{thredfi.SANDBOX_BUSINESS_ID}:{th_id}"


def listed(cli: CliFn, path: Path, pipeline: str) -> list[dict[str, Any]]:
    result = cli("failures", pipeline, "--json", "--config", str(path))
    assert result.exit_code == 0, result.output
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return rows


def events(captured: list[MutableMapping[str, Any]], name: str) -> list[MutableMapping[str, Any]]:
    return [e for e in captured if e["event"] == name]


# -- hold ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("declared", [{}, {"conflict": "hold"}], ids=["default", "hold"])
async def test_given_phone_edited_on_both_sides_when_pair_runs_under_hold_then_held_listed_other_fields_flow(
    declared: dict[str, str],
    sandbox: Sandbox,
    sync: SyncFn,
    store_url: str,
    cli: CliFn,
    config_file: ConfigFileFn,
) -> None:
    options = {BC_TH: declared, TH_BC: declared} if declared else None
    config = config_for(store_url, options)
    bc_id, th_id = await synced_bc_th(sandbox, sync, config)
    edit(sandbox, BC, bc_id, "phone", PHONE_BC)
    edit(sandbox, BC, bc_id, "notes", "edited in bigcapital")
    edit(sandbox, TH, th_id, "phone", PHONE_TH)
    edit(sandbox, TH, th_id, "city", "Round Rock")
    path = config_file(options)

    forward = await sync(BC_TH, config=config)

    assert (forward.status, forward.exit_code, forward.counts.failed) == ("partial", 1, 1), forward.summary()
    assert field_of(sandbox, config, TH, th_id, "phone") == PHONE_TH, "a held field is written to neither side"
    assert field_of(sandbox, config, TH, th_id, "notes") == "edited in bigcapital", "the other fields flow"
    (entry,) = listed(cli, path, BC_TH)
    assert entry["reason"] == reason("phone", BC, TH)
    assert entry["field"] == "phone"
    assert entry["external_id"] == external_id(sandbox, th_id)
    assert PHONE_BC not in json.dumps(entry), "no values in failures"
    assert PHONE_TH not in json.dumps(entry), "no values in failures"

    backward = await sync(TH_BC, config=config)

    assert (backward.status, backward.exit_code, backward.counts.failed) == ("partial", 1, 1), backward.summary()
    assert field_of(sandbox, config, BC, bc_id, "phone") == PHONE_BC
    assert field_of(sandbox, config, BC, bc_id, "city") == "Round Rock", "the other fields flow back"
    (entry,) = listed(cli, path, TH_BC)
    assert entry["reason"] == reason("phone", TH, BC)

    # Still held on the next round: nothing was settled, nothing is written.
    before = writes(sandbox, (BC, TH))
    again = await run_round(sync, [BC_TH, TH_BC], config=config)
    assert [r.status for r in again] == ["partial", "partial"], [r.summary() for r in again]
    assert writes(sandbox, (BC, TH)) == before
    assert field_of(sandbox, config, BC, bc_id, "phone") == PHONE_BC
    assert field_of(sandbox, config, TH, th_id, "phone") == PHONE_TH

    # Settled when both sides hold the same value.
    edit(sandbox, BC, bc_id, "phone", PHONE_TH)
    settled = await run_round(sync, [BC_TH, TH_BC], config=config)
    assert [r.status for r in settled] == ["succeeded", "succeeded"], [r.summary() for r in settled]
    assert listed(cli, path, BC_TH) == []
    assert listed(cli, path, TH_BC) == []
    quiet = writes(sandbox, (BC, TH))
    await run_round(sync, [BC_TH, TH_BC], config=config)
    assert writes(sandbox, (BC, TH)) == quiet


async def test_given_different_fields_edited_on_each_side_when_pair_runs_under_hold_then_no_conflict(
    sandbox: Sandbox, sync: SyncFn, store_url: str
) -> None:
    config = config_for(store_url)
    bc_id, th_id = await synced_bc_th(sandbox, sync, config)
    edit(sandbox, BC, bc_id, "phone", PHONE_BC)
    edit(sandbox, TH, th_id, "email", f"new.{EMAIL}")

    results = await run_round(sync, [BC_TH, TH_BC], config=config)

    assert [r.status for r in results] == ["succeeded", "succeeded"], [r.summary() for r in results]
    for system, rid in ((BC, bc_id), (TH, th_id)):
        assert field_of(sandbox, config, system, rid, "phone") == PHONE_BC
        assert field_of(sandbox, config, system, rid, "email") == f"new.{EMAIL}"


# -- source_wins --------------------------------------------------------------------------------------


@pytest.mark.parametrize("first", [BC_TH, TH_BC])
async def test_given_conflict_under_source_wins_when_a_pipeline_runs_then_its_source_value_is_written_and_logged(
    first: str, sandbox: Sandbox, sync: SyncFn, store_url: str
) -> None:
    config = config_for(store_url, on_pair(BC, TH, conflict="source_wins"))
    bc_id, th_id = await synced_bc_th(sandbox, sync, config)
    edit(sandbox, BC, bc_id, "phone", PHONE_BC)
    edit(sandbox, TH, th_id, "phone", PHONE_TH)
    winner = PHONE_BC if first == BC_TH else PHONE_TH
    second = TH_BC if first == BC_TH else BC_TH

    with capture_logs() as captured:
        result = await sync(first, config=config)

    assert result.status == "succeeded", result.summary()
    assert field_of(sandbox, config, BC, bc_id, "phone") == winner
    assert field_of(sandbox, config, TH, th_id, "phone") == winner
    (event,) = events(captured, "conflict_overwritten")
    assert event["external_id"] == external_id(sandbox, th_id)
    assert event["field"] == "phone"
    assert PHONE_BC not in repr(event), "events carry no values"
    assert PHONE_TH not in repr(event), "events carry no values"

    with capture_logs() as captured:
        other = await sync(second, config=config)

    assert other.status == "succeeded", other.summary()
    assert events(captured, "conflict_overwritten") == [], "settled by the first run: no conflict left"
    assert field_of(sandbox, config, BC, bc_id, "phone") == winner
    assert field_of(sandbox, config, TH, th_id, "phone") == winner


# -- newest_wins --------------------------------------------------------------------------------------

EARLY, LATE = "2030-01-01T00:00:00Z", "2030-01-01T00:00:05Z"


@pytest.mark.parametrize("first", [TH_TB, TB_TH])
@pytest.mark.parametrize("newer", [TH, TB])
async def test_given_conflict_under_newest_wins_when_pair_runs_then_the_later_updated_at_wins_in_either_order(
    newer: str, first: str, sandbox: Sandbox, sync: SyncFn, store_url: str
) -> None:
    config = config_for(store_url, on_pair(TH, TB, conflict="newest_wins"))
    seed(TH, sandbox[TH], {k: FIXTURES[k] for k in ("mx_company", "mx_person")})
    assert failed_runs(await run_round(sync, [TH_TB, TB_TH], config=config)) == []
    th_id, tb_id = ids_of(sandbox, config, "cxp@nandu.example", (TH, TB))
    values = {TH: "cxp.thredfi@nandu.example", TB: "cxp.timbrix@nandu.example"}
    edit(sandbox, TH, th_id, "email", values[TH], updated=LATE if newer == TH else EARLY)
    edit(sandbox, TB, tb_id, "email", values[TB], updated=LATE if newer == TB else EARLY)

    results = await run_round(sync, [first, TB_TH if first == TH_TB else TH_TB], config=config)

    assert [r.status for r in results] == ["succeeded", "succeeded"], [r.summary() for r in results]
    assert field_of(sandbox, config, TH, th_id, "email") == values[newer]
    assert field_of(sandbox, config, TB, tb_id, "email") == values[newer]


async def test_given_conflict_under_newest_wins_when_a_side_gives_no_updated_at_then_it_is_held(
    sandbox: Sandbox, sync: SyncFn, store_url: str, cli: CliFn, config_file: ConfigFileFn
) -> None:
    options = on_pair(BC, TH, conflict="newest_wins")
    config = config_for(store_url, options)
    bc_id, th_id = await synced_bc_th(sandbox, sync, config)
    assert sandbox[BC].records[bc_id]["updated_at"] is None, "Bigcapital gives no updated_at"
    edit(sandbox, BC, bc_id, "phone", PHONE_BC)
    edit(sandbox, TH, th_id, "phone", PHONE_TH, updated=LATE)

    results = await run_round(sync, [BC_TH, TH_BC], config=config)

    assert [r.status for r in results] == ["partial", "partial"], [r.summary() for r in results]
    assert field_of(sandbox, config, BC, bc_id, "phone") == PHONE_BC
    assert field_of(sandbox, config, TH, th_id, "phone") == PHONE_TH
    path = config_file(options)
    assert [e["reason"] for e in listed(cli, path, BC_TH)] == [reason("phone", BC, TH)]
    assert [e["reason"] for e in listed(cli, path, TH_BC)] == [reason("phone", TH, BC)]


# -- owner ---------------------------------------------------------------------------------------------

OWNER = {"owner": {"email": TH}}


@pytest.mark.parametrize(
    "options",
    [on_pair(BC, TH, **OWNER), {BC_TH: OWNER}, {TH_BC: OWNER}],
    ids=["both-declare", "bigcapital-pipeline-declares", "thredfi-pipeline-declares"],
)
async def test_given_email_owned_by_thredfi_when_bigcapital_edits_it_then_it_never_flows_and_is_overwritten(
    options: dict[str, dict[str, Any]], sandbox: Sandbox, sync: SyncFn, store_url: str
) -> None:
    config = config_for(store_url, options)
    bc_id, th_id = await synced_bc_th(sandbox, sync, config)
    edit(sandbox, BC, bc_id, "email", f"bigcapital.{EMAIL}")
    edit(sandbox, BC, bc_id, "phone", PHONE_BC)  # not owned: flows as usual

    with capture_logs() as captured:
        forward = await sync(BC_TH, config=config)

    assert forward.status == "succeeded", forward.summary()
    assert field_of(sandbox, config, TH, th_id, "email") == EMAIL, "an owned field flows only from its owner"
    assert field_of(sandbox, config, TH, th_id, "phone") == PHONE_BC

    with capture_logs() as more:
        backward = await sync(TH_BC, config=config)
    captured += more

    assert backward.status == "succeeded", backward.summary()
    assert field_of(sandbox, config, BC, bc_id, "email") == EMAIL, "the owner's value overwrites the other side"
    (event,) = events(captured, "owned_field_overwritten")
    assert event["external_id"] == external_id(sandbox, th_id)
    assert event["field"] == "email"
    assert f"bigcapital.{EMAIL}" not in repr(event)
    quiet = writes(sandbox, (BC, TH))
    await run_round(sync, [BC_TH, TH_BC], config=config)
    assert writes(sandbox, (BC, TH)) == quiet


async def test_given_email_owned_by_thredfi_when_both_sides_edit_it_then_the_owner_wins_without_a_hold(
    sandbox: Sandbox, sync: SyncFn, store_url: str
) -> None:
    config = config_for(store_url, on_pair(BC, TH, **OWNER))
    bc_id, th_id = await synced_bc_th(sandbox, sync, config)
    edit(sandbox, BC, bc_id, "email", f"bigcapital.{EMAIL}")
    edit(sandbox, TH, th_id, "email", f"thredfi.{EMAIL}")
    edit(sandbox, BC, bc_id, "phone", PHONE_BC)  # not owned: a conflict on it is still held
    edit(sandbox, TH, th_id, "phone", PHONE_TH)

    results = await run_round(sync, [BC_TH, TH_BC], config=config)

    assert field_of(sandbox, config, BC, bc_id, "email") == f"thredfi.{EMAIL}"
    assert field_of(sandbox, config, TH, th_id, "email") == f"thredfi.{EMAIL}"
    assert [r.counts.failed for r in results] == [1, 1], "the phone conflict is held, the owned e-mail is not"
    assert field_of(sandbox, config, BC, bc_id, "phone") == PHONE_BC
    assert field_of(sandbox, config, TH, th_id, "phone") == PHONE_TH


async def test_given_email_owned_by_thredfi_when_thredfi_edits_it_then_it_flows(
    sandbox: Sandbox, sync: SyncFn, store_url: str
) -> None:
    config = config_for(store_url, on_pair(BC, TH, **OWNER))
    bc_id, th_id = await synced_bc_th(sandbox, sync, config)
    edit(sandbox, TH, th_id, "email", f"thredfi.{EMAIL}")

    results = await run_round(sync, [BC_TH, TH_BC], config=config)

    assert [r.status for r in results] == ["succeeded", "succeeded"], [r.summary() for r in results]
    assert field_of(sandbox, config, BC, bc_id, "email") == f"thredfi.{EMAIL}"


# -- configuration errors -----------------------------------------------------------------------------


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    "options",
    [
        {BC_TH: {"conflict": "hold"}, TH_BC: {"conflict": "source_wins"}},
        {BC_TH: {"conflict": "newest_wins"}, TH_BC: {"conflict": "source_wins"}},
        {BC_TH: {"owner": {"email": TH}}, TH_BC: {"owner": {"email": BC}}},
        {BC_TH: {"owner": {"email": TH}}, TH_BC: {"owner": {"email": TH, "phone": TH}}},
    ],
    ids=["hold-vs-source_wins", "newest_wins-vs-source_wins", "owner-differs", "owner-more-fields"],
)
@pytest.mark.parametrize("pipeline", [BC_TH, TH_BC])
def test_given_pair_declaring_different_values_when_cli_runs_either_then_exit_2_and_nothing_written(
    options: dict[str, dict[str, Any]], pipeline: str, box: Sandbox, cli: CliFn, config_file: ConfigFileFn
) -> None:
    box[BC].seed_fake(3)
    agreeing = config_file({BC_TH: options[BC_TH], TH_BC: options[BC_TH]}, name="agreeing.toml")
    assert cli("run", pipeline, "--config", str(agreeing)).exit_code == 0, "the same values on both are fine"
    box[BC].reset()
    box[TH].reset()
    box[BC].seed_fake(3)
    path = config_file(options)

    result = cli("run", pipeline, "--config", str(path))

    assert result.exit_code == 2, result.output
    assert str(path) in result.output or path.name in result.output, "the error names the file"
    assert "conflict" in result.output or "owner" in result.output, result.output
    assert "unknown key" not in result.output, result.output
    assert box[TH].writes() == []
    assert box[BC].writes() == []


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_given_owner_naming_no_canonical_field_when_cli_runs_then_exit_2(
    box: Sandbox, cli: CliFn, config_file: ConfigFileFn
) -> None:
    path = config_file(on_pair(BC, TH, owner={"e_mail": TH}))

    result = cli("run", BC_TH, "--config", str(path))

    assert result.exit_code == 2, result.output
    assert "e_mail" in result.output, result.output


# -- custsync resolve ---------------------------------------------------------------------------------


def run_cli(cli: CliFn, path: Path, pipeline: str) -> tuple[int, dict[str, Any]]:
    result = cli("run", pipeline, "--json", "--config", str(path))
    lines = result.stdout.strip().splitlines()
    assert lines, result.output
    return result.exit_code, json.loads(lines[-1])


def cli_round(cli: CliFn, path: Path) -> list[tuple[int, dict[str, Any]]]:
    return [run_cli(cli, path, name) for name in (BC_TH, TH_BC)]


def phones(box: Sandbox, bc_id: str, th_id: str) -> tuple[Any, Any]:
    return box[BC].records[bc_id]["work_phone"], box[TH].records[th_id]["office_phone"]


@pytest.mark.parametrize(
    ("keep", "named", "by_id"),
    [(TH, BC_TH, True), (BC, BC_TH, False), (TH, TH_BC, False), (BC, TH_BC, True)],
    ids=["keep-thredfi-named-forward-by-id", "keep-bigcapital-all", "keep-thredfi-all", "keep-bigcapital-by-id"],
)
def test_given_held_conflicts_when_resolve_keeps_a_side_then_written_at_once_and_settled(
    keep: str, named: str, by_id: bool, box: Sandbox, cli: CliFn, config_file: ConfigFileFn
) -> None:
    path = config_file()
    seed(BC, box[BC], {k: FIXTURES[k] for k in ("us_company", "gb_company")})
    seed(TH, box[TH], {"us_person_th": variant(FIXTURES["us_person"], "Beta")})
    assert [code for code, _ in cli_round(cli, path)] == [0, 0]
    config = twoway_config("sqlite:///unused.db")  # mapping only
    mapping = connectors(config, (BC, TH))
    bc, th = (by_email(snapshot(box, mapping[s], s)) for s in (BC, TH))
    pairs = {email: (bc[email][0], th[email][0]) for email in ("ap@acme.example", "zoe.beta@obrien.example")}
    for bc_id, th_id in pairs.values():
        edit(box, BC, bc_id, "phone", PHONE_BC)
        edit(box, TH, th_id, "phone", PHONE_TH)
    held = cli_round(cli, path)
    assert [code for code, _ in held] == [1, 1], held
    listing = listed(cli, path, named)
    assert len(listing) == 2, listing
    ids = {e["external_id"] for e in listing}
    assert ids == {external_id(box, th_id) for _, th_id in pairs.values()}
    chosen_bc, chosen_th = pairs["ap@acme.example"]
    chosen = external_id(box, chosen_th)
    before = writes(box, (BC, TH))

    result = cli("resolve", named, "--keep", keep, *([chosen] if by_id else []), "--config", str(path))

    assert result.exit_code == 0, result.output
    kept = PHONE_TH if keep == TH else PHONE_BC
    assert phones(box, chosen_bc, chosen_th) == (kept, kept), "resolve writes at once"
    assert writes(box, (BC, TH)) != before
    other_bc, other_th = pairs["zoe.beta@obrien.example"]
    if by_id:
        assert phones(box, other_bc, other_th) == (PHONE_BC, PHONE_TH), "only the named customer is settled"
        for pipeline in (BC_TH, TH_BC):
            assert {e["external_id"] for e in listed(cli, path, pipeline)} == ids - {chosen}
    else:
        assert phones(box, other_bc, other_th) == (kept, kept)
        for pipeline in (BC_TH, TH_BC):
            assert listed(cli, path, pipeline) == []
        settled = cli_round(cli, path)
        assert [code for code, _ in settled] == [0, 0], settled
        quiet = writes(box, (BC, TH))
        assert [code for code, _ in cli_round(cli, path)] == [0, 0]
        assert writes(box, (BC, TH)) == quiet, "a resolved pair writes nothing more"
        assert phones(box, chosen_bc, chosen_th) == (kept, kept)


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_given_a_connection_outside_the_pair_when_resolve_keeps_it_then_it_refuses_and_writes_nothing(
    box: Sandbox, cli: CliFn, config_file: ConfigFileFn
) -> None:
    path = config_file()

    result = cli("resolve", BC_TH, "--keep", "piriod", "--config", str(path))

    assert result.exit_code != 0, result.output
    assert "piriod" in result.output, result.output
    assert box[BC].writes() == []
    assert box[TH].writes() == []
