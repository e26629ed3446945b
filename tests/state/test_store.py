"""The state store on SQLite and PostgreSQL: automatic migrations, links, runs, quarantine."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

import state.store as store_module
from state import memory
from state.models import StoredLink
from state.store import LinkWrite, QuarantineWrite, Store, normalise_url

TABLES = {"identities", "links", "runs", "quarantine", "run_leases", "page_memos", "alembic_version"}
#: the newest migration (the run lease table, 9.1); computed, so a rechained head needs no edit here.
HEAD = ScriptDirectory(str(Path(store_module.__file__).parent / "migrations")).get_current_head()


def _version(store: Store) -> list[str]:
    with store.engine.connect() as connection:
        return [row[0] for row in connection.exec_driver_sql("SELECT version_num FROM alembic_version")]


def test_given_empty_database_when_store_opens_then_schema_is_created_at_head(store_url: str) -> None:
    store = Store(store_url)
    try:
        assert set(inspect(store.engine).get_table_names()) >= TABLES
        assert _version(store) == [HEAD]
        columns = {c["name"] for c in inspect(store.engine).get_columns("links")}
        assert {"identity_id", "connection", "remote_id", "status", "fingerprint", "active"} <= columns
    finally:
        store.close()


def test_given_existing_database_when_reopened_then_migration_is_a_no_op_and_data_stays(store: Store) -> None:
    ids = store.ensure_identities(["bigcapital:t:1"])
    store.save_links("thredfi", [LinkWrite(ids["bigcapital:t:1"], "r1", "f" * 64, True)])
    run_id = store.start_run("p")

    again = Store(store.url)
    try:
        again.migrate()  # and once more, explicitly
        assert _version(again) == [HEAD]
        assert again.identities_by_external_id(["bigcapital:t:1"]) == ids
        assert again.links_by_remote("thredfi", ["r1"])["r1"].fingerprint == "f" * 64
        assert again.get_run(run_id) is not None
    finally:
        again.close()


@pytest.mark.slow
def test_given_fresh_database_when_processes_open_it_together_then_each_starts_and_schema_is_created_once(
    store_url: str,
) -> None:
    # Worker and beat start together on a fresh database: neither may crash on the other's migration.
    start = time.time() + 1.5
    code = (
        f"import time; time.sleep(max(0, {start} - time.time())); "
        f"from state.store import Store; Store({store_url!r}).close()"
    )
    processes = [subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True) for _ in range(3)]
    errors = [p.communicate(timeout=60)[1] for p in processes]

    assert [p.returncode for p in processes] == [0, 0, 0], errors
    store = Store(store_url)
    try:
        assert _version(store) == [HEAD]
    finally:
        store.close()


def test_given_new_external_ids_when_ensured_twice_then_same_ids_and_no_duplicates(store: Store) -> None:
    first = store.ensure_identities(["a", "b", "a"])
    second = store.ensure_identities(["b", "c", "a"])

    assert set(first) == {"a", "b"}
    assert second["a"] == first["a"]
    assert second["b"] == first["b"]
    assert len({*first.values(), second["c"]}) == 3


def test_given_more_ids_than_one_chunk_when_read_in_bulk_then_all_are_found(store: Store) -> None:
    external_ids = [f"bigcapital:t:{n}" for n in range(620)]
    ids = store.ensure_identities(external_ids)
    store.save_links("bigcapital", [LinkWrite(ids[e], e.rsplit(":", 1)[1], None, None) for e in external_ids])

    assert len(ids) == 620
    assert len(store.links_by_remote("bigcapital", [str(n) for n in range(620)])) == 620
    assert len(store.links_by_identity("bigcapital", list(ids.values()))) == 620
    assert store.identities_by_id(list(ids.values())) == {v: k for k, v in ids.items()}
    assert store.count_links("bigcapital") == 620


def test_given_pending_intent_when_linked_then_remote_id_and_state_are_saved(store: Store) -> None:
    (identity,) = store.ensure_identities(["x"]).values()
    store.save_links("thredfi", [LinkWrite(identity, None, None, None, status="pending")])
    assert store.links_by_identity("thredfi", [identity])[identity].status == "pending"

    store.save_links("thredfi", [LinkWrite(identity, "r9", "a" * 64, False)])

    link = store.links_by_identity("thredfi", [identity])[identity]
    assert (link.remote_id, link.status, link.fingerprint, link.active) == ("r9", "linked", "a" * 64, False)
    # A later write without a remote id never forgets the one we know.
    store.save_links("thredfi", [LinkWrite(identity, None, "b" * 64, True)])
    assert store.links_by_identity("thredfi", [identity])[identity].remote_id == "r9"


def test_given_saved_link_when_read_in_bulk_then_every_column_comes_back_detached_and_read_only(store: Store) -> None:
    (identity,) = store.ensure_identities(["bigcapital:t:7"]).values()
    store.save_links("thredfi", [LinkWrite(identity, "r7", "c" * 64, False, not_stored=frozenset({"email"}))])
    with store.engine.connect() as connection:
        row = connection.exec_driver_sql("SELECT id, memory FROM links WHERE remote_id = 'r7'").one()

    by_remote = store.links_by_remote("thredfi", ["r7"])["r7"]
    by_identity = store.links_by_identity("thredfi", [identity])[identity]
    (listed,) = [link for link in store.links_of("thredfi") if link.remote_id == "r7"]

    assert by_remote == by_identity == listed
    assert isinstance(by_remote, StoredLink)  # no ORM object: nothing a session tracks, nothing to flush
    assert (by_remote.id, by_remote.identity_id, by_remote.connection, by_remote.status) == (
        row.id,
        identity,
        "thredfi",
        "linked",
    )
    assert (by_remote.fingerprint, by_remote.active, by_remote.not_stored, by_remote.memory) == (
        "c" * 64,
        False,
        "email",
        row.memory,
    )
    assert by_remote.updated_at >= by_remote.created_at
    with pytest.raises(AttributeError):
        by_remote.status = "pending"  # type: ignore[misc]


def test_given_links_of_a_page_when_read_in_one_query_then_they_equal_the_three_reads_they_replace(
    store: Store,
) -> None:
    both, source_only, pending, other = store.ensure_identities(["bc:1", "bc:2", "bc:3", "bc:4"]).values()
    listed = [LinkWrite(both, "1", "s1", True), LinkWrite(source_only, "2", "s2", False)]
    store.save_links("bigcapital", [*listed, LinkWrite(pending, "3", "s3", True)])
    intent = LinkWrite(pending, None, None, None, status="pending")
    store.save_links("thredfi", [LinkWrite(both, "t1", "f1", True), intent, LinkWrite(other, "t4", "f4", True)])
    store.save_links("piriod", [LinkWrite(source_only, "p2", "g2", True)])  # another connection: never the target's
    asked = ["1", "2", "3", "9"]  # "9": no link at all

    page = store.page_links("bigcapital", "thredfi", asked)

    source = store.links_by_remote("bigcapital", asked)
    assert page.source == source
    assert page.external_ids == store.identities_by_id([link.identity_id for link in source.values()])
    assert page.external_ids == {both: "bc:1", source_only: "bc:2", pending: "bc:3"}
    assert page.target == store.links_by_identity("thredfi", list(page.external_ids))
    assert set(page.target) == {both, pending}  # the pending intent too; bc:2 has none in thredfi
    assert page.target[pending].status == "pending"
    assert all(isinstance(link, StoredLink) for link in [*page.source.values(), *page.target.values()])
    assert store.page_links("bigcapital", "thredfi", []) == store.page_links("thredfi", "bigcapital", ["nope"])


def test_given_pending_or_other_links_when_asked_whether_any_is_linked_then_only_a_linked_remote_counts(
    store: Store,
) -> None:
    first, second = store.ensure_identities(["p", "q"]).values()
    store.save_links("thredfi", [LinkWrite(first, None, None, None, status="pending")])
    store.save_links("piriod", [LinkWrite(second, "r1", "a" * 64, True)])
    assert (store.any_linked("thredfi"), store.count_linked("thredfi")) == (False, 0), "an intent is no record"

    store.save_links("thredfi", [LinkWrite(first, "r2", "b" * 64, True)])

    assert (store.any_linked("thredfi"), store.count_linked("thredfi")) == (True, 1)
    assert not store.any_linked("bigcapital")


def test_given_one_batch_when_links_saved_then_each_link_gets_its_own_columns_and_later_writes_win(
    store: Store,
) -> None:
    ids = store.ensure_identities(["a", "b", "c"])
    a, b, c = ids["a"], ids["b"], ids["c"]
    store.save_links(
        "thredfi",
        [
            LinkWrite(a, "ra", "1" * 64, True, not_stored=frozenset({"phone"}), memory={"ledger": {"email": "h1"}}),
            LinkWrite(b, "rb", "2" * 64, True, not_stored=frozenset({"tax_id"})),
        ],
    )

    store.save_links(
        "thredfi",
        [
            # an update that leaves not_stored as it is, one that clears it: two shapes of UPDATE in one save
            LinkWrite(a, None, "3" * 64, False, memory={"ledger": {"phone": "h2"}, "books": {"name": "h3"}}),
            LinkWrite(b, "rb2", "4" * 64, None, not_stored=frozenset()),
            # a new link written twice in the batch: one row, the last write's values, both memories
            LinkWrite(c, None, None, None, status="pending", memory={"ledger": {"email": "h4"}}),
            LinkWrite(c, "rc", "5" * 64, True, memory={"ledger": {"name": "h5"}}),
        ],
    )

    links = store.links_by_identity("thredfi", [a, b, c])
    assert (links[a].remote_id, links[a].fingerprint, links[a].active, links[a].not_stored) == (
        "ra",
        "3" * 64,
        False,
        "phone",
    )
    assert memory.parse(links[a].memory) == {"ledger": {"email": "h1", "phone": "h2"}, "books": {"name": "h3"}}
    assert (links[b].remote_id, links[b].fingerprint, links[b].active, links[b].not_stored) == (
        "rb2",
        "4" * 64,
        None,
        None,
    )
    assert (links[c].remote_id, links[c].status, links[c].fingerprint) == ("rc", "linked", "5" * 64)
    assert memory.parse(links[c].memory) == {"ledger": {"email": "h4", "name": "h5"}}
    assert store.count_links("thredfi") == 3


def test_given_a_transaction_when_it_fails_then_none_of_its_writes_stay_and_when_it_ends_all_do(store: Store) -> None:
    (identity,) = store.ensure_identities(["x"]).values()
    entry = QuarantineWrite("7", "x", "email", "thredfi rejected the record: email: invalid", None)

    def broken_page() -> None:
        with store.transaction():
            store.save_links("thredfi", [LinkWrite(identity, "r1", None, None)])
            store.quarantine("p", "run-1", [entry])
            raise RuntimeError("the page's commit broke half way")

    with pytest.raises(RuntimeError):
        broken_page()

    assert store.links_by_identity("thredfi", [identity]) == {}
    assert store.quarantined("p") == []

    with store.transaction():
        store.save_links("thredfi", [LinkWrite(identity, "r1", None, None)])
        with store.transaction():  # nested: the same transaction
            store.quarantine("p", "run-1", [entry])
    assert store.links_by_identity("thredfi", [identity])[identity].remote_id == "r1"
    assert [q.source_id for q in store.quarantined("p")] == ["7"]


def test_given_failures_when_quarantined_again_then_one_entry_with_attempts_and_released_on_success(
    store: Store,
) -> None:
    entry = QuarantineWrite("7", "bigcapital:t:7", "email", "thredfi rejected the record: email: invalid", "f" * 64)
    store.quarantine("p", "run-1", [entry])
    store.quarantine("p", "run-2", [entry])
    store.quarantine("other", "run-2", [entry])

    (row,) = store.quarantined("p")
    assert (row.source_id, row.field, row.attempts, row.run_id) == ("7", "email", 2, "run-2")
    assert store.count_quarantined("p") == 1
    assert [q.source_id for q in store.quarantined("p", ["7", "8"])] == ["7"]

    store.release("p", ["7"])
    assert store.quarantined("p") == []
    assert store.count_quarantined("other") == 1, "release is per pipeline"


def test_given_runs_when_listed_then_newest_first_with_counts(store: Store) -> None:
    first = store.start_run("p")
    store.finish_run(first, status="succeeded", counts={"pulled": 3, "created": 3})
    second = store.start_run("p", kind="retry")
    store.finish_run(second, status="partial", counts={"pulled": 3, "failed": 1}, error="x")
    store.start_run("q")

    runs = store.runs("p")
    assert [r.id for r in runs] == [second, first]
    assert (runs[0].kind, runs[0].status, runs[0].failed, runs[0].error) == ("retry", "partial", 1, "x")
    assert (runs[1].pulled, runs[1].created, runs[1].finished_at is not None) == (3, 3, True)
    assert len(store.runs()) == 3
    assert store.get_run("nope") is None


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgres://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
        ("sqlite:///x.db", "sqlite:///x.db"),
    ],
)
def test_given_url_when_normalised_then_psycopg3_driver_is_used(url: str, expected: str) -> None:
    assert normalise_url(url) == expected
