"""The pipeline lock on the real Redis (127.0.0.1:6379, database 11).

Each test locks pipelines of its own name, so tests can run in parallel
processes against the one database.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from sandbox.server import BackgroundServer, Sandbox, sandbox_config
from state.store import Store
from worker.config import load_config
from worker.lock import KEY_PREFIX, Holder, PipelineLock, dead_local_process, same_owner
from worker.runner import run_exclusive

pytestmark = pytest.mark.redis

REDIS_URL = "redis://127.0.0.1:6379/11"


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    """Database 11."""
    client = redis.Redis.from_url(REDIS_URL)
    yield client
    client.close()


@pytest.fixture
def p(client: redis.Redis) -> Iterator[str]:
    """A pipeline name no other test uses; its lock is deleted afterwards.

    The two tests that run the engine use the sandbox's pipelines instead, one each.
    """
    name = f"p-{uuid.uuid4().hex[:8]}"
    yield name
    client.delete(KEY_PREFIX + name)


def test_given_a_free_lock_when_acquired_then_its_value_names_the_holder(client: redis.Redis, p: str) -> None:
    lock = PipelineLock(client, p, ttl_s=5, owner="task:abc")
    assert lock.acquire()
    holder = lock.holder()
    assert holder is not None
    assert (holder.owner, holder.host, holder.pid) == ("task:abc", socket.gethostname(), os.getpid())
    assert 0 < client.pttl(KEY_PREFIX + p) <= 5000
    lock.release()
    assert client.get(KEY_PREFIX + p) is None


def test_given_a_held_lock_when_another_asks_then_it_is_refused_at_once(client: redis.Redis, p: str) -> None:
    first = PipelineLock(client, p, ttl_s=5, owner="task:one")
    second = PipelineLock(client, p, ttl_s=5, owner="task:two")
    assert first.acquire()
    started = time.monotonic()
    assert not second.acquire(wait_if=same_owner("task:two"))
    assert time.monotonic() - started < 1
    assert second.held_by is not None
    assert second.held_by.owner == "task:one"
    second.release()  # not ours: must not free it
    assert first.holder() is not None
    first.release()


def test_given_a_holder_that_died_when_its_ttl_passes_then_the_lock_is_free(client: redis.Redis, p: str) -> None:
    dead = PipelineLock(client, p, ttl_s=0.5, owner="task:dead")
    assert dead.acquire()  # never renewed nor released: its process "died"
    assert not PipelineLock(client, p, ttl_s=5, owner="task:next").acquire()
    time.sleep(0.7)
    assert PipelineLock(client, p, ttl_s=5, owner="task:next").acquire()


def test_given_a_redelivered_task_when_its_dead_delivery_holds_the_lock_then_it_waits_for_expiry(
    client: redis.Redis, p: str
) -> None:
    PipelineLock(client, p, ttl_s=1.0, owner="task:same").acquire()
    again = PipelineLock(client, p, ttl_s=5, owner="task:same")
    started = time.monotonic()
    assert again.acquire(wait_if=same_owner("task:same"), poll_s=0.05)
    assert 0.5 < time.monotonic() - started < 2.5


def test_given_a_renewed_lock_when_the_ttl_passes_then_it_is_still_held(client: redis.Redis, p: str) -> None:
    lock = PipelineLock(client, p, ttl_s=0.6, owner="task:long")
    assert lock.acquire()
    lock.start_renewal()
    time.sleep(1.5)  # 2.5 TTLs
    assert not PipelineLock(client, p, ttl_s=5, owner="task:other").acquire()
    lock.release()
    assert PipelineLock(client, p, ttl_s=5, owner="task:other").acquire()


def test_given_a_live_holder_when_waited_for_then_the_waiter_gives_up_after_its_ttl(
    client: redis.Redis, p: str
) -> None:
    alive = PipelineLock(client, p, ttl_s=0.6, owner="task:same")
    assert alive.acquire()
    alive.start_renewal()
    waiter = PipelineLock(client, p, ttl_s=5, owner="task:same")
    started = time.monotonic()
    assert not waiter.acquire(wait_if=same_owner("task:same"), poll_s=0.05)
    assert time.monotonic() - started < 3
    alive.release()


def test_given_a_lost_lock_when_renewal_notices_then_on_lost_is_called(client: redis.Redis, p: str) -> None:
    lock = PipelineLock(client, p, ttl_s=0.6, owner="task:x")
    assert lock.acquire()
    lost = threading.Event()
    lock.start_renewal(on_lost=lost.set)
    client.set(KEY_PREFIX + p, "someone-else")  # e.g. it expired during a long stall and was taken
    assert lost.wait(2)
    assert lock.lost
    lock.release()
    assert client.get(KEY_PREFIX + p) == b"someone-else"


def test_given_a_cli_holder_that_is_gone_when_checked_then_it_is_waited_for() -> None:
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    pid = int(gone.stdout)
    host = socket.gethostname()
    assert dead_local_process(Holder.parse(f"cli@{host}:{pid}#abc123"))
    assert not dead_local_process(Holder.parse(f"cli@{host}:{os.getpid()}#abc123"))
    assert not dead_local_process(Holder.parse(f"cli@another-host:{pid}#abc123"))
    assert not dead_local_process(Holder.parse("garbage"))


def test_given_a_held_lock_when_a_run_is_asked_then_it_is_recorded_as_skipped(
    client: redis.Redis, tmp_path: Path
) -> None:
    box = Sandbox()
    box["bigcapital"].seed_fake(5)
    with BackgroundServer(box.app) as server:
        path = tmp_path / "custsync.toml"
        path.write_text(sandbox_config(server.url, state_url=f"sqlite:///{tmp_path}/state.db", broker_url=REDIS_URL))
        config = load_config(path)
        store = Store(config.state.url)
        holder = PipelineLock(client, "bigcapital_to_thredfi", ttl_s=5, owner="task:busy")
        assert holder.acquire()
        skipped = run_exclusive(
            config, "bigcapital_to_thredfi", store=store, redis_url=REDIS_URL, owner="task:late", ttl_s=5
        )
        holder.release()
        done = run_exclusive(
            config, "bigcapital_to_thredfi", store=store, redis_url=REDIS_URL, owner="task:late", ttl_s=5
        )
        runs = store.runs("bigcapital_to_thredfi")
        store.close()
    assert skipped.status == "skipped"
    assert skipped.exit_code == 3
    assert "task:busy" in (skipped.error or "")
    assert done.status == "succeeded"
    assert sorted(r.status for r in runs) == ["skipped", "succeeded"]
    assert len(box["thredfi"].records) == 5
    assert client.get(KEY_PREFIX + "bigcapital_to_thredfi") is None  # released after the run


def test_given_a_running_pipeline_when_its_lock_is_lost_then_the_run_is_cancelled(
    client: redis.Redis, tmp_path: Path
) -> None:
    from worker.lock import LockLostError

    box = Sandbox()
    box["bigcapital"].seed_fake(5)
    box["bigcapital"].faults.add("slow", method="GET", path="customers$", delay_s=3, times=None)
    with BackgroundServer(box.app) as server:
        path = tmp_path / "custsync.toml"
        path.write_text(sandbox_config(server.url, state_url=f"sqlite:///{tmp_path}/state.db", broker_url=REDIS_URL))
        config = load_config(path)
        store = Store(config.state.url)
        threading.Timer(0.5, lambda: client.set(KEY_PREFIX + "bigcapital_to_piriod", "intruder")).start()
        started = time.monotonic()
        with pytest.raises(LockLostError):
            run_exclusive(config, "bigcapital_to_piriod", store=store, redis_url=REDIS_URL, owner="task:x", ttl_s=0.6)
        elapsed = time.monotonic() - started
        store.close()
    assert elapsed < 2.5  # cancelled within a renewal interval, not after the 3 s page
    assert box["piriod"].writes() == []
    client.delete(KEY_PREFIX + "bigcapital_to_piriod")
