"""The contract's identity tests: a record found again, by external_id or by natural-key recovery."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from connectors.plugin import System
from sandbox.plugin import EmulatorPlugin
from state.store import Store
from worker.testing.static import sync_from_static
from worker.testing.support import (
    EXTERNAL_ID,
    LONG_EXTERNAL_ID,
    ConnectorFactory,
    created,
    differences,
    in_own_loop,
    pull,
)

if TYPE_CHECKING:
    import pytest


def identity_tests(declared: System) -> type:
    """The identity tests of one system: a base of its contract class."""
    import pytest

    name = declared.name

    class IdentityTests:
        # -- identity ----------------------------------------------------------------------------------

        @pytest.mark.parametrize("external_id", [EXTERNAL_ID, LONG_EXTERNAL_ID])
        @in_own_loop
        async def test_given_created_customer_when_looked_up_by_external_id_then_found_where_slot(
            self, external_id: str, make_connector: ConnectorFactory
        ) -> None:
            async with make_connector() as connector:
                remote_id = await created(connector, declared.customer, external_id)
                await created(connector, declared.edited, external_id + "-other")

                found = await connector.find_by_external_id(external_id)
                absent = await connector.find_by_external_id("contract:tenant:nobody")

                if not connector.spec.identity_slot:
                    assert (found, absent) == (None, None)
                    return
                assert found is not None
                assert [r.id for r in found] == [remote_id]
                assert found[0].external_id == external_id
                assert differences(connector, connector.shape(declared.customer), found[0].customer) == {}
                assert absent == []
                listed = {r.id: r.external_id for r in await pull(connector)}
                assert listed[remote_id] == external_id  # the listing carries the identity too

        @in_own_loop
        async def test_given_target_record_and_lost_state_when_synced_then_identity_is_recovered_not_duplicated(
            self,
            plugin: EmulatorPlugin,
            emulator: Any,
            make_connector: ConnectorFactory,
            sqlite_store: Store,
            monkeypatch: pytest.MonkeyPatch,
        ) -> None:
            # The record a previous run made for static record "1"; the state store that knew it is gone.
            async with make_connector() as connector:
                existing = await created(connector, declared.customer, "static:tenant:1")
            writes_before = len(emulator.records)

            records = [declared.customer, declared.edited]
            result = await sync_from_static(monkeypatch, declared, plugin, emulator, sqlite_store, records)

            assert result.status == "succeeded", result.summary()
            assert len(emulator.records) == writes_before + 1, "only the second, unknown customer is new"
            identities = sqlite_store.identities_by_external_id(["static:tenant:1", "static:tenant:2"])
            links = sqlite_store.links_by_identity(name, list(identities.values()))
            assert links[identities["static:tenant:1"]].remote_id == existing
            assert links[identities["static:tenant:2"]].remote_id not in (None, existing)
            # Found by its identity slot, or (without one) by the natural keys (tax id, e-mail): matched either way.
            assert result.matched == 1

    return IdentityTests


__all__ = ["identity_tests"]
