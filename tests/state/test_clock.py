"""The store's time (:mod:`state.clock`): a host whose clock is off still stamps links in the server's time.

On PostgreSQL the store measures this host's offset to the server's clock and
stamps each link's ``updated_at`` with it; on SQLite (a file on this host) the
host's clock is the store's. A skewed host is this process with its clock
moved (the clock is a seam the store owns); the server is the real one.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from state import clock as clock_module
from state.session import now
from state.store import LinkWrite, Store

SKEW = timedelta(seconds=-30)  # this host's clock runs 30 s behind


def _skewed(store: Store, skew: timedelta) -> None:
    store.clock.local = lambda: now() + skew
    store.clock.measure()


def _stamped(store: Store, remote_id: str) -> datetime:
    (link,) = [link for link in store.links_of("thredfi") if link.remote_id == remote_id]
    return link.updated_at if link.updated_at.tzinfo else link.updated_at.replace(tzinfo=UTC)


@pytest.mark.postgres
def test_given_a_host_whose_clock_is_behind_when_it_saves_links_then_they_are_stamped_in_the_servers_time(
    pg_url: str,
) -> None:
    store = Store(pg_url)
    try:
        _skewed(store, SKEW)
        assert abs(store.clock.offset + SKEW) < timedelta(seconds=1), store.clock.offset
        assert timedelta(0) <= store.clock.error < timedelta(seconds=1)
        (identity,) = store.ensure_identities(["bigcapital:t:1"]).values()
        before = datetime.now(UTC)
        store.save_links("thredfi", [LinkWrite(identity, "r1", "f" * 64, True)])
        after = datetime.now(UTC)
        stamped = _stamped(store, "r1")
        # The host's clock said 30 s earlier: the stamp is the server's time, never earlier than the write.
        assert before - timedelta(seconds=1) <= stamped <= after + timedelta(seconds=1), (before, stamped, after)
        # A listing asked for on this host at ``before`` (its own clock) is taken no later than it was.
        assert store.clock.earlier(before + SKEW) <= before + timedelta(milliseconds=50)
    finally:
        store.close()


@pytest.mark.postgres
def test_given_a_clock_stepped_after_the_measure_when_refreshed_then_the_offset_follows(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(pg_url)
    try:
        _skewed(store, timedelta(0))
        assert abs(store.clock.offset) < timedelta(seconds=1)
        store.clock.local = lambda: now() + SKEW  # NTP stepped the clock back
        assert abs(store.clock.later() - (now() + SKEW)) < timedelta(seconds=1), "measured again before it was due"
        monkeypatch.setattr(clock_module, "REFRESH_S", 0.0)
        assert abs(store.clock.later() - now()) < timedelta(seconds=1)
        assert abs(store.clock.offset + SKEW) < timedelta(seconds=1), store.clock.offset
    finally:
        store.close()


def test_given_sqlite_when_stamping_then_the_hosts_clock_is_the_stores(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path}/state.db")
    try:
        store.clock.local = lambda: now() + SKEW
        stamp = store.clock.later()
        assert (store.clock.offset, store.clock.error) == (timedelta(0), timedelta(0))
        assert abs(stamp - (now() + SKEW)) < timedelta(seconds=1)
    finally:
        store.close()
