"""The contract's record tests: the fixtures are valid, paging, and the round trip of every kept field."""

from __future__ import annotations

from typing import Any

from connectors.errors import NotSupportedError
from connectors.pagination import SinglePagePaginator
from connectors.plugin import System
from worker.testing.support import EXTERNAL_ID, ConnectorFactory, created, differences, in_own_loop, kept, pull


def record_tests(declared: System) -> type:
    """The record tests of one system: a base of its contract class (see :mod:`worker.testing`)."""
    import pytest

    name = declared.name
    fields = sorted(declared.connector.spec.fields | {"name"})

    class RecordTests:
        # -- the fixtures are valid ------------------------------------------------------------

        def test_given_contract_customer_when_shaped_then_every_kept_field_is_set_and_valid(
            self, make_connector: ConnectorFactory
        ) -> None:
            connector = make_connector()
            shaped = connector.shape(declared.customer)
            unset = [field for field in kept(connector) if getattr(shaped, field) is None]
            assert unset == [], f"the {name} contract customer must set every kept field"
            assert connector.problems(shaped) == []
            assert connector.problems(connector.shape(declared.edited)) == []
            assert (declared.customer.email, declared.customer.tax_id) != (
                declared.edited.email,
                declared.edited.tax_id,
            )

        # -- paging ------------------------------------------------------------------------------

        @in_own_loop
        async def test_given_more_than_two_pages_when_pulled_then_every_record_comes_back_once(
            self, emulator: Any, make_connector: ConnectorFactory
        ) -> None:
            async with make_connector() as connector:
                page_size = int(getattr(connector.paginator, "page_size", 100))
                seeded = declared.seed(emulator, 3 * page_size + 1)
                assert len(seeded) > 2 * page_size

                pulled = await pull(connector)

                ids = [remote.id for remote in pulled]
                assert len(ids) == len(set(ids)), "a record came back twice"
                assert set(ids) == set(seeded)
                assert [r.problem for r in pulled if r.customer is None] == []
                listing_calls = [r for r in emulator.requests if r.method == "GET" and r.status == 200]
                if isinstance(connector.paginator, SinglePagePaginator):
                    assert len(listing_calls) == len(connector.listings())  # one bare array per listing
                else:
                    assert len(listing_calls) > 2, "more than two pages must have been fetched"

        @in_own_loop
        async def test_given_empty_system_when_pulled_then_no_records_and_no_error(
            self, make_connector: ConnectorFactory
        ) -> None:
            async with make_connector() as connector:
                assert await pull(connector) == []

        # -- round trip ----------------------------------------------------------------------------

        @pytest.mark.parametrize("field", fields)
        @in_own_loop
        async def test_given_created_customer_when_read_back_then_field_round_trips(
            self, field: str, make_connector: ConnectorFactory
        ) -> None:
            async with make_connector() as connector:
                expected = connector.shape(declared.customer)
                remote_id = await created(connector, declared.customer)

                listed = {r.id: r for r in await pull(connector)}
                fetched = await connector.get(remote_id)

                assert getattr(expected, field) is not None
                assert listed[remote_id].customer is not None, listed[remote_id].problem
                assert getattr(listed[remote_id].customer, field) == getattr(expected, field)
                assert fetched.customer is not None, fetched.problem
                assert getattr(fetched.customer, field) == getattr(expected, field)

        @in_own_loop
        async def test_given_created_customer_when_updated_then_every_kept_field_round_trips(
            self, make_connector: ConnectorFactory
        ) -> None:
            async with make_connector() as connector:
                remote_id = await created(connector, declared.customer)
                expected = connector.shape(declared.edited)
                # A system that fixes a field at creation (Bigcapital's currency) keeps it in the edit too.
                await connector.update(remote_id, expected, EXTERNAL_ID)

                fetched = await connector.get(remote_id)
                listed = {r.id: r for r in await pull(connector)}

                assert differences(connector, expected, fetched.customer) == {}
                assert differences(connector, expected, listed[remote_id].customer) == {}
                assert len(listed) == 1

        @in_own_loop
        async def test_given_update_limited_to_some_fields_when_applied_then_the_other_kept_fields_are_untouched(
            self, make_connector: ConnectorFactory
        ) -> None:
            # A pipeline updates only the fields both systems keep; the target's others must survive.
            async with make_connector() as connector:
                remote_id = await created(connector, declared.customer)
                before = connector.shape(declared.customer)
                edited = connector.shape(declared.edited)
                speaks_for = frozenset({"kind", "name", "email"})

                await connector.update(remote_id, edited, EXTERNAL_ID, fields=speaks_for)

                fetched = await connector.get(remote_id)
                assert fetched.customer is not None, fetched.problem
                assert (fetched.customer.name, fetched.customer.email) == (edited.name, edited.email)
                others = {field for field in kept(connector) if field not in speaks_for}
                # Where the kind follows the name (Thredfi) or the tax id (Timbrix), name parts follow the name.
                others -= {"company_name", "first_name", "last_name"}
                changed = {f: (getattr(before, f), getattr(fetched.customer, f)) for f in sorted(others)}
                assert {k: v for k, v in changed.items() if v[0] != v[1]} == {}

        @in_own_loop
        async def test_given_created_customer_when_archived_and_reactivated_then_state_round_trips(
            self, make_connector: ConnectorFactory
        ) -> None:
            async with make_connector() as connector:
                remote_id = await created(connector, declared.customer)
                if not connector.spec.archive:
                    with pytest.raises(NotSupportedError):
                        await connector.set_active(remote_id, False)
                    return

                await connector.set_active(remote_id, False)
                archived = await connector.get(remote_id)
                listed = {r.id: r for r in await pull(connector)}  # archived records are still listed
                await connector.set_active(remote_id, True)
                reactivated = await connector.get(remote_id)

                states = [c.active if c else None for c in (archived.customer, listed[remote_id].customer)]
                assert states == [False, False]
                assert reactivated.customer is not None
                assert reactivated.customer.active is True

    return RecordTests


__all__ = ["record_tests"]
