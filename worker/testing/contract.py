"""The factory of the contract test class: the fixtures, and the tests of each concern as its bases."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import stamina

from connectors.base import Connector
from connectors.plugin import System
from connectors.registry import get_system
from sandbox.plugin import EmulatorPlugin, emulators
from state.store import Store
from worker.testing.failures import error_tests, secret_tests
from worker.testing.identity import identity_tests
from worker.testing.properties import property_tests
from worker.testing.records import record_tests
from worker.testing.support import ConnectorFactory, connector_for

if TYPE_CHECKING:
    from worker.testing.strategies import Values


def contract_test_class(
    system: System | str, emulator: EmulatorPlugin | str | None = None, *, values: Mapping[str, Values] | None = None
) -> type:
    """A pytest test class that runs the connector contract against one system.

    Args:
        system: a :class:`~connectors.plugin.System`, or the name of a registered one.
        emulator: its emulator, or the name of one in the ``custsync.sandbox`` group
            (default: the system's ``emulator_name``).
        values: per-field values of the property test's generated customers, for what the
            spec cannot say (a vendor catalog, a field that depends on another); see
            :mod:`worker.testing.strategies`.

    Returns:
        A class to bind to a ``Test...`` name in a test module.
    """
    import pytest

    declared = system if isinstance(system, System) else get_system(system)
    name = declared.name
    emulator_name = emulator if isinstance(emulator, str) else declared.emulator_name

    def _plugin() -> EmulatorPlugin:
        if isinstance(emulator, EmulatorPlugin):
            return emulator
        found = emulators().get(emulator_name)
        if found is None:
            pytest.fail(
                f"system {name!r} has no emulator {emulator_name!r} in the custsync.sandbox entry points: "
                "declare a sandbox.plugin.EmulatorPlugin for it",
                pytrace=False,
            )
        return found

    class Fixtures:
        SYSTEM: ClassVar[System] = declared

        # -- fixtures -------------------------------------------------------------------------

        @pytest.fixture(autouse=True)
        def _no_backoff(self) -> Iterator[None]:
            """Retries happen, without sleeping (stamina's testing mode)."""
            with stamina.set_testing(True, attempts=5, cap=True):
                yield

        @pytest.fixture
        def plugin(self) -> EmulatorPlugin:
            return _plugin()

        @pytest.fixture
        def emulator(self, plugin: EmulatorPlugin) -> Any:
            """A fresh emulator of the system."""
            return plugin.factory()

        @pytest.fixture
        def make_connector(self, plugin: EmulatorPlugin, emulator: Any) -> ConnectorFactory:
            """Builds the system's connector against its emulator (not yet opened)."""

            def make() -> Connector:
                return connector_for(declared, plugin, emulator)

            return make

        @pytest.fixture
        def sqlite_store(self, tmp_path: Path) -> Iterator[Store]:
            store = Store(f"sqlite:///{tmp_path / 'contract.db'}")
            yield store
            store.close()

    title = "".join(part.capitalize() for part in name.replace("-", "_").split("_"))
    # pytest collects a base's tests before its subclass's, the last base first: the bases are
    # listed in reverse, so that the tests run in the order records, properties, errors, identity, secrets.
    bases = (
        secret_tests(declared),
        identity_tests(declared),
        error_tests(declared),
        property_tests(declared, values),
        record_tests(declared),
        Fixtures,
    )
    doc = "The connector contract of one system (see :mod:`worker.testing`)."
    return type(f"Test{title}Contract", bases, {"__doc__": doc, "__module__": "worker.testing"})


__all__ = ["contract_test_class"]
