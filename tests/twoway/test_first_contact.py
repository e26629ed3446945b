"""First contact round a ring: a copy that reached Bigcapital through Timbrix meets its Thredfi origin.

The deterministic form of what the state machine (``test_state_machine.py``) found.
Thredfi's customer goes Thredfi → Timbrix → Bigcapital; Timbrix keeps no notes, so
the Bigcapital copy has none, and Bigcapital ⇄ Thredfi then meet with no memory of
each other (a first contact):

- the notes only one side holds reach the other one, whichever pipeline of the pair
  runs first, and the round after writes nothing;
- a field both sides hold differently, where nothing says which was edited, is a
  conflict under the pair's policy (``hold``: listed by both pipelines, written to
  neither, until ``custsync resolve``);
- an edit of the copy made after it came round the ring is an edit: it flows.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from sandbox.server import Sandbox
from state import memory
from state.store import Store
from tests.conftest import SyncFn
from tests.pairs.fixtures import FIXTURES, seed
from tests.support.twoway import by_email, connectors, edit, failed_runs, run_round, snapshot, twoway_config, writes
from worker.config import AppConfig
from worker.engine.twoway import UNSENT
from worker.resolve import resolve

BC, TH, TB = "bigcapital", "thredfi", "timbrix"
BC_TH, TH_BC = f"{BC}_to_{TH}", f"{TH}_to_{BC}"
EMAIL, NOTES = "cxp@nandu.example", "Factura mensual"  # mx_company: Thredfi's, with notes


@pytest.fixture
def config(store_url: str) -> AppConfig:
    return twoway_config(store_url)


async def round_the_ring(sandbox: Sandbox, sync: SyncFn) -> tuple[str, str]:
    """Thredfi's mx_company copied Thredfi → Timbrix → Bigcapital; its (bigcapital, thredfi) ids."""
    seed(TH, sandbox[TH], {"mx_company": FIXTURES["mx_company"]})
    results = await run_round(sync, [f"{TH}_to_{TB}", f"{TB}_to_{BC}"])
    assert [r.counts.created for r in results] == [1, 1], [r.summary() for r in results]
    return ids(sandbox)


def ids(sandbox: Sandbox) -> tuple[str, str]:
    mapping = connectors(twoway_config("sqlite://"), (BC, TH))
    return by_email(snapshot(sandbox, mapping[BC], BC))[EMAIL][0], by_email(snapshot(sandbox, mapping[TH], TH))[EMAIL][
        0
    ]


def field(sandbox: Sandbox, system: str, rid: str, name: str) -> Any:
    customer = connectors(twoway_config("sqlite://"), (system,))[system].read(sandbox[system].records[rid]).customer
    assert customer is not None
    return getattr(customer, name)


@pytest.mark.parametrize("order", [[BC_TH, TH_BC], [TH_BC, BC_TH]], ids=["copy-first", "origin-first"])
async def test_given_a_copy_without_notes_when_it_meets_its_origin_then_the_notes_reach_it(
    order: list[str], sandbox: Sandbox, sync: SyncFn, store: Store
) -> None:
    bc, th = await round_the_ring(sandbox, sync)
    assert field(sandbox, BC, bc, "notes") is None  # Timbrix keeps no notes
    results = [await sync(order[0])]
    if order[0] == BC_TH:
        # Bigcapital cannot write into itself: Thredfi's memory marks the notes as not yet sent back.
        assert field(sandbox, BC, bc, "notes") is None
        remembered = memory.parse(store.links_by_remote(TH, [th])[th].memory)
        assert remembered[BC]["notes"] == UNSENT
    results.append(await sync(order[1]))
    assert failed_runs(results) == []
    assert all(r.status == "succeeded" for r in results), [r.summary() for r in results]
    assert (field(sandbox, BC, bc, "notes"), field(sandbox, TH, th, "notes")) == (NOTES, NOTES)
    before = writes(sandbox, (BC, TH))
    again = await run_round(sync, order)
    assert writes(sandbox, (BC, TH)) == before, [r.summary() for r in again]
    assert all(r.status == "succeeded" for r in again)


async def test_given_notes_on_both_sides_when_nothing_says_which_was_edited_then_held_by_both_until_resolved(
    sandbox: Sandbox, sync: SyncFn, config: AppConfig, store: Store, transport: httpx.ASGITransport
) -> None:
    bc, th = await round_the_ring(sandbox, sync)
    edit(sandbox, BC, bc, "notes", "Net 45")  # the copy's notes, never synced with anyone
    results = await run_round(sync, [BC_TH, TH_BC])
    assert [r.counts.failed for r in results] == [1, 1], [r.summary() for r in results]
    assert (field(sandbox, BC, bc, "notes"), field(sandbox, TH, th, "notes")) == ("Net 45", NOTES)
    reasons = {name: [q.reason for q in store.quarantined(name)] for name in (BC_TH, TH_BC)}
    assert reasons == {
        BC_TH: ["conflict: notes edited in bigcapital and in thredfi since the last sync"],
        TH_BC: ["conflict: notes edited in thredfi and in bigcapital since the last sync"],
    }
    held = await run_round(sync, [BC_TH, TH_BC])
    assert [r.counts.failed for r in held] == [1, 1], "still held on the next round, written to neither"
    assert field(sandbox, TH, th, "notes") == NOTES

    done = await resolve(config, BC_TH, keep=TH, store=store, transports={n: transport for n in config.connections})
    assert list(done.resolved.values()) == [("notes",)]
    assert field(sandbox, BC, bc, "notes") == NOTES
    before = writes(sandbox, (BC, TH))
    settled = await run_round(sync, [BC_TH, TH_BC])
    assert all(r.status == "succeeded" for r in settled), [r.summary() for r in settled]
    assert writes(sandbox, (BC, TH)) == before


async def test_given_the_copy_edited_after_it_came_round_when_it_meets_its_origin_then_the_edit_flows(
    sandbox: Sandbox, sync: SyncFn, store: Store
) -> None:
    bc, th = await round_the_ring(sandbox, sync)
    edit(sandbox, BC, bc, "phone", "+525511110001")  # its phone came from Timbrix: this is an edit
    results = await run_round(sync, [BC_TH, TH_BC])
    assert all(r.status == "succeeded" for r in results), [r.summary() for r in results]
    assert field(sandbox, TH, th, "phone") == "+525511110001"
    assert (field(sandbox, BC, bc, "notes"), field(sandbox, TH, th, "notes")) == (NOTES, NOTES)
    assert store.quarantined(BC_TH) == []
