"""Every ring of three systems settles after its first lap: then zero writes, and no field grows.

A ring X → Y → Z → X is the three pipelines ``X_to_Y``, ``Y_to_Z``, ``Z_to_X``
of the sandbox config, run in that order (a lap). Each system is seeded with
customers of its own (the shared fixtures it can hold; Y's and Z's made other
customers by :func:`tests.support.twoway.variant`). Over three laps:

- no run fails as a whole;
- laps 2 and 3 write nothing to any emulator;
- every record of every system is the same, vendor field by vendor field, after
  laps 2 and 3, and no canonical text field of any record is longer after lap 3
  than after lap 1 (the folded Piriod address must not grow);
- a customer seeded in a system is, in that system, still exactly as seeded: a
  copy coming back round the ring never rewrites its origin;
- no system holds a customer twice, and none quarantines a customer of its own
  coming back round the ring.
"""

from __future__ import annotations

import copy
from itertools import combinations
from typing import Any

import pytest

from connectors.model import TEXT_FIELDS
from sandbox.server import Sandbox
from state.store import Store
from tests.conftest import SyncFn
from tests.support.twoway import (
    SYSTEMS4,
    Snapshot,
    changed_fields,
    connectors,
    duplicated_emails,
    failed_runs,
    returning_quarantined,
    run_round,
    seed_side,
    snapshot,
    writes,
)
from worker.config import AppConfig

RINGS = [ring for x, y, z in combinations(SYSTEMS4, 3) for ring in ((x, y, z), (x, z, y))]
TAGS = (None, "Beta", "Gamma")


def raw(sandbox: Sandbox, system: str) -> dict[str, Any]:
    """A deep copy of every stored record of ``system``, as the vendor holds it."""
    return copy.deepcopy({str(k): dict(v) for k, v in sandbox[system].records.items()})


def longer(before: Snapshot, after: Snapshot) -> dict[str, dict[str, tuple[int, int]]]:
    """vendor id → the text fields longer in ``after`` (length before, length after)."""
    out: dict[str, dict[str, tuple[int, int]]] = {}
    for rid, old in before.items():
        new = after.get(rid)
        if old is None or new is None:
            continue
        grown = {
            f: (len(getattr(old, f) or ""), len(getattr(new, f) or ""))
            for f in TEXT_FIELDS
            if len(getattr(new, f) or "") > len(getattr(old, f) or "")
        }
        if grown:
            out[rid] = grown
    return out


@pytest.mark.parametrize("seeded", ["first", "all"])
@pytest.mark.parametrize("ring", RINGS, ids=["-".join(r) for r in RINGS])
async def test_given_three_systems_in_a_ring_when_laps_run_then_once_spread_nothing_is_written_or_grows(
    ring: tuple[str, str, str], seeded: str, sandbox: Sandbox, sync: SyncFn, config: AppConfig, store: Store
) -> None:
    lap = [f"{ring[0]}_to_{ring[1]}", f"{ring[1]}_to_{ring[2]}", f"{ring[2]}_to_{ring[0]}"]
    mapping = connectors(config, ring)
    origins = ring if seeded == "all" else ring[:1]
    own = {system: seed_side(sandbox, system, tag) for system, tag in zip(origins, TAGS, strict=False)}
    as_seeded = {s: snapshot(sandbox, mapping[s], s) for s in origins}
    # Customers seeded in the last system reach the second one only in lap 2 (X → Y runs before Z → X):
    # with every system seeded, lap 2 may still create, never update; the laps after it write nothing.
    spread = 1 if seeded == "first" else 2

    laps = [await run_round(sync, lap)]
    assert failed_runs(laps[0]) == []
    after_lap1 = {s: snapshot(sandbox, mapping[s], s) for s in ring}
    for _ in range(spread - 1):
        laps.append(await run_round(sync, lap))
        assert failed_runs(laps[-1]) == []
        for result in laps[-1]:
            assert (result.counts.updated, result.counts.archived) == (0, 0), ("lap 2 rewrote", result.summary())
    spread_writes = writes(sandbox, ring)
    laps.append(await run_round(sync, lap))
    assert failed_runs(laps[-1]) == []
    assert writes(sandbox, ring) == spread_writes, (f"lap {len(laps)} wrote", [r.summary() for r in laps[-1]])
    raw_before = {s: raw(sandbox, s) for s in ring}
    laps.append(await run_round(sync, lap))
    assert failed_runs(laps[-1]) == []

    assert writes(sandbox, ring) == spread_writes, (f"lap {len(laps)} wrote", [r.summary() for r in laps[-1]])
    for system in ring:
        assert raw(sandbox, system) == raw_before[system], f"{system} changed in lap {len(laps)}"
        after = snapshot(sandbox, mapping[system], system)
        assert longer(after_lap1[system], after) == {}, f"{system}: fields grew after lap 1"
        assert duplicated_emails(sandbox, mapping[system], system) == {}, f"{system} holds a customer twice"
        into = next(name for name in lap if name.endswith(f"_to_{system}"))
        assert returning_quarantined(store, into, system) == [], f"{system}: its own customers quarantined back"
        if system in own:
            mine = {rid: c for rid, c in as_seeded[system].items() if rid in own[system]}
            back = {rid: after.get(rid) for rid in mine}
            assert changed_fields(mine, back) == {}, f"{system}: a copy coming back rewrote customers seeded there"
