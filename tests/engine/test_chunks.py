"""A page in chunks (worker/engine/run.py, ``Engine.CHUNK``): its first writes leave while the rest is planned.

The page is still recorded in one commit; what was sent is recorded even when
planning a later chunk fails, and a run after that creates nothing twice.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from sandbox.server import Sandbox
from state.store import Store
from tests.conftest import one_way
from worker.config import AppConfig
from worker.engine import run as engine_run
from worker.engine import snapshot
from worker.engine.run import Engine
from worker.runner import run_pipeline

PIPELINE = "bigcapital_to_thredfi"
COUNT = 250  # one Bigcapital page of active customers (three chunks), one of inactive


class Watching(httpx.AsyncBaseTransport):
    """The sandbox's transport, calling ``seen`` with each request before it is answered."""

    def __init__(self, inner: httpx.AsyncBaseTransport, seen: Callable[[httpx.Request], None]) -> None:
        self.inner, self.seen = inner, seen

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.seen(request)
        return await self.inner.handle_async_request(request)


def _identities(store: Store) -> int:
    with store.engine.connect() as connection:
        return int(connection.execute(text("SELECT count(*) FROM identities")).scalar_one())


async def _run(config: AppConfig, store: Store, transport: httpx.AsyncBaseTransport) -> Any:
    return await run_pipeline(config, PIPELINE, store=store, transports=dict.fromkeys(config.connections, transport))


async def test_given_a_page_of_several_chunks_when_synced_then_the_first_create_leaves_before_the_last_chunk_is_planned(
    sandbox: Sandbox, store: Store, config: AppConfig, transport: httpx.ASGITransport, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small chunks: the first create waits on Thredfi's token and the AIMD limit's first slot, a few turns of the loop.
    monkeypatch.setattr(Engine, "CHUNK", 10)
    sandbox["bigcapital"].seed_fake(COUNT)
    active = sum(1 for r in sandbox["bigcapital"].records.values() if r["active"])
    planned_at_first_create: list[int] = []

    def seen(request: httpx.Request) -> None:
        if request.method == "POST" and "/customers" in request.url.path and not planned_at_first_create:
            planned_at_first_create.append(_identities(store))

    result = await _run(one_way(config, PIPELINE), store, Watching(transport, seen))

    assert result.status == "succeeded", result.summary()
    assert result.counts.created == COUNT
    (planned,) = planned_at_first_create
    assert planned < active, "the first create left before the last chunk of the (active) page was planned"
    assert planned % Engine.CHUNK == 0, "whole chunks are planned"
    held = Counter(r["external_id"] for r in sandbox["thredfi"].records.values())
    assert sorted(held.values()) == [1] * COUNT


async def test_given_planning_a_later_chunk_fails_when_run_then_what_was_sent_is_recorded_and_no_copy_follows(
    sandbox: Sandbox, store: Store, config: AppConfig, transport: httpx.ASGITransport, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox["bigcapital"].seed_fake(COUNT)
    config = one_way(config, PIPELINE)
    snapshots = 0
    real = snapshot.read_snapshot

    def failing_third(*args: Any, **kwargs: Any) -> Any:
        nonlocal snapshots
        snapshots += 1
        if snapshots == 3:
            raise RuntimeError("the state store went away")
        return real(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(engine_run, "read_snapshot", failing_third)
        failed = await _run(config, store, transport)

    assert failed.status == "failed"
    linked = [lk for lk in store.links_of("thredfi") if lk.status == "linked" and lk.remote_id]
    assert len(linked) == 2 * Engine.CHUNK, "the two chunks sent were recorded with the page"
    assert len(sandbox["thredfi"].records) == 2 * Engine.CHUNK
    again = await _run(config, store, transport)
    assert again.status == "succeeded", again.summary()
    assert again.counts.created == COUNT - 2 * Engine.CHUNK
    held = Counter(r["external_id"] for r in sandbox["thredfi"].records.values())
    assert sorted(held.values()) == [1] * COUNT, "each customer in Thredfi once"


async def test_given_several_source_pages_when_synced_then_the_next_page_is_listed_before_this_ones_writes(
    sandbox: Sandbox, store: Store, config: AppConfig, transport: httpx.ASGITransport
) -> None:
    sandbox["thredfi"].seed_fake(COUNT)  # Thredfi lists 100 a page: three pages
    sent: list[str] = []

    def seen(request: httpx.Request) -> None:
        if "/customers" in request.url.path:
            sent.append(f"{request.method} {request.url.host}{request.url.path}?{request.url.query.decode()}")

    pipeline = "thredfi_to_bigcapital"
    cfg = one_way(config, pipeline)
    result = await run_pipeline(
        cfg, pipeline, store=store, transports=dict.fromkeys(cfg.connections, Watching(transport, seen))
    )

    assert result.status == "succeeded", result.summary()
    assert result.counts.created == COUNT
    lists = [i for i, line in enumerate(sent) if line.startswith("GET") and "/thredfi/" in line and "page=" in line]
    creates = [i for i, line in enumerate(sent) if line.startswith("POST") and "/bigcapital/" in line]
    assert len(lists) >= 3
    assert lists[1] < creates[0], "page two was asked for before page one's first create"
    held = Counter(r["email"] for r in sandbox["bigcapital"].records.values())
    assert len(held) == COUNT


async def test_given_chunks_with_nothing_to_send_when_planned_then_each_next_one_is_larger_up_to_the_cap(
    sandbox: Sandbox, store: Store, config: AppConfig, transport: httpx.ASGITransport, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox["bigcapital"].seed_fake(COUNT)
    config = one_way(config, PIPELINE)
    assert (await _run(config, store, transport)).counts.created == COUNT
    chunks: list[list[str]] = []
    real = snapshot.read_snapshot

    def sized(store: Store, records: Any, *args: Any, **kwargs: Any) -> Any:
        chunks.append([r.id for r in records])
        return real(store, records, *args, **kwargs)

    monkeypatch.setattr(engine_run, "read_snapshot", sized)
    with monkeypatch.context() as patch:
        patch.setattr(Engine, "QUIET_CHUNK", 120)
        quiet = await _run(config, store, transport)  # the first sync wrote: every page is planned again

    assert quiet.counts.unchanged == COUNT
    # The active page (225): 100, then 200 capped at 120, then the rest; the inactive page (25) starts at CHUNK again.
    assert [len(c) for c in chunks] == [100, 120, 5, 25]

    first = chunks[0][0]
    sandbox["bigcapital"].admin_edit(sandbox["bigcapital"].records[first], {"display_name": "Renamed Ltd"})
    chunks.clear()
    edited = await _run(config, store, transport)

    assert (edited.counts.updated, edited.counts.unchanged) == (1, COUNT - 1), edited.summary()
    # The first chunk holds the write: the next is CHUNK again. The inactive page, listed as the quiet run
    # listed it, is not planned at all (worker/engine/memo.py).
    assert [len(c) for c in chunks] == [100, 100, 25], "a chunk with a write keeps the next at CHUNK"
    assert first in chunks[0]
