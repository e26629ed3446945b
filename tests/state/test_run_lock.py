"""9.1: the state store's run lock, on SQLite (a lease row) and PostgreSQL (a session advisory lock)."""

from __future__ import annotations

import time

import psycopg
import pytest

from state.lock import StoreLock
from state.store import Store


def _wait_for_session_end(url: str, pid: object, timeout_s: float = 10.0) -> None:
    """Wait until the server has ended the backend ``pid`` (asynchronous, and slow on a loaded machine)."""
    deadline = time.monotonic() + timeout_s
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://", 1), autocommit=True) as conn:
        while conn.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone():
            assert time.monotonic() < deadline, f"backend {pid} still alive after {timeout_s}s"
            time.sleep(0.05)


def _lock(store: Store, holder: str, *, pipeline: str = "p", ttl_s: float = 30.0) -> StoreLock:
    return store.run_lock(pipeline, holder=holder, ttl_s=ttl_s)


def test_given_lock_held_when_another_asks_then_it_is_refused_naming_the_holder_until_released(store: Store) -> None:
    first, second = _lock(store, "cli@host-a:11#aaaa"), _lock(store, "cli@host-b:22#bbbb")
    assert first.try_acquire()
    try:
        assert not second.try_acquire()
        assert second.held_by == "cli@host-a:11#aaaa"
        assert _lock(store, "cli@host-c:33#cccc", pipeline="other").try_acquire(), "one lock per pipeline"
    finally:
        first.release()
    assert second.try_acquire(), "released: free for the next run"
    second.release()


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_given_sqlite_lease_not_renewed_when_it_expires_then_another_run_takes_it(store: Store) -> None:
    dead = _lock(store, "cli@host:1#dead", ttl_s=0.3)
    assert dead.try_acquire()  # and never renewed, never released: its process died
    waiting = _lock(store, "cli@host:2#live", ttl_s=30)
    assert not waiting.try_acquire()
    time.sleep(0.4)
    assert waiting.try_acquire()
    waiting.release()


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_given_sqlite_lease_renewed_when_its_ttl_passes_then_it_is_still_held(store: Store) -> None:
    live = _lock(store, "cli@host:1#live", ttl_s=0.3)
    assert live.try_acquire()
    live.start_renewal()
    try:
        time.sleep(0.8)
        assert not _lock(store, "cli@host:2#next").try_acquire()
        assert not live.lost
    finally:
        live.release()


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_given_sqlite_lease_of_a_dead_process_when_taken_over_then_only_that_holder_is_displaced(store: Store) -> None:
    dead = _lock(store, "cli@host:1#dead")
    assert dead.try_acquire()
    other = _lock(store, "cli@host:2#next")
    assert other.acquire(take_over_if=lambda holder: holder == "cli@host:1#dead")
    try:
        assert not _lock(store, "cli@host:3#third").acquire(take_over_if=lambda holder: False)
    finally:
        other.release()


@pytest.mark.postgres
@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)
def test_given_postgres_holder_session_ends_when_another_asks_then_it_is_free(store: Store) -> None:
    holder = _lock(store, "cli@host-a:11#aaaa")
    assert holder.try_acquire()
    other = Store(store.url)  # another process's store: its own connections
    try:
        second = _lock(other, "cli@host-b:22#bbbb")
        assert not second.try_acquire()
        assert second.held_by == "cli@host-a:11#aaaa", "the holder's session is named after it"
        assert holder._connection is not None
        pid = holder._connection.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        holder._connection.invalidate()  # the holder's session dies (its process was killed)
        holder._connection = None
        _wait_for_session_end(store.url, pid)  # the server ends it a moment after its socket closes
        assert second.try_acquire()
        second.release()
    finally:
        other.close()
