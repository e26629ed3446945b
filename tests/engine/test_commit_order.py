"""A page's commit is one transaction: both pipelines of a pair lock the links of their connections in one order."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from state.store import LinkWrite, Store
from worker.engine.commit import Ledger
from worker.engine.results import RunHooks


class _Recording(Store):
    """The state store, noting which connection's links each save touches and whether a transaction is open."""

    saved: list[tuple[str, bool]]

    def save_links(self, connection: str, writes: Iterable[LinkWrite]) -> None:
        self.saved.append((connection, getattr(self._open, "session", None) is not None))
        super().save_links(connection, writes)


@pytest.mark.parametrize(("source", "target"), [("bigcapital", "thredfi"), ("thredfi", "bigcapital")])
def test_given_either_direction_of_a_pair_when_a_page_commits_then_links_are_saved_in_one_order_in_one_transaction(
    source: str, target: str
) -> None:
    store = _Recording("sqlite://")
    store.saved = []
    committed: list[bool] = []
    ledger = Ledger(
        store,
        pipeline=f"{source}_to_{target}",
        run_id="r",
        source=source,
        target=target,
        hooks=RunHooks(on_commit=lambda: committed.append(True)),
    )
    try:
        ledger.page([], {})
    finally:
        store.close()

    assert store.saved == [("bigcapital", True), ("thredfi", True)]
    assert committed == [True]
