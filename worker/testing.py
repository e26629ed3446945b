"""The connector contract suite, for any system plug-in, after the Singer SDK's standard tap tests.

A plug-in's own tests need one line (and pytest)::

    from worker.testing import contract_test_class

    TestBooksContract = contract_test_class("books")   # a registered system, or its System

The class checks the system's connector against its emulator (the
``custsync.sandbox`` entry point of the same name) for

- paging to the end of every listing, with no record twice;
- the round trip of every canonical field it keeps, through create, update,
  ``pages()`` and ``get()``, and of the archived state where it has one;
- an update limited to some fields (what a pipeline speaks for) leaving the
  other kept fields as they are;
- the classification of 401 / 403 / 404 / 409 / 422 / 429 / 5xx, served over
  HTTP by the emulator's fault injector, into the error tree;
- finding a record again: by external_id where the system has an identity
  slot, by the engine's natural-key recovery where it has none;
- no secret of its settings in any log event or error message.

The tests are plain functions that run their own event loop: no pytest
plug-in beyond pytest is needed. pytest is imported only when a class is made.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import httpx
import stamina
from pydantic import SecretStr
from structlog.testing import capture_logs

from connectors import REGISTRY
from connectors.base import ConnectionSettings, Connector, Listing, TargetSpec
from connectors.errors import (
    AuthError,
    ConnectorError,
    NotFoundError,
    NotSupportedError,
    RateLimitedError,
    RejectedError,
    RetriableError,
)
from connectors.model import CANONICAL_FIELDS, Customer, RemoteCustomer
from connectors.pagination import SinglePagePaginator
from connectors.plugin import System
from connectors.registry import get_system
from sandbox.plugin import EmulatorPlugin, emulators
from state.store import Store
from worker.config import AppConfig, BrokerConfig, PipelineConfig, StateConfig
from worker.sync import RunResult, run_pipeline

if TYPE_CHECKING:
    import pytest

BASE_URL = "http://contract.test"
EXTERNAL_ID = "contract:tenant:1"
LONG_EXTERNAL_ID = "contract:" + "t" * 60 + ":" + "9" * 40

EXPECTED_ERRORS: dict[int, type[ConnectorError]] = {
    401: AuthError,
    403: AuthError,
    404: NotFoundError,
    409: RejectedError,
    422: RejectedError,
    429: RateLimitedError,
    500: RetriableError,
    502: RetriableError,
    503: RetriableError,
}
OPS = ("list", "get", "create", "update")

ConnectorFactory = Callable[[], Connector]
_T = TypeVar("_T")


# -- helpers ----------------------------------------------------------------------------------


def kept(connector: Connector) -> list[str]:
    """The canonical fields a round trip must preserve."""
    return sorted(connector.spec.fields | {"name"})


async def pull(connector: Connector) -> list[RemoteCustomer]:
    """Every record of every page."""
    return [remote async for page in connector.pages() for remote in page]


async def created(connector: Connector, customer: Customer, external_id: str = EXTERNAL_ID) -> str:
    """Create the customer as the engine does (shaped, checked) and return its id."""
    shaped = connector.shape(customer)
    assert connector.problems(shaped) == [], "the contract fixture must be valid for its system"
    result = await connector.create(shaped, external_id)
    assert result.remote.customer is not None, result.remote.problem
    return result.remote.id


def differences(connector: Connector, expected: Customer, got: Customer | None) -> dict[str, Any]:
    """The kept fields where ``got`` is not ``expected``."""
    assert got is not None
    return {
        name: (getattr(expected, name), getattr(got, name))
        for name in kept(connector)
        if getattr(expected, name) != getattr(got, name)
    }


async def _call(connector: Connector, op: str, customer: Customer, remote_id: str) -> None:
    if op == "list":
        await pull(connector)
    elif op == "get":
        await connector.get(remote_id)
    elif op == "create":
        await connector.create(connector.shape(customer), "contract:tenant:2")
    else:
        await connector.update(remote_id, connector.shape(customer), EXTERNAL_ID)


def secrets_of(settings: ConnectionSettings, emulator: Any) -> list[str]:
    """The settings' secret values and the bearer tokens the emulator issued."""
    values = [v.get_secret_value() for v in settings.__dict__.values() if isinstance(v, SecretStr)]
    values += list(getattr(emulator, "tokens", {}))
    return [v for v in values if v]


