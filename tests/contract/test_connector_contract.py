"""The connector contract, after the Singer SDK's standard tap tests.

Parametrised over :data:`connectors.REGISTRY`: registering a connector (and
giving it an entry in ``conftest.CASES``) is all it takes to be checked for

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
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
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
from state.store import Store
from tests.contract.conftest import CASES, ConnectorFactory, ContractCase
from worker.config import AppConfig, BrokerConfig, PipelineConfig, StateConfig
from worker.sync import RunResult, run_pipeline

SYSTEMS = sorted(REGISTRY)
ROUND_TRIP = [(s, f) for s in SYSTEMS for f in sorted(REGISTRY[s].spec.fields | {"name"})]
EXTERNAL_ID = "contract:tenant:1"


def kept(connector: Connector) -> list[str]:
    """The canonical fields a round trip must preserve."""
    return sorted(connector.spec.fields | {"name"})


async def pull(connector: Connector) -> list[RemoteCustomer]:
    return [remote async for page in connector.pages() for remote in page]


async def created(connector: Connector, customer: Customer, external_id: str = EXTERNAL_ID) -> str:
    """Create the customer as the engine does (shaped, checked) and return its id."""
    shaped = connector.shape(customer)
    assert connector.problems(shaped) == [], "the contract fixture must be valid for its system"
    result = await connector.create(shaped, external_id)
    assert result.remote.customer is not None, result.remote.problem
    return result.remote.id


def differences(connector: Connector, expected: Customer, got: Customer | None) -> dict[str, Any]:
    assert got is not None
    return {
        name: (getattr(expected, name), getattr(got, name))
        for name in kept(connector)
        if getattr(expected, name) != getattr(got, name)
    }


# -- fixtures are complete ------------------------------------------------------


def test_every_registered_connector_has_contract_fixtures() -> None:
    missing = sorted(set(REGISTRY) - set(CASES))
    assert not missing, f"add CASES entries in tests/contract/conftest.py for: {missing}"


@pytest.mark.parametrize("system", SYSTEMS)
def test_given_contract_customer_when_shaped_then_every_kept_field_is_set_and_valid(
    system: str, case: ContractCase, make_connector: ConnectorFactory
) -> None:
    connector = make_connector()
    shaped = connector.shape(case.customer)
    unset = [name for name in kept(connector) if getattr(shaped, name) is None]
    assert unset == [], f"the {system} contract customer must set every kept field"
    assert connector.problems(shaped) == []
    assert connector.problems(connector.shape(case.edited)) == []
    assert (case.customer.email, case.customer.tax_id) != (case.edited.email, case.edited.tax_id)


# -- paging -----------------------------------------------------------------------


@pytest.mark.parametrize("system", SYSTEMS)
async def test_given_more_than_two_pages_when_pulled_then_every_record_comes_back_once(
    system: str, case: ContractCase, emulator: Any, connector: Connector
) -> None:
    page_size = int(getattr(connector.paginator, "page_size", 100))
    seeded = case.seed(emulator, 3 * page_size + 1)
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


@pytest.mark.parametrize("system", SYSTEMS)
async def test_given_empty_system_when_pulled_then_no_records_and_no_error(system: str, connector: Connector) -> None:
    assert await pull(connector) == []


# -- round trip ---------------------------------------------------------------------


@pytest.mark.parametrize(("system", "field"), ROUND_TRIP)
async def test_given_created_customer_when_read_back_then_field_round_trips(
    system: str, field: str, case: ContractCase, connector: Connector
) -> None:
    expected = connector.shape(case.customer)
    remote_id = await created(connector, case.customer)

    listed = {r.id: r for r in await pull(connector)}
    fetched = await connector.get(remote_id)

    assert getattr(expected, field) is not None
    assert listed[remote_id].customer is not None, listed[remote_id].problem
    assert getattr(listed[remote_id].customer, field) == getattr(expected, field)
    assert fetched.customer is not None, fetched.problem
    assert getattr(fetched.customer, field) == getattr(expected, field)


@pytest.mark.parametrize("system", SYSTEMS)
async def test_given_created_customer_when_updated_then_every_kept_field_round_trips(
    system: str, case: ContractCase, connector: Connector
) -> None:
    remote_id = await created(connector, case.customer)
    expected = connector.shape(case.edited)
    # Bigcapital fixes the currency at creation: the edit keeps it, by construction of the fixtures.
    await connector.update(remote_id, expected, EXTERNAL_ID)

    fetched = await connector.get(remote_id)
    listed = {r.id: r for r in await pull(connector)}

    assert differences(connector, expected, fetched.customer) == {}
    assert differences(connector, expected, listed[remote_id].customer) == {}
    assert len(listed) == 1


@pytest.mark.parametrize("system", SYSTEMS)
async def test_given_update_limited_to_some_fields_when_applied_then_the_other_kept_fields_are_untouched(
    system: str, case: ContractCase, connector: Connector
) -> None:
    # A pipeline updates only the fields both systems keep; the target's others must survive.
    remote_id = await created(connector, case.customer)
    before = connector.shape(case.customer)
    edited = connector.shape(case.edited)
    speaks_for = frozenset({"kind", "name", "email"})

    await connector.update(remote_id, edited, EXTERNAL_ID, fields=speaks_for)

    fetched = await connector.get(remote_id)
    assert fetched.customer is not None, fetched.problem
    assert (fetched.customer.name, fetched.customer.email) == (edited.name, edited.email)
    others = {name for name in kept(connector) if name not in speaks_for}
    # Where the kind follows the name (Thredfi) or the tax id (Timbrix), name parts follow the name.
    others -= {"company_name", "first_name", "last_name"}
    changed = {name: (getattr(before, name), getattr(fetched.customer, name)) for name in sorted(others)}
    assert {k: v for k, v in changed.items() if v[0] != v[1]} == {}


@pytest.mark.parametrize("system", SYSTEMS)
async def test_given_created_customer_when_archived_and_reactivated_then_state_round_trips(
    system: str, case: ContractCase, connector: Connector
) -> None:
    remote_id = await created(connector, case.customer)
    if not connector.spec.archive:
        with pytest.raises(NotSupportedError):
            await connector.set_active(remote_id, False)
        return

    await connector.set_active(remote_id, False)
    archived = await connector.get(remote_id)
    listed = {r.id: r for r in await pull(connector)}  # archived records are still listed
    await connector.set_active(remote_id, True)
    reactivated = await connector.get(remote_id)

    assert [c.active if c else None for c in (archived.customer, listed[remote_id].customer)] == [False, False]
    assert reactivated.customer is not None
    assert reactivated.customer.active is True


# -- error classification ---------------------------------------------------------------

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


async def _call(connector: Connector, op: str, customer: Customer, remote_id: str) -> None:
    if op == "list":
        await pull(connector)
    elif op == "get":
        await connector.get(remote_id)
    elif op == "create":
        await connector.create(connector.shape(customer), "contract:tenant:2")
    else:
        await connector.update(remote_id, connector.shape(customer), EXTERNAL_ID)


@pytest.mark.parametrize("status", sorted(EXPECTED_ERRORS))
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("system", SYSTEMS)
async def test_given_status_served_when_operating_then_classified_into_error_tree(
    system: str, op: str, status: int, case: ContractCase, emulator: Any, connector: Connector
) -> None:
    remote_id = await created(connector, case.customer)
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
        await _call(connector, op, case.edited, remote_id)

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


# -- identity ------------------------------------------------------------------------------


@pytest.mark.parametrize("external_id", [EXTERNAL_ID, "contract:" + "t" * 60 + ":" + "9" * 40])
@pytest.mark.parametrize("system", SYSTEMS)
async def test_given_created_customer_when_looked_up_by_external_id_then_found_where_slot(
    system: str, external_id: str, case: ContractCase, connector: Connector
) -> None:
    remote_id = await created(connector, case.customer, external_id)
    await created(connector, case.edited, external_id + "-other")

    found = await connector.find_by_external_id(external_id)
    absent = await connector.find_by_external_id("contract:tenant:nobody")

    if not connector.spec.identity_slot:
        assert (found, absent) == (None, None)
        return
    assert found is not None
    assert [r.id for r in found] == [remote_id]
    assert found[0].external_id == external_id
    assert differences(connector, connector.shape(case.customer), found[0].customer) == {}
    assert absent == []
    listed = {r.id: r.external_id for r in await pull(connector)}
    assert listed[remote_id] == external_id  # the listing carries the identity too


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
    system: str,
    case: ContractCase,
    emulator: Any,
    store: Store,
    records: list[Customer],
) -> RunResult:
    """Run ``static → system`` through :func:`run_pipeline` with the given source records."""
    source = type("Static", (StaticSource,), {"records": [RemoteCustomer(str(n), c) for n, c in enumerate(records, 1)]})
    monkeypatch.setitem(REGISTRY, "static", source)
    target = REGISTRY[system].settings_model.model_validate(case.connection("http://contract.test"))
    config = AppConfig(
        path=Path("contract.toml"),
        state=StateConfig(url=store.url),
        broker=BrokerConfig(),
        connections={"static": _StaticSettings(), system: target},
        pipelines={"static_to_target": PipelineConfig(source="static", target=system)},
    )
    transport = httpx.ASGITransport(app=emulator.app)
    return await run_pipeline(config, "static_to_target", store=store, transports={system: transport})


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Any:
    store = Store(f"sqlite:///{tmp_path / 'contract.db'}")
    yield store
    store.close()


@pytest.mark.parametrize("system", SYSTEMS)
async def test_given_target_record_and_lost_state_when_synced_then_identity_is_recovered_not_duplicated(
    system: str,
    case: ContractCase,
    emulator: Any,
    connector: Connector,
    sqlite_store: Store,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The record a previous run made for static record "1"; the state store that knew it is gone.
    existing = await created(connector, case.customer, "static:tenant:1")
    writes_before = len(emulator.records)

    result = await sync_from_static(monkeypatch, system, case, emulator, sqlite_store, [case.customer, case.edited])

    assert result.status == "succeeded", result.summary()
    assert len(emulator.records) == writes_before + 1, "only the second, unknown customer is new"
    identities = sqlite_store.identities_by_external_id(["static:tenant:1", "static:tenant:2"])
    links = sqlite_store.links_by_identity(system, list(identities.values()))
    assert links[identities["static:tenant:1"]].remote_id == existing
    assert links[identities["static:tenant:2"]].remote_id not in (None, existing)
    # Found by its identity slot, or (without one) by the natural keys (tax id, e-mail): matched either way.
    assert result.matched == 1


# -- secrets --------------------------------------------------------------------------------


def secrets_of(settings: ConnectionSettings, emulator: Any) -> list[str]:
    values = [v.get_secret_value() for v in settings.__dict__.values() if isinstance(v, SecretStr)]
    values += list(getattr(emulator, "tokens", {}))  # bearer tokens the emulator issued
    return [v for v in values if v]


@pytest.mark.parametrize("system", SYSTEMS)
async def test_given_secrets_in_settings_when_syncing_and_failing_then_no_log_or_error_shows_them(
    system: str,
    case: ContractCase,
    emulator: Any,
    make_connector: ConnectorFactory,
    sqlite_store: Store,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[BaseException] = []
    with capture_logs() as events:
        result = await sync_from_static(monkeypatch, system, case, emulator, sqlite_store, [case.customer])
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
                    await _call(connector, op, case.edited, next(iter(emulator.records)))
                except ConnectorError as exc:
                    errors.append(exc)
        emulator.faults.clear()
        failed = await sync_from_static(monkeypatch, system, case, _faulty(emulator), sqlite_store, [case.edited])

    secrets = secrets_of(make_connector().settings, emulator)
    assert secrets, "the settings hold at least one secret"
    assert (result.status, failed.status) == ("succeeded", "failed")
    assert len(errors) == 4
    assert any(e.get("event") == "run_finished" for e in events), "the engine's events were captured"
    texts = [repr(e) for e in events] + [r.getMessage() for r in caplog.records]
    texts += [f"{exc!s} {exc!r} {exc.__cause__!r}" for exc in errors] + [str(failed.error)]
    leaks = [(secret[:4], text) for secret in secrets for text in texts if secret in text]
    assert leaks == []


def _faulty(emulator: Any) -> Any:
    emulator.faults.add("error_before", status=401, times=None)
    return emulator
