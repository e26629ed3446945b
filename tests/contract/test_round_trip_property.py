"""The contract's round-trip property (worker/testing/properties.py) fails a connector that claims too much.

Each case takes a system, drops one of its lossy declarations (so the field
claims to be exact) and runs one round trip of a customer that shows the loss,
against the system's emulator over HTTP: the property must refuse it. With the
declaration in place, the same customer passes.
"""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from connectors.model import Customer
from connectors.plugin import System
from connectors.registry import get_system
from sandbox.plugin import emulators
from worker.testing.properties import round_trip
from worker.testing.support import BASE_URL

CASES = {
    # Piriod reads every customer as a company.
    ("piriod", "kind"): Customer(kind="individual", name="Ana Pérez", address_line1="Av. 1", country="US"),
    # Piriod folds line 2 into its one address line.
    ("piriod", "address_line1"): Customer(name="Acme", address_line1="Av. 1", address_line2="Of. 2", country="US"),
    # Piriod's state reads back as its catalog spells it.
    ("piriod", "state"): Customer(name="Acme", address_line1="Av. 1", state="valparaiso", tax_id="76.123.456-7"),
    # Timbrix renders a street line without a number with "S/N".
    ("timbrix", "address_line1"): Customer(
        name="Acme SA de CV",
        email="a@acme.example",
        tax_id="ACM010101AB1",
        tax_system="601",
        invoice_use="G03",
        address_line1="Camino Real",
        address_line2="Col. Centro",
        city="Colima",
        state="Colima",
        postal_code="28000",
    ),
    # Thredfi's company name is the customer's name.
    ("thredfi", "company_name"): Customer(name="Acme", company_name="Acme Holdings Ltd"),
}


def claiming_exact(system: System, field: str) -> System:
    """``system`` with ``field`` dropped from its lossy declarations."""
    connector = system.connector
    lossy = {name: how for name, how in connector.spec.lossy.items() if name != field}
    spec = dataclasses.replace(connector.spec, lossy=lossy)
    return dataclasses.replace(system, connector=type(connector.__name__, (connector,), {"spec": spec}))


@pytest.mark.parametrize(("system", "field"), sorted(CASES), ids=[f"{s}-{f}" for s, f in sorted(CASES)])
def test_given_lossy_field_claimed_exact_when_round_tripped_then_the_property_fails(system: str, field: str) -> None:
    declared, customer = get_system(system), CASES[(system, field)]
    plugin = emulators()[declared.emulator_name]
    connector = declared.connector(
        "probe", declared.connector.settings_model.model_validate(plugin.connection(BASE_URL))
    )
    assert connector.problems(connector.shape(customer)) == [], "the case must be writable"

    asyncio.run(round_trip(declared, plugin, customer))  # as declared: passes
    with pytest.raises(AssertionError, match=f"exact fields changed .*'{field}'"):
        asyncio.run(round_trip(claiming_exact(declared, field), plugin, customer))
