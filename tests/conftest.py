"""Shared fixtures: the sandbox in process, a config for it, a store on SQLite and PostgreSQL.

- ``sandbox``: every registered emulator (``custsync.sandbox``), fresh per test
  (``sandbox["thredfi"]`` is one emulator).
- ``transport``: one ``httpx.ASGITransport`` serving them all under ``http://sandbox.test``.
- ``config``: the sandbox config (a connection per system, named after it; pipelines
  ``SOURCE_to_TARGET``), pointing at ``store``'s URL.
- ``store``: the state store, once on SQLite and once on a fresh PostgreSQL database
  on 127.0.0.1:5432 (``CUSTSYNC_TEST_PG_URL`` overrides the server URL).
- ``sync``: runs a pipeline against all of it: ``await sync("bigcapital_to_thredfi")``.
"""

from __future__ import annotations

import os
import tomllib
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import stamina

from sandbox.server import Sandbox, sandbox_config
from state.store import Store
from worker.config import AppConfig, parse_config
from worker.sync import RunResult, run_pipeline

SANDBOX_URL = "http://sandbox.test"
PG_SERVER = os.environ.get("CUSTSYNC_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(autouse=True)
def _no_backoff() -> Iterator[None]:
    """Retries happen, without sleeping (stamina's testing mode)."""
    with stamina.set_testing(True, attempts=5, cap=True):
        yield


@pytest.fixture
def sandbox() -> Sandbox:
    """Fresh emulators of every registered system."""
    return Sandbox()


@pytest.fixture
def transport(sandbox: Sandbox) -> httpx.ASGITransport:
    """One in-process transport for all the emulators."""
    return httpx.ASGITransport(app=sandbox.app)


@pytest.fixture(scope="session")
def _pg_database(worker_id: str) -> Iterator[str]:
    """One PostgreSQL database per test process (xdist worker), dropped at the end."""
    name = f"custsync_{worker_id}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_SERVER, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_SERVER.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(PG_SERVER, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url(_pg_database: str) -> str:
    """An empty PostgreSQL database: this process's, with its schema reset (cheaper than a new one)."""
    with psycopg.connect(_pg_database, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")
    return _pg_database.replace("postgresql://", "postgresql+psycopg://", 1)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The state-store URL: SQLite in a temp dir, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """The state store, migrated."""
    s = Store(store_url)
    yield s
    s.close()


def make_config(store_url: str, **pipeline_options: Any) -> AppConfig:
    """The sandbox config; ``pipeline_options`` are added to every pipeline."""
    raw = tomllib.loads(sandbox_config(SANDBOX_URL, state_url=store_url))
    for table in raw["pipelines"].values():
        table.update(pipeline_options)
    return parse_config(raw, path=Path("sandbox.toml"), environ={})


def one_way(config: AppConfig, *names: str) -> AppConfig:
    """``config`` with only the pipelines ``names``: one-way when none leads back (the sandbox config's all do)."""
    return config.model_copy(update={"pipelines": {n: config.pipelines[n] for n in names}})


@pytest.fixture
def config(store_url: str) -> AppConfig:
    """The sandbox config on this test's store."""
    return make_config(store_url)


SyncFn = Callable[..., Awaitable[RunResult]]


@pytest.fixture
def sync(config: AppConfig, store: Store, transport: httpx.ASGITransport) -> SyncFn:
    """Run a pipeline in process against the sandbox and the store.

    Keyword arguments go to :func:`worker.sync.run_pipeline`; ``config=`` swaps the config.
    """

    async def run(pipeline: str, **options: Any) -> RunResult:
        cfg = options.pop("config", config)
        transports = {name: transport for name in cfg.connections}
        return await run_pipeline(cfg, pipeline, store=store, transports=transports, **options)

    return run
