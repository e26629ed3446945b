"""The state store: the only code that issues SQL.

SQLite by default, PostgreSQL by URL. The schema is created and migrated
with Alembic when the store opens. Every read the engine makes per page is
a bulk read (``IN`` lists in chunks), never a query per record.

:class:`Store` is assembled from its parts, one module each:

- :mod:`state.database`: the URL, the engine, the failures to open (:mod:`state.errors`);
- :mod:`state.runs`: the record of runs;
- :mod:`state.links`: identities and their links to each connection;
- :mod:`state.quarantine`: the records a pipeline could not write;
- :mod:`state.memos`: the store's stamp and the page memos of the no-op fast path;
- :mod:`state.lock`: the run lock.

Every name this module exported before the split is still importable from it.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, inspect

from state.clock import ServerClock
from state.database import mask_url, normalise_url, open_engine, opening, sqlite_file
from state.errors import StoreError, StoreUnreachableError
from state.links import Links, LinkWrite
from state.lock import StoreLock
from state.memos import Memos
from state.quarantine import Quarantine, QuarantineWrite
from state.runs import Runs

_MIGRATION_LOCK = 0x637573747379  # "custsy": the advisory lock key of schema migrations


class Store(Runs, Links, Quarantine, Memos):
    """State store over one database.

    Args:
        url: SQLAlchemy URL (``sqlite:///custsync.db``, ``postgresql+psycopg://...``).
        migrate: bring the schema to the newest revision on opening (the default).
        readonly: open for reading only (dry runs): no migration, and the
            database refuses writes.

    Raises:
        StoreError: the URL is not one custsync supports, or the database
            cannot be opened.
    """

    def __init__(self, url: str, *, migrate: bool = True, readonly: bool = False) -> None:
        self.url = normalise_url(url)
        self.readonly = readonly
        self.engine: Engine = open_engine(self.url, readonly=readonly)
        self.clock = ServerClock(self.engine)
        if migrate:
            with opening(self.url):
                self.migrate()

    @classmethod
    def for_planning(cls, url: str) -> Store:
        """A store a dry run can read without creating or changing anything.

        The real database is opened read-only and never migrated. When it
        does not exist yet, or has no tables, the plan is made against an
        empty state: a migrated in-memory SQLite database.

        Raises:
            StoreError: the URL is wrong, or the server cannot be reached.
        """
        url = normalise_url(url)
        path = sqlite_file(url)
        if url.startswith("sqlite") and path is not None:
            if not path.is_file():
                return cls.empty()
            url = f"sqlite:///file:{path}?mode=ro&uri=true"
        store = cls(url, migrate=False, readonly=True)
        try:
            with opening(url):
                has_tables = inspect(store.engine).has_table("runs")
        except StoreError as exc:
            store.close()
            if "does not exist" in str(exc):  # an unknown PostgreSQL database: nothing planned against yet
                return cls.empty()
            raise
        if not has_tables:
            store.close()
            return cls.empty()
        return store

    @classmethod
    def empty(cls) -> Store:
        """A migrated, empty, in-memory state store (planning against no state)."""
        return cls("sqlite://")

    def migrate(self) -> None:
        """Bring the schema to the newest revision (idempotent)."""
        config = Config()
        config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
        with self.engine.begin() as connection:
            # Processes starting together on a fresh database (worker and beat) must not both
            # create the schema: the first migrates, the others wait, then find it at head.
            if connection.dialect.name == "postgresql":
                connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
            elif connection.dialect.name == "sqlite":
                connection.exec_driver_sql("BEGIN IMMEDIATE")
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
            if connection.dialect.name == "sqlite" and not self.readonly:
                # A migration at head writes nothing; a read-only file must fail here, naming itself,
                # not at the run's first write.
                connection.exec_driver_sql("UPDATE alembic_version SET version_num = version_num")

    def ping(self) -> None:
        """Connect once (``custsync check``).

        Raises:
            StoreError: the database cannot be reached.
        """
        with opening(self.url), self.engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")

    # -- the run lock -------------------------------------------------------

    def run_lock(self, pipeline: str, *, holder: str, ttl_s: float) -> StoreLock:
        """The state-store run lock of a pipeline (see :mod:`state.lock`); not yet taken."""
        return StoreLock(self.engine, pipeline, holder=holder, ttl_s=ttl_s)

    def close(self) -> None:
        """Release every pooled connection."""
        self.engine.dispose()


__all__ = [
    "LinkWrite",
    "QuarantineWrite",
    "Store",
    "StoreError",
    "StoreUnreachableError",
    "mask_url",
    "normalise_url",
    "sqlite_file",
]
