"""The connector contract (:mod:`worker.testing`), run for every registered system.

Registering a plug-in (a ``custsync.systems`` entry point, and its emulator
under the same name in ``custsync.sandbox``) is all it takes to be checked
here; a third-party plug-in runs the same class in its own tests.
"""

from __future__ import annotations

from connectors.registry import systems
from sandbox.plugin import emulators
from worker.testing import contract_test_class


def test_every_registered_system_has_an_emulator_for_the_contract_suite() -> None:
    missing = sorted(s.name for s in systems().values() if s.emulator_name not in emulators())
    assert not missing, f"declare a custsync.sandbox emulator for: {missing}"
    assert systems(), "the systems come from the custsync.systems entry points"


for _name in systems():
    _cls = contract_test_class(_name)
    globals()[_cls.__name__] = _cls