def _faulty(emulator: Any) -> Any:
    emulator.faults.add("error_before", status=401, times=None)
    return emulator


def _run(test: Callable[..., Awaitable[_T]]) -> Callable[..., _T]:
    """An async test as a plain one, with its own event loop (pytest sees the same parameters)."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> _T:
        return asyncio.run(test(*args, **kwargs))  # type: ignore[arg-type]

    return run


# -- the engine against one target, from a source of fixed records -------------------------------


class _StaticSettings(ConnectionSettings):
    system: str = "static"
    base_url: str = "http://static.invalid"


class StaticSource(Connector):
    """A source that lists fixed canonical records: drives the engine against one target."""

    system = "static"
    settings_model = _StaticSettings
    spec = TargetSpec(fields=frozenset(CANONICAL_FIELDS))
    paginator = SinglePagePaginator()
    records: ClassVar[list[RemoteCustomer]] = []

    @property
    def tenant(self) -> str:
        return "tenant"

    def auth(self) -> httpx.Auth:
        return httpx.Auth()

    def listings(self) -> list[Listing]:
        return []

    def to_canonical(self, raw: Mapping[str, Any]) -> Customer:
        raise NotImplementedError

    def to_payload(self, customer: Customer, external_id: str, *, create: bool) -> dict[str, Any]:
        raise NotImplementedError

    async def pages(self) -> AsyncIterator[list[RemoteCustomer]]:
        yield list(self.records)


async def sync_from_static(
    monkeypatch: pytest.MonkeyPatch,
    system: System,
    plugin: EmulatorPlugin,
    emulator: Any,
    store: Store,
    records: list[Customer],
) -> RunResult:
    """Run ``static → system`` through :func:`worker.sync.run_pipeline` with the given source records."""
    source = type("Static", (StaticSource,), {"records": [RemoteCustomer(str(n), c) for n, c in enumerate(records, 1)]})
    monkeypatch.setitem(REGISTRY, "static", source)
    target = system.connector.settings_model.model_validate(dict(plugin.connection(BASE_URL)))
    config = AppConfig(
        path=Path("contract.toml"),
        state=StateConfig(url=store.url),
        broker=BrokerConfig(),
        connections={"static": _StaticSettings(), system.name: target},
        pipelines={"static_to_target": PipelineConfig(source="static", target=system.name)},
    )
    transport = httpx.ASGITransport(app=emulator.app)
    return await run_pipeline(config, "static_to_target", store=store, transports={system.name: transport})


# -- the factory ----------------------------------------------------------------------------------


def contract_test_class(system: System | str, emulator: EmulatorPlugin | str | None = None) -> type:
    """A pytest test class that runs the connector contract against one system.

    Args:
        system: a :class:`~connectors.plugin.System`, or the name of a registered one.
        emulator: its emulator, or the name of one in the ``custsync.sandbox`` group
            (default: the system's ``emulator_name``).

    Returns:
        A class to bind to a ``Test...`` name in a test module.
    """
    import pytest

    declared = system if isinstance(system, System) else get_system(system)
    name = declared.name
    emulator_name = emulator if isinstance(emulator, str) else declared.emulator_name
    fields = sorted(declared.connector.spec.fields | {"name"})

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

    class ContractTests:
        """The connector contract of one system (see :mod:`worker.testing`)."""

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
            cls = declared.connector

            def make() -> Connector:
                settings = cls.settings_model.model_validate(dict(plugin.connection(BASE_URL)))
                return cls(f"contract_{name}", settings, transport=httpx.ASGITransport(app=emulator.app))

            return make

        @pytest.fixture
        def sqlite_store(self, tmp_path: Path) -> Iterator[Store]:
            store = Store(f"sqlite:///{tmp_path / 'contract.db'}")
            yield store
            store.close()

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

        @_run
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

        @_run
        async def test_given_empty_system_when_pulled_then_no_records_and_no_error(
            self, make_connector: ConnectorFactory
        ) -> None:
            async with make_connector() as connector:
                assert await pull(connector) == []

        # -- round trip ----------------------------------------------------------------------------

        @pytest.mark.parametrize("field", fields)
        @_run
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

        @_run
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

        @_run
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

        @_run
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

        # -- error classification ---------------------------------------------------------------------

        @pytest.mark.parametrize("status", sorted(EXPECTED_ERRORS))
        @pytest.mark.parametrize("op", OPS)
        @_run
        async def test_given_status_served_when_operating_then_classified_into_error_tree(
            self, op: str, status: int, emulator: Any, make_connector: ConnectorFactory
        ) -> None:
            async with make_connector() as connector:
                remote_id = await created(connector, declared.customer)
                method = {"list": "GET", "get": "GET", "create": "POST", "update": connector.update_method}[op]
                fault = emulator.faults.add(
                    "rate_limit" if status == 429 else "error_before",
                    status=status,
                    times=None,
                    method=method,
                    path="customers",
                    retry_after=1 if status == 429 else None,
                )

                with pytest.raises(ConnectorError) as caught:
                    await _call(connector, op, declared.edited, remote_id)

                expected = EXPECTED_ERRORS[status]
                assert type(caught.value) is expected, f"HTTP {status} on {op} gave {type(caught.value).__name__}"
                assert f"HTTP {status}" in str(caught.value)
                if status == 429:
                    assert isinstance(caught.value, RateLimitedError)
                    assert caught.value.retry_after == 1.0
                    assert fault.fired > 1, "a 429 is retried"
                elif status >= 500:
                    # Reads and updates are retried; a create only where the system deduplicates it.
                    retried = op != "create" or connector.create_is_idempotent
                    assert (fault.fired > 1) is retried
                elif status != 401:  # a 401 may cost one token renewal before it is final
                    assert fault.fired == 1, f"HTTP {status} must not be retried"

        # -- identity ----------------------------------------------------------------------------------

        @pytest.mark.parametrize("external_id", [EXTERNAL_ID, LONG_EXTERNAL_ID])
        @_run
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

        @_run
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

        # -- secrets -------------------------------------------------------------------------------------

        @_run
        async def test_given_secrets_in_settings_when_syncing_and_failing_then_no_log_or_error_shows_them(
            self,
            plugin: EmulatorPlugin,
            emulator: Any,
            make_connector: ConnectorFactory,
            sqlite_store: Store,
            monkeypatch: pytest.MonkeyPatch,
            caplog: pytest.LogCaptureFixture,
        ) -> None:
            caplog.set_level(logging.DEBUG)
            errors: list[BaseException] = []
            with capture_logs() as events:
                records = [declared.customer]
                result = await sync_from_static(monkeypatch, declared, plugin, emulator, sqlite_store, records)
                async with make_connector() as connector:
                    await pull(connector)  # as a source
                    for status, op in ((401, "list"), (500, "list"), (422, "create"), (409, "update")):
                        emulator.faults.clear()
                        emulator.faults.add(
                            "error_before",
                            status=status,
                            times=None,
                            path="customers",
                            method={"list": "GET", "create": "POST"}.get(op, connector.update_method),
                        )
                        try:
                            await _call(connector, op, declared.edited, next(iter(emulator.records)))
                        except ConnectorError as exc:
                            errors.append(exc)
                emulator.faults.clear()
                failed = await sync_from_static(
                    monkeypatch, declared, plugin, _faulty(emulator), sqlite_store, [declared.edited]
                )

            secrets = secrets_of(make_connector().settings, emulator)
            assert secrets, "the settings hold at least one secret"
            assert (result.status, failed.status) == ("succeeded", "failed")
            assert len(errors) == 4
            assert any(e.get("event") == "run_finished" for e in events), "the engine's events were captured"
            texts = [repr(e) for e in events] + [r.getMessage() for r in caplog.records]
            texts += [f"{exc!s} {exc!r} {exc.__cause__!r}" for exc in errors] + [str(failed.error)]
            leaks = [(secret[:4], text) for secret in secrets for text in texts if secret in text]
            assert leaks == []

    title = "".join(part.capitalize() for part in name.replace("-", "_").split("_"))
    ContractTests.__name__ = ContractTests.__qualname__ = f"Test{title}Contract"
    return ContractTests


__all__ = [
    "BASE_URL",
    "EXPECTED_ERRORS",
    "EXTERNAL_ID",
    "OPS",
    "StaticSource",
    "contract_test_class",
    "created",
    "differences",
    "kept",
    "pull",
    "sync_from_static",
]
