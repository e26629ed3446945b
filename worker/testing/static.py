"""The engine against one target, from a source of fixed records (the identity and secret tests)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import httpx

from connectors import REGISTRY
from connectors.base import ConnectionSettings, Connector, Listing, TargetSpec
from connectors.model import CANONICAL_FIELDS, Customer, RemoteCustomer
from connectors.pagination import SinglePagePaginator
from connectors.plugin import System
from sandbox.plugin import EmulatorPlugin
from state.store import Store
from worker.config import AppConfig, BrokerConfig, PipelineConfig, StateConfig
from worker.sync import RunResult, run_pipeline
from worker.testing.support import BASE_URL

if TYPE_CHECKING:
    import pytest


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


__all__ = ["StaticSource", "sync_from_static"]
