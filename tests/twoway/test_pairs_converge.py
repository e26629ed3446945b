"""Every unordered pair of the four systems as a two-way pair converges, and edits on both sides meet.

For each pair (A, B), both pipelines of the sandbox config (``A_to_B`` and
``B_to_A``) form a two-way pair. A is seeded with the shared fixtures it can
hold, B with customers of its own (the fixtures made other customers by
:func:`tests.support.twoway.variant`), each in the system's vendor shape.
Then:

- round 1 (A→B, then B→A) spreads them; no run fails as a whole;
- round 2, with no edits, writes nothing to either emulator;
- no customer is held twice in either system (e-mails are unique per seeded customer),
  and every record is one of the seeded customers;
- no customer is quarantined on its way back into the system it came from (a field its
  own system cannot hold is simply not carried: Piriod copies of Timbrix customers have no
  colonia, Bigcapital copies of Piriod customers no tax id);
- on customers both systems hold, A edits the phone and B the e-mail: after one more
  round B holds A's phone, A holds B's e-mail, each side kept its own edit, and no other
  field of any record changed on either side; the round after that writes nothing.
"""

from __future__ import annotations

from itertools import combinations

import pytest

from sandbox.server import Sandbox
from state.store import Store
from tests.conftest import SyncFn
from tests.support.twoway import (
    SYSTEMS4,
    by_email,
    changed_fields,
    connectors,
    duplicated_emails,
    edit,
    failed_runs,
    returning_quarantined,
    run_round,
    seed_side,
    snapshot,
    writes,
)
from worker.config import AppConfig

PAIRS = list(combinations(SYSTEMS4, 2))
#: a phone each system accepts for a customer of that country (Piriod checks the prefix).
PHONES = {"MX": "+525598765432", "US": "+15125550199", "GB": "+442079460000", "CL": "+56229876543"}


@pytest.mark.parametrize(("a", "b"), PAIRS, ids=[f"{a}-{b}" for a, b in PAIRS])
async def test_given_both_sides_seeded_when_pair_runs_twice_then_second_writes_nothing_and_edits_on_both_sides_meet(
    a: str, b: str, sandbox: Sandbox, sync: SyncFn, config: AppConfig, store: Store
) -> None:
    forward, backward = f"{a}_to_{b}", f"{b}_to_{a}"
    mapping = connectors(config, (a, b))
    seeded = {a: seed_side(sandbox, a), b: seed_side(sandbox, b, "Beta")}
    known = set(seeded[a].values()) | set(seeded[b].values())

    first = await run_round(sync, [forward, backward])
    assert failed_runs(first) == []
    after_first = writes(sandbox, (a, b))
    second = await run_round(sync, [forward, backward])

    assert failed_runs(second) == []
    assert writes(sandbox, (a, b)) == after_first, (
        "a round with no edits wrote",
        [r.summary() for r in second],
    )
    for result in second:
        assert (result.counts.created, result.counts.updated, result.counts.archived) == (0, 0, 0), result.summary()
    snaps = {side: snapshot(sandbox, mapping[side], side) for side in (a, b)}
    for side in (a, b):
        assert duplicated_emails(sandbox, mapping[side], side) == {}, f"{side} holds a customer twice"
        emails = {c.email for c in snaps[side].values() if c is not None}
        assert emails <= known, f"{side} holds customers nobody seeded: {emails - known}"
        assert len(snaps[side]) == len(emails), f"{side}: {len(snaps[side])} records for {len(emails)} customers"
    assert set(seeded[a].values()) <= {c.email for c in snaps[a].values() if c}, "a seeded customer vanished"
    assert returning_quarantined(store, forward, b) == [], "copies coming back are never quarantined"
    assert returning_quarantined(store, backward, a) == [], "copies coming back are never quarantined"

    # Customers both sides hold: one that came from A and one that came from B, where there is one.
    shared = by_email(snaps[a]).keys() & by_email(snaps[b]).keys()
    picked = [
        email
        for origin in (a, b)
        for email in sorted(shared & set(seeded[origin].values()))[:1]
        if by_email(snaps[a])[email][1].country in PHONES
    ]
    assert picked, f"no customer landed on both sides of {a} ⇄ {b}"
    edited: dict[str, dict[str, str]] = {a: {}, b: {}}  # side → vendor id → the field the *other* side edited
    expected: list[tuple[str, str, str, str]] = []  # (side, vendor id, field, value) after the round
    for email in picked:
        rid_a, customer = by_email(snaps[a])[email]
        rid_b, _ = by_email(snaps[b])[email]
        phone, new_email = PHONES[str(customer.country)], f"edited.{email}"
        edit(sandbox, a, rid_a, "phone", phone)
        edit(sandbox, b, rid_b, "email", new_email)
        edited[a][rid_a], edited[b][rid_b] = "email", "phone"
        expected += [(a, rid_a, "phone", phone), (a, rid_a, "email", new_email)]
        expected += [(b, rid_b, "phone", phone), (b, rid_b, "email", new_email)]
    before = {side: snapshot(sandbox, mapping[side], side) for side in (a, b)}

    third = await run_round(sync, [forward, backward])

    assert failed_runs(third) == []
    after = {side: snapshot(sandbox, mapping[side], side) for side in (a, b)}
    for side, rid, field, value in expected:
        got = after[side][rid]
        assert got is not None, (side, rid)
        assert getattr(got, field) == value, (side, rid, field)
    for side in (a, b):
        assert changed_fields(before[side], after[side]) == {rid: {f} for rid, f in edited[side].items()}, (
            f"{side}: only the other side's edits may arrive"
        )
    settled = writes(sandbox, (a, b))
    fourth = await run_round(sync, [forward, backward])
    assert failed_runs(fourth) == []
    assert writes(sandbox, (a, b)) == settled, ("the round after the edits wrote", [r.summary() for r in fourth])
