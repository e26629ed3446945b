"""A hypothesis state machine over Bigcapital, Thredfi and Timbrix and the six pipelines between them.

Each example starts from fresh emulators: Thredfi holds four shared fixtures
(two complete Mexican ones, which Timbrix can hold too), Bigcapital two
customers of its own, Timbrix one. Every pipeline between the three systems is
part of a two-way pair (``conflict = "source_wins"`` on all six, so conflicting
edits settle instead of staying held). The rules, in any order:

- **edit**: a user edits the phone, notes or city of a record in any system, to a
  valid value (only fields that system keeps; never the name, e-mail or tax id,
  the keys a lost store is recovered by);
- **run**: any one of the six pipelines runs;
- **lose the store**: the state store is replaced by an empty one.

Invariants, after every step: no customer is held twice in any system (each has
its own e-mail), and no field of any record that no rule edits ever grows past
the first value it held (an empty field may be filled, once, from a system that
holds it). At the end, with edits stopped: two rounds (every
pipeline once, in a fixed order) make every customer agree across the systems
holding it, on each field those systems keep; a third round writes nothing and
changes nothing. Without a store loss, an edit is never lost: a field edited once
ends with that value everywhere, one edited several times with one of the edits.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from connectors.model import TEXT_FIELDS, Customer
from sandbox.server import Sandbox
from state.store import Store
from tests.pairs.fixtures import FIXTURES, seed
from tests.support.twoway import (
    Snapshot,
    changed_fields,
    connectors,
    duplicated_emails,
    edit,
    twoway_config,
    variant,
    writes,
)
from worker.sync import run_pipeline

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

SYSTEMS = ("bigcapital", "thredfi", "timbrix")
PIPELINES = tuple(f"{s}_to_{t}" for s in SYSTEMS for t in SYSTEMS if s != t)
ROUND = (
    "bigcapital_to_thredfi",
    "thredfi_to_bigcapital",
    "thredfi_to_timbrix",
    "timbrix_to_thredfi",
    "bigcapital_to_timbrix",
    "timbrix_to_bigcapital",
)
#: what the machine edits, per system (fields it keeps); nothing else may ever grow.
EDITED: dict[str, tuple[str, ...]] = {
    "bigcapital": ("phone", "notes", "city"),
    "thredfi": ("phone", "notes", "city"),
    "timbrix": ("phone", "city"),
}
VALUES = {
    "phone": ("+525511110001", "+525511110002", "+15125550103", "+442079460104"),
    "notes": ("nota 1", "Nota ñ 2", "Net 45", "pagar el día 5"),
    "city": ("Toluca", "León", "Mérida", "Querétaro"),
}
#: the canonical fields the three systems compare on at the end (each kept by the systems named).
KEPT = {"phone": SYSTEMS, "notes": ("bigcapital", "thredfi"), "city": SYSTEMS}


def _customers() -> dict[str, dict[str, Customer]]:
    return {
        "thredfi": {k: FIXTURES[k] for k in ("mx_company", "mx_person", "us_company", "gb_company")},
        "bigcapital": {
            "us_person_b": variant(FIXTURES["us_person"], "Beta"),
            "cl_company_b": variant(FIXTURES["cl_company"], "Beta"),
        },
        "timbrix": {"mx_no_number_g": variant(FIXTURES["mx_no_number"], "Gamma")},
    }


class TwoWayMachine(RuleBasedStateMachine):
    """Random edits, runs and store losses over three systems; see the module docstring."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="custsync-sm-"))
        self.stores = 0
        self.sandbox = Sandbox()
        self.config = twoway_config(
            f"sqlite:///{self.dir}/unused.db", {name: {"conflict": "source_wins"} for name in PIPELINES}
        )
        self.mapping = connectors(self.config, SYSTEMS)
        self.transports = {name: httpx.ASGITransport(app=self.sandbox.app) for name in self.config.connections}
        self.store = self._new_store()
        self.lost = False
        #: (system, vendor id) → field → the longest length seen (fields no rule edits).
        self.seen: dict[tuple[str, str], dict[str, int]] = {}
        #: (e-mail, field) → every value the rules wrote into it, anywhere.
        self.edits: dict[tuple[str, str], list[str]] = {}

    def _new_store(self) -> Store:
        self.stores += 1
        return Store(f"sqlite:///{self.dir}/state-{self.stores}.db")

    @initialize()
    def seed_all(self) -> None:
        for system, customers in _customers().items():
            seed(system, self.sandbox[system], customers)

    def _snap(self, system: str) -> Snapshot:
        return {rid: self.mapping[system].read(raw).customer for rid, raw in self.sandbox[system].records.items()}

    def _run(self, pipeline: str) -> None:
        result = asyncio.run(run_pipeline(self.config, pipeline, store=self.store, transports=self.transports))
        assert result.exit_code in (0, 1), result.summary()

    # -- rules ---------------------------------------------------------------------------------------

    @rule(system=st.sampled_from(SYSTEMS), pick=st.integers(0, 50), field=st.integers(0, 2), value=st.integers(0, 3))
    def user_edits(self, system: str, pick: int, field: int, value: int) -> None:
        ids = sorted(self.sandbox[system].records)
        if not ids:
            return
        rid = ids[pick % len(ids)]
        name = EDITED[system][field % len(EDITED[system])]
        new = VALUES[name][value]
        customer = self._snap(system)[rid]
        assert customer is not None
        assert customer.email
        edit(self.sandbox, system, rid, name, new)
        self.edits.setdefault((customer.email, name), []).append(new)

    @rule(pipeline=st.sampled_from(PIPELINES))
    def pipeline_runs(self, pipeline: str) -> None:
        self._run(pipeline)

    @precondition(lambda self: self.stores < 3)
    @rule()
    def store_lost(self) -> None:
        self.store.close()
        self.store = self._new_store()
        self.lost = True

    # -- invariants ----------------------------------------------------------------------------------

    @invariant()
    def nobody_twice(self) -> None:
        for system in SYSTEMS:
            assert duplicated_emails(self.sandbox, self.mapping[system], system) == {}, f"{system}: a copy"

    @invariant()
    def nothing_grows(self) -> None:
        for system in SYSTEMS:
            for rid, customer in self._snap(system).items():
                if customer is None:
                    continue
                lengths = {
                    f: len(getattr(customer, f) or "") for f in TEXT_FIELDS if f not in ("phone", "notes", "city")
                }
                first = self.seen.setdefault((system, rid), lengths)
                for name, n in lengths.items():
                    if not first[name]:  # an empty field filled from a system that holds it
                        first[name] = n
                grown = {f: (first[f], n) for f, n in lengths.items() if n > first[f]}
                assert grown == {}, f"{system} {rid}: fields grew {grown}"

    # -- the end: edits stop -------------------------------------------------------------------------

    def teardown(self) -> None:
        try:
            self._converges()
        finally:
            self.store.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    def _left_to_a_person(self, snaps: dict[str, Snapshot]) -> set[str]:
        """E-mails of customers some pipeline holds as a suspected second identity (its quarantine)."""
        found: set[str] = set()
        for pipeline in PIPELINES:
            source = pipeline.split("_to_")[0]
            for entry in self.store.quarantined(pipeline):
                customer = snaps[source].get(entry.source_id)
                if "belongs to another customer" in entry.reason and customer is not None and customer.email:
                    found.add(customer.email)
        return found

    def _converges(self) -> None:
        for _ in range(2):
            for pipeline in ROUND:
                self._run(pipeline)
        self.nobody_twice()
        self.nothing_grows()
        snaps = {s: self._snap(s) for s in SYSTEMS}
        held: dict[str, dict[str, Customer]] = {}
        for system, snap in snaps.items():
            for customer in snap.values():
                if customer is not None and customer.email:
                    held.setdefault(customer.email, {})[system] = customer
        # After a lost store a customer may come back under a second identity: custsync then refuses
        # the create (never a copy) and lists it for a person to link; such a customer is not expected
        # to converge by itself, but it must be listed, and never held twice (checked above).
        for email in self._left_to_a_person(snaps):
            assert self.lost, f"{email}: held as a second identity without any store loss"
            held.pop(email, None)
        for email, where in held.items():
            for field, keepers in KEPT.items():
                values = {s: getattr(c, field) for s, c in where.items() if s in keepers}
                assert len(set(values.values())) <= 1, f"{email}.{field} differs after two rounds: {values}"
                edits = self.edits.get((email, field), [])
                if self.lost or not edits or not values:
                    continue
                final = next(iter(values.values()))
                if len(edits) == 1:
                    assert final == edits[0], f"{email}.{field}: the one edit was lost ({values})"
                else:
                    assert final in edits, f"{email}.{field}: every edit was lost ({values}, edits {edits})"
        before = writes(self.sandbox, SYSTEMS)
        for pipeline in ROUND:
            self._run(pipeline)
        assert writes(self.sandbox, SYSTEMS) == before, "a third round with no edits wrote"
        for system in SYSTEMS:
            assert changed_fields(snaps[system], self._snap(system)) == {}, system


def _settings(**extra: Any) -> settings:
    return settings(
        derandomize=True,
        database=None,
        max_examples=15,
        stateful_step_count=12,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        **extra,
    )


# No shrinking: the first failing example is enough to read, and shrinking takes minutes.
TestTwoWayStateMachine = TwoWayMachine.TestCase
TestTwoWayStateMachine.settings = _settings(phases=[Phase.explicit, Phase.reuse, Phase.generate])
