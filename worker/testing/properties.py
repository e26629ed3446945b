"""The contract's property test: what a system declares exact survives a write and a read.

For hypothesis-generated customers the system can take
(:mod:`worker.testing.strategies`), each against a fresh emulator over HTTP:
shape for the system, create through the connector, read back by ``get`` and
through the listing, and shape again. Then:

- every field the spec declares exact (``spec.exact``: the fields kept, ``kind``
  and ``name``, minus ``spec.lossy``) holds the generated value at every step;
- every compared field, exact or not, reads the same by ``get`` and in the listing,
  is a fixed point of ``shape``, and is unchanged by writing the read value back:
  a lossy field is rendered once and then stays (a second round writes nothing,
  nothing grows).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from connectors.model import Customer
from connectors.plugin import System
from worker.testing.support import EXTERNAL_ID, connector_for, pull

if TYPE_CHECKING:
    from sandbox.plugin import EmulatorPlugin
    from worker.testing.strategies import Values

#: examples per system: the whole test stays within seconds (each makes a fresh emulator and ~6 requests).
MAX_EXAMPLES = 25


def compared(system: System) -> list[str]:
    """The fields a round trip is judged on: those kept, ``kind`` and ``name``."""
    return sorted(system.connector.spec.fields | {"kind", "name"})


def _values(customer: Customer | None, names: list[str]) -> dict[str, Any]:
    assert customer is not None
    return {name: getattr(customer, name) for name in names}


async def round_trip(system: System, plugin: EmulatorPlugin, customer: Customer) -> None:
    """Create ``customer`` in a fresh emulator, read it back, write the read value again; assert the contract."""
    connector = connector_for(system, plugin, plugin.factory())
    names, exact = compared(system), sorted(connector.spec.exact)
    shaped = connector.shape(customer)
    async with connector:
        made = await connector.create(shaped, EXTERNAL_ID)
        assert made.remote.customer is not None, made.remote.problem
        fetched = await connector.get(made.remote.id)
        listed = {remote.id: remote for remote in await pull(connector)}
        assert list(listed) == [made.remote.id]
        assert fetched.customer is not None, fetched.problem
        read, reshaped = _values(fetched.customer, names), connector.shape(fetched.customer)

        steps = {"shaped": shaped, "got": fetched.customer, "listed": listed[made.remote.id].customer}
        steps["shaped again"] = reshaped
        went_in = _values(customer, exact)
        for step, value in steps.items():
            changed = {f: (went_in[f], got) for f, got in _values(value, exact).items() if got != went_in[f]}
            assert changed == {}, f"{system.name}: exact fields changed ({step}): {changed}"
        for step in ("listed", "shaped again"):
            differ = {f: (read[f], got) for f, got in _values(steps[step], names).items() if got != read[f]}
            assert differ == {}, f"{system.name}: the read value is not {step} the same: {differ}"

        await connector.update(made.remote.id, reshaped, EXTERNAL_ID)
        again = _values((await connector.get(made.remote.id)).customer, names)
        moved = {f: (read[f], again[f]) for f in names if again[f] != read[f]}
        assert moved == {}, f"{system.name}: writing back what was read changed it: {moved}"


def property_tests(declared: System, values: Mapping[str, Values] | None = None) -> type:
    """The round-trip property test of one system: a base of its contract class.

    Args:
        declared: the system.
        values: per-field values for the generated customers (:mod:`worker.testing.strategies`),
            over the ones custsync knows for its own systems.
    """
    from hypothesis import HealthCheck, assume, given, settings

    from worker.testing.strategies import SYSTEM_VALUES, customers

    chosen = {**SYSTEM_VALUES.get(declared.name, {}), **(values or {})}

    class PropertyTests:
        # -- round-trip fidelity, over generated customers ---------------------------------------

        def test_given_generated_customers_when_written_and_read_back_then_exact_fields_round_trip(
            self, plugin: EmulatorPlugin
        ) -> None:
            connector = connector_for(declared, plugin, None)
            tried: list[bool] = []

            @settings(
                max_examples=MAX_EXAMPLES,
                derandomize=True,
                deadline=None,
                database=None,
                suppress_health_check=[HealthCheck.too_slow],
            )
            @given(customers(connector, chosen))
            def check(customer: Customer) -> None:
                takes = connector.problems(connector.shape(customer)) == []
                tried.append(takes)
                assume(takes)
                asyncio.run(round_trip(declared, plugin, customer))

            check()
            # The strategies fit the spec: few customers are assumed away, so the test tests something.
            assert tried.count(True) >= MAX_EXAMPLES, tried.count(True)
            assert tried.count(False) <= len(tried) // 4, f"{tried.count(False)} of {len(tried)} customers unwritable"

    return PropertyTests


__all__ = ["MAX_EXAMPLES", "compared", "property_tests", "round_trip"]
