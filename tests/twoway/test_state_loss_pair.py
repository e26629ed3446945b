"""A two-way pair whose state store is lost finds every customer again, in whichever order its pipelines run.

The deterministic form of what the state machine (``test_state_machine.py``)
found: both sides are seeded with customers of their own and synced both ways;
then the store is replaced by an empty one and one round runs, either pipeline
first. A copy a pipeline made in a system with no identity slot (Bigcapital,
Timbrix) carries no trace of where it came from, so the other pipeline must find
its counterpart by natural key rather than take it for a new customer. Then:

- no system holds a customer twice and record counts are unchanged (Thredfi answers a
  create repeating an ``external_id`` with the existing record: that is no copy);
- the round after that writes nothing.
"""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import httpx
import pytest

from sandbox.server import Sandbox
from state.store import Store
from tests.support.twoway import SYSTEMS4, connectors, duplicated_emails, seed_side, twoway_config, writes
from worker.sync import run_pipeline

PAIRS = list(combinations(SYSTEMS4, 2))


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)  # the lost store is a second SQLite file
@pytest.mark.parametrize("first", ["forward", "backward"])
@pytest.mark.parametrize(("a", "b"), PAIRS, ids=[f"{a}-{b}" for a, b in PAIRS])
async def test_given_a_synced_pair_when_the_store_is_lost_then_a_round_in_either_order_makes_no_copy(
    a: str, b: str, first: str, sandbox: Sandbox, transport: httpx.ASGITransport, store_url: str, tmp_path: Path
) -> None:
    config = twoway_config(store_url)
    transports = {name: transport for name in config.connections}
    mapping = connectors(config, (a, b))
    seed_side(sandbox, a)
    seed_side(sandbox, b, "Beta")
    pipelines = [f"{a}_to_{b}", f"{b}_to_{a}"]
    store = Store(store_url)
    try:
        for _ in range(2):
            for name in pipelines:
                assert (await run_pipeline(config, name, store=store, transports=transports)).exit_code in (0, 1)
    finally:
        store.close()
    counts = {s: len(sandbox[s].records) for s in (a, b)}
    for system in (a, b):
        assert duplicated_emails(sandbox, mapping[system], system) == {}, f"{system}: a copy before the loss"
    order = pipelines if first == "forward" else pipelines[::-1]

    lost = Store(f"sqlite:///{tmp_path}/lost.db")  # the empty store that replaced it
    try:
        after = [await run_pipeline(config, name, store=lost, transports=transports) for name in order]
        settled = writes(sandbox, (a, b))
        again = [await run_pipeline(config, name, store=lost, transports=transports) for name in order]
    finally:
        lost.close()

    for system in (a, b):
        assert duplicated_emails(sandbox, mapping[system], system) == {}, (
            f"{system} holds a customer twice",
            [r.summary() for r in after],
        )
        assert len(sandbox[system].records) == counts[system], f"{system} got copies"
    assert writes(sandbox, (a, b)) == settled, ("the round after the recovery wrote", [r.summary() for r in again])
