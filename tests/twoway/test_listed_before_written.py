"""A two-way run whose listing was answered before the opposite pipeline wrote into its source.

Bigcapital ⇄ Thredfi on loopback, both pipelines in this process on their own
state-store connections. ``bigcapital_to_thredfi``'s Bigcapital listing is
answered at once and delivered late (the sandbox's ``late`` fault); while it
is in transit, ``thredfi_to_bigcapital`` writes a Thredfi edit into Bigcapital
and commits. The listing that then arrives holds the old value, and the
state store's memory already holds the new one: read naively, the old value
is an edit made in Bigcapital, and it would be written back over Thredfi's.

- the run reads the record again and leaves both sides holding the edit, also when the
  writer's host clock is 30 s behind (PostgreSQL: the store stamps in the server's time);
- a record whose link keeps moving is read again a bounded number of times,
  then quarantined with a reason, nothing of it written; the next run syncs it;
- a record that cannot be read again is quarantined the same way.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from sandbox.server import Sandbox
from state.models import Link
from state.session import now
from state.store import Store
from tests.support.twoway import by_email, connectors, edit, seed_pair, snapshot, twoway_config, writes
from worker.config import AppConfig
from worker.engine.fresh import REREADS
from worker.sync import run_pipeline

BC, TH = "bigcapital", "thredfi"
TO_TH, TO_BC = f"{BC}_to_{TH}", f"{TH}_to_{BC}"
CLOSED_BROKER = "redis://127.0.0.1:1/0"
LISTING = r"customers/?$"
DELAY_S = 3.0


async def _linked_pair(served: tuple[Sandbox, str], store_url: str) -> tuple[Sandbox, AppConfig, str, str]:
    """Both sides seeded and synced both ways; the Bigcapital and Thredfi ids of one customer both hold."""
    box, url = served
    seed_pair(box, BC, TH)
    config = twoway_config(store_url, base_url=url, broker_url=CLOSED_BROKER)
    store = Store(store_url)
    try:
        for name in (TO_BC, TO_TH):
            assert (await run_pipeline(config, name, store=store)).status == "succeeded"
    finally:
        store.close()
    mapping = connectors(config, (BC, TH))
    bc, th = (by_email(snapshot(box, mapping[s], s)) for s in (BC, TH))
    email = sorted(bc.keys() & th.keys())[0]
    return box, config, bc[email][0], th[email][0]


def _email(box: Sandbox, config: AppConfig, system: str, record_id: str) -> str | None:
    customer = snapshot(box, connectors(config, (system,))[system], system)[record_id]
    assert customer is not None
    return customer.email


async def _answered(box: Sandbox, system: str, path: str) -> None:
    """Until ``system`` answered a GET of ``path`` (a regular expression): bounded, like every wait."""
    deadline = asyncio.get_running_loop().time() + 10
    while not any(r.method == "GET" and re.search(path, r.path) for r in box[system].requests):
        assert asyncio.get_running_loop().time() < deadline, f"{system} never answered GET {path}"
        await asyncio.sleep(0.02)


def _reads_of(box: Sandbox, system: str, record_id: str) -> int:
    return sum(1 for r in box[system].requests if r.method == "GET" and r.path.endswith(f"/customers/{record_id}"))


@pytest.mark.parametrize("behind_s", [0, 30], ids=["one_clock", "writer_30s_behind"])
async def test_given_a_listing_answered_before_the_opposite_write_when_planned_after_its_commit_then_not_reverted(
    served: tuple[Sandbox, str], store_url: str, behind_s: int
) -> None:
    if behind_s and not store_url.startswith("postgresql"):
        pytest.skip("a SQLite store is a file on one host: one clock")
    box, config, bc_id, th_id = await _linked_pair(served, store_url)
    new = "edited.in.thredfi@example.com"
    edit(box, TH, th_id, "email", new)
    box[BC].requests.clear()
    box[BC].faults.add("late", method="GET", path=LISTING, delay_s=DELAY_S, times=1)
    one, two = Store(store_url), Store(store_url)
    if behind_s:  # thredfi_to_bigcapital runs on a host whose clock is behind: it stamps in the server's time
        two.clock.local = lambda: now() - timedelta(seconds=behind_s)
        two.clock.measure()
    try:
        to_th = asyncio.ensure_future(run_pipeline(config, TO_TH, store=one))
        await _answered(box, BC, LISTING)  # bigcapital_to_thredfi's listing: answered, still in transit
        to_bc = await run_pipeline(config, TO_BC, store=two)
        assert not to_th.done(), f"thredfi_to_bigcapital took longer than the listing's {DELAY_S} s in transit"
        assert _email(box, config, BC, bc_id) == new, "thredfi_to_bigcapital did not carry the edit"
        ran = await to_th
    finally:
        box[BC].faults.clear()
        one.close()
        two.close()

    assert (to_bc.status, ran.status) == ("succeeded", "succeeded"), (to_bc.summary(), ran.summary())
    assert _email(box, config, TH, th_id) == new, "the stale listing was written back over Thredfi's edit"
    assert _email(box, config, BC, bc_id) == new
    assert _reads_of(box, BC, bc_id) >= 1, "the record was not read again"
    before = writes(box, (BC, TH))
    store = Store(store_url)
    try:
        for name in (TO_BC, TO_TH):
            result = await run_pipeline(config, name, store=store)
            assert (result.status, result.counts.updated) == ("succeeded", 0), result.summary()
    finally:
        store.close()
    assert writes(box, (BC, TH)) == before, "the round after wrote"
    assert (_email(box, config, BC, bc_id), _email(box, config, TH, th_id)) == (new, new)


def _moving(store: Store, connection: str, remote_id: str) -> None:
    """The link stamped an hour ahead: as if written again after every read (a writer whose clock runs ahead)."""
    with store.session() as s:
        s.execute(
            update(Link)
            .where(Link.connection == connection, Link.remote_id == remote_id)  # type: ignore[arg-type]
            .values(updated_at=datetime.now(UTC) + timedelta(hours=1))
        )


@pytest.mark.parametrize("unreadable", [False, True], ids=["still_moving", "unreadable"])
async def test_given_a_link_that_moves_after_every_read_when_synced_then_read_again_bounded_and_quarantined(
    served: tuple[Sandbox, str], store_url: str, unreadable: bool
) -> None:
    box, config, bc_id, th_id = await _linked_pair(served, store_url)
    edit(box, BC, bc_id, "email", "edited.in.bigcapital@example.com")
    if unreadable:
        box[BC].faults.add("error_before", method="GET", path=rf"customers/{bc_id}$", status=404, times=None)
    box[BC].requests.clear()
    store = Store(store_url)
    try:
        _moving(store, BC, bc_id)
        result = await run_pipeline(config, TO_TH, store=store)
        (entry,) = store.quarantined(TO_TH, [bc_id])
    finally:
        box[BC].faults.clear()
        store.close()

    assert (result.status, result.counts.failed, result.counts.updated) == ("partial", 1, 0), result.summary()
    assert _email(box, config, TH, th_id) != "edited.in.bigcapital@example.com", "written from an unsure read"
    assert entry.field == "record"
    assert entry.reason.startswith("another run wrote this record while this run read it")
    assert entry.reason.endswith("the next run syncs it")
    if unreadable:
        assert "reading it again failed (NotFoundError)" in entry.reason
        assert _reads_of(box, BC, bc_id) == 1, "a record that cannot be read is not asked for again"
    else:
        assert f"still changing after {REREADS} fresh reads" in entry.reason
        assert _reads_of(box, BC, bc_id) == REREADS

    store = Store(store_url)  # the link settles (its writer is done): the next run syncs the record
    try:
        with store.session() as s:
            s.execute(update(Link).values(updated_at=datetime.now(UTC) - timedelta(hours=1)))
        again = await run_pipeline(config, TO_TH, store=store)
        assert store.quarantined(TO_TH, [bc_id]) == []
    finally:
        store.close()
    assert (again.status, again.counts.updated) == ("succeeded", 1), again.summary()
    assert _email(box, config, TH, th_id) == "edited.in.bigcapital@example.com"
