"""The store's stamp and the page memos (state/memos.py): every write a plan could see moves the stamp."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from state.memos import Memo
from state.store import LinkWrite, QuarantineWrite, Store


def _moves(store: Store, write: Callable[[], object]) -> bool:
    before = store.stamp()
    write()
    return store.stamp() != before


def _failing(store: Store, reason: str = "email: not an e-mail address", fingerprint: str | None = "f" * 64) -> None:
    store.quarantine("p", "run-1", [QuarantineWrite("s1", "ext-1", "email", reason, fingerprint)])


def test_given_each_writer_when_it_writes_then_the_stamp_moves(store: Store) -> None:
    (identity,) = store.ensure_identities(["ext-1"]).values()

    assert _moves(store, lambda: store.ensure_identities(["ext-2"]))
    assert _moves(store, lambda: store.save_links("a", [LinkWrite(identity, "r1", "f" * 64, True)]))
    assert _moves(store, lambda: store.save_links("a", [LinkWrite(identity, "r1", "e" * 64, True)]))
    assert _moves(store, lambda: store.save_links("a", [LinkWrite(identity, "r1", "e" * 64, False)]))
    assert _moves(store, lambda: store.save_links("a", [LinkWrite(identity, "r1", "e" * 64, False, memory={"b": {}})]))
    assert _moves(store, lambda: _failing(store))
    assert _moves(store, lambda: _failing(store, reason="email: has no domain"))
    assert _moves(store, lambda: _failing(store, reason="email: has no domain", fingerprint=None))
    assert _moves(store, lambda: store.release("p", ["s1"]))


def test_given_no_write_or_the_same_failure_again_when_stamped_then_it_stays(store: Store) -> None:
    store.ensure_identities(["ext-1"])
    _failing(store)

    assert not _moves(store, lambda: store.ensure_identities(["ext-1"]))
    assert not _moves(store, lambda: store.save_links("a", []))
    assert not _moves(store, lambda: store.release("p", []))
    assert not _moves(store, lambda: _failing(store)), "a record failing again the same way changes no plan"
    (entry,) = store.quarantined("p")
    assert entry.attempts == 2, "while its attempts are still counted"
    assert not _moves(store, lambda: store.start_run("p")), "runs are not planned against"


def test_given_a_memo_when_saved_read_and_forgotten_then_it_round_trips(store: Store) -> None:
    assert store.page_memo("p") is None
    memo = Memo("c" * 32, store.stamp(), ("d" * 32, None, "e" * 32))

    store.save_page_memo("p", memo)
    assert store.page_memo("p") == memo
    store.save_page_memo("p", Memo("c" * 32, "other", ()))
    assert store.page_memo("p") == Memo("c" * 32, "other", ())
    store.save_page_memo("p", None)
    assert store.page_memo("p") is None
    store.save_page_memo("p", None)  # forgetting what is not there is no error


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_given_a_memo_when_the_stamp_is_read_then_the_memo_is_not_part_of_it(store: Store) -> None:
    assert not _moves(store, lambda: store.save_page_memo("p", Memo("c", "s", ("d",))))
