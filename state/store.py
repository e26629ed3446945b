"""The state store: the only code that issues SQL.

SQLite by default, PostgreSQL by URL. The schema is created and migrated
with Alembic when the store opens. Every read the engine makes per page is
a bulk read (``IN`` lists in chunks), never a query per record.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, func, inspect, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError
from sqlalchemy.pool import StaticPool
from sqlmodel import Session, col, delete, select

from state.lock import StoreLock
from state.models import Identity, Link, QuarantineEntry, Run
from state.redaction import redact as scrub

_CHUNK = 500
_MIGRATION_LOCK = 0x637573747379  # "custsy": the advisory lock key of schema migrations
T = TypeVar("T")


def _now() -> datetime:
    return datetime.now(UTC)


def _chunks(items: Sequence[T], size: int = _CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def normalise_url(url: str) -> str:
    """Accept ``postgresql://`` and ``postgres://`` as the psycopg 3 driver."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


@dataclass(frozen=True)
class LinkWrite:
    """What a push learned about one identity's record in one connection."""

    identity_id: int
    remote_id: str | None
    fingerprint: str | None
    active: bool | None
    status: str = "linked"
    #: canonical fields the connection did not store as written; ``None`` leaves the link's as they are.
    not_stored: frozenset[str] | None = None


@dataclass(frozen=True)
class QuarantineWrite:
    """One record to quarantine."""

    source_id: str
    external_id: str | None
    field: str
    reason: str
    source_fingerprint: str | None


class StoreError(Exception):
    """The state store cannot be opened; one line, naming the URL with its password masked.

    Attributes:
        unreachable: True when the store exists in principle but cannot be
            reached or written (a server down, a missing folder, a read-only
            file, an unknown database): the run could not happen (exit 3).
            False when the URL itself is wrong (exit 2).
    """

    unreachable = False

    def __init__(self, message: str) -> None:
        super().__init__(scrub(message))


class StoreUnreachableError(StoreError, ConnectionError):
    """The state store cannot be reached or written (exit 3). A ConnectionError: the Celery tasks retry it."""

    unreachable = True


def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (also when it does not parse)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return _PASSWORD.sub(r"\1***@", url)


class Store:
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
        self.engine: Engine = _engine(self.url, readonly=readonly)
        if migrate:
            with _opening(self.url):
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
            with _opening(url):
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
        with _opening(self.url), self.engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")

    # -- the run lock -------------------------------------------------------

    def run_lock(self, pipeline: str, *, holder: str, ttl_s: float) -> StoreLock:
        """The state-store run lock of a pipeline (see :mod:`state.lock`); not yet taken."""
        return StoreLock(self.engine, pipeline, holder=holder, ttl_s=ttl_s)

    def close(self) -> None:
        """Release every pooled connection."""
        self.engine.dispose()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session committed on success, rolled back on error."""
        with Session(self.engine, expire_on_commit=False) as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    # -- runs ---------------------------------------------------------------

    def start_run(self, pipeline: str, *, kind: str = "run", dry_run: bool = False) -> str:
        """Record a run as started; return its id."""
        run_id = str(uuid.uuid4())
        with self.session() as s:
            s.add(Run(id=run_id, pipeline=pipeline, kind=kind, dry_run=dry_run, started_at=_now()))
        return run_id

    def finish_run(self, run_id: str, *, status: str, counts: dict[str, int], error: str | None = None) -> None:
        """Record a run's outcome and counts."""
        with self.session() as s:
            run = s.get(Run, run_id)
            if run is None:
                return
            for name, value in counts.items():
                setattr(run, name, value)
            # An API's error body may quote a credential: never store one.
            run.status, run.error, run.finished_at = status, scrub(error) if error else error, _now()
            s.add(run)

    def record_skipped_run(self, pipeline: str, *, kind: str, reason: str) -> str:
        """Record a run that did not start (lock held)."""
        run_id = self.start_run(pipeline, kind=kind)
        self.finish_run(run_id, status="skipped", counts={}, error=reason)
        return run_id

    def runs(self, pipeline: str | None = None, *, limit: int = 10) -> list[Run]:
        """The newest runs, newest first."""
        with self.session() as s:
            query = select(Run).order_by(col(Run.started_at).desc()).limit(limit)
            if pipeline is not None:
                query = query.where(Run.pipeline == pipeline)
            return list(s.exec(query))

    def get_run(self, run_id: str) -> Run | None:
        """One run by id."""
        with self.session() as s:
            return s.get(Run, run_id)

    # -- identities and links -------------------------------------------

    def links_by_remote(self, connection: str, remote_ids: Sequence[str]) -> dict[str, Link]:
        """Links of ``connection`` by remote id."""
        found: dict[str, Link] = {}
        with self.session() as s:
            for chunk in _chunks(list(remote_ids)):
                query = select(Link).where(Link.connection == connection, col(Link.remote_id).in_(chunk))
                found.update({link.remote_id: link for link in s.exec(query) if link.remote_id})
        return found

    def links_by_identity(self, connection: str, identity_ids: Sequence[int]) -> dict[int, Link]:
        """Links of ``connection`` by identity id."""
        found: dict[int, Link] = {}
        with self.session() as s:
            for chunk in _chunks(list(identity_ids)):
                query = select(Link).where(Link.connection == connection, col(Link.identity_id).in_(chunk))
                found.update({link.identity_id: link for link in s.exec(query)})
        return found

    def identities_by_id(self, identity_ids: Sequence[int]) -> dict[int, str]:
        """identity id → external_id."""
        found: dict[int, str] = {}
        with self.session() as s:
            for chunk in _chunks(list(identity_ids)):
                for identity in s.exec(select(Identity).where(col(Identity.id).in_(chunk))):
                    assert identity.id is not None
                    found[identity.id] = identity.external_id
        return found

    def identities_by_external_id(self, external_ids: Sequence[str]) -> dict[str, int]:
        """external_id → identity id, for those that exist."""
        found: dict[str, int] = {}
        with self.session() as s:
            for chunk in _chunks(list(external_ids)):
                for identity in s.exec(select(Identity).where(col(Identity.external_id).in_(chunk))):
                    assert identity.id is not None
                    found[identity.external_id] = identity.id
        return found

    def ensure_identities(self, external_ids: Sequence[str]) -> dict[str, int]:
        """external_id → identity id, creating the missing ones in one transaction.

        Two workers may race to create the same identity: the unique index
        decides, and the loser reads the winner's row.
        """
        wanted = list(dict.fromkeys(external_ids))
        found = self.identities_by_external_id(wanted)
        missing = [e for e in wanted if e not in found]
        if missing:
            try:
                with self.session() as s:
                    s.add_all(Identity(external_id=e, created_at=_now()) for e in missing)
            except IntegrityError:
                for external_id in missing:
                    try:
                        with self.session() as s:
                            s.add(Identity(external_id=external_id, created_at=_now()))
                    except IntegrityError:
                        continue
            found.update(self.identities_by_external_id(missing))
        return found

    def save_links(self, connection: str, writes: Iterable[LinkWrite]) -> None:
        """Insert or update the links of ``connection`` in one transaction."""
        writes = list(writes)
        if not writes:
            return
        now = _now()
        with self.session() as s:
            existing = {}
            for chunk in _chunks([w.identity_id for w in writes]):
                query = select(Link).where(Link.connection == connection, col(Link.identity_id).in_(chunk))
                existing.update({link.identity_id: link for link in s.exec(query)})
            for w in writes:
                link = existing.get(w.identity_id) or Link(
                    identity_id=w.identity_id, connection=connection, created_at=now
                )
                if w.remote_id is not None or link.remote_id is None:
                    link.remote_id = w.remote_id
                link.fingerprint, link.active, link.status, link.updated_at = (w.fingerprint, w.active, w.status, now)
                if w.not_stored is not None:
                    link.not_stored = ",".join(sorted(w.not_stored)) or None
                s.add(link)

    def links_of(self, connection: str) -> list[Link]:
        """Every link of a connection (delete detection, natural-key exclusion)."""
        with self.session() as s:
            return list(s.exec(select(Link).where(Link.connection == connection)))

    def count_links(self, connection: str) -> int:
        """How many records of a connection are linked."""
        with self.session() as s:
            return int(s.exec(select(func.count()).select_from(Link).where(Link.connection == connection)).one())

    # -- quarantine ---------------------------------------------------------

    def quarantine(self, pipeline: str, run_id: str, entries: Iterable[QuarantineWrite]) -> None:
        """Add or refresh quarantine entries (one per source record)."""
        entries = list(entries)
        if not entries:
            return
        now = _now()
        with self.session() as s:
            existing: dict[str, QuarantineEntry] = {}
            for chunk in _chunks([e.source_id for e in entries]):
                query = select(QuarantineEntry).where(
                    QuarantineEntry.pipeline == pipeline, col(QuarantineEntry.source_id).in_(chunk)
                )
                existing.update({q.source_id: q for q in s.exec(query)})
            for e in entries:
                row = existing.get(e.source_id)
                if row is None:
                    row = QuarantineEntry(
                        pipeline=pipeline,
                        source_id=e.source_id,
                        field=e.field,
                        reason=scrub(e.reason)[:2000],
                        run_id=run_id,
                        first_seen=now,
                        last_seen=now,
                        attempts=0,
                    )
                    existing[e.source_id] = row
                row.external_id, row.field, row.reason = e.external_id, e.field, scrub(e.reason)[:2000]
                row.source_fingerprint, row.run_id, row.last_seen = e.source_fingerprint, run_id, now
                row.attempts += 1
                s.add(row)

    def release(self, pipeline: str, source_ids: Sequence[str]) -> None:
        """Remove the quarantine entries of records that went through."""
        with self.session() as s:
            for chunk in _chunks(list(source_ids)):
                s.exec(
                    delete(QuarantineEntry).where(
                        col(QuarantineEntry.pipeline) == pipeline, col(QuarantineEntry.source_id).in_(chunk)
                    )
                )

    def quarantined(self, pipeline: str, source_ids: Sequence[str] | None = None) -> list[QuarantineEntry]:
        """Quarantine entries of a pipeline (optionally only these source ids)."""
        with self.session() as s:
            query = select(QuarantineEntry).where(QuarantineEntry.pipeline == pipeline)
            if source_ids is None:
                return list(s.exec(query.order_by(col(QuarantineEntry.source_id))))
            found: list[QuarantineEntry] = []
            for chunk in _chunks(list(source_ids)):
                found.extend(s.exec(query.where(col(QuarantineEntry.source_id).in_(chunk))))
            return found

    def count_quarantined(self, pipeline: str) -> int:
        """How many records of a pipeline are in quarantine."""
        with self.session() as s:
            query = select(func.count()).select_from(QuarantineEntry).where(QuarantineEntry.pipeline == pipeline)
            return int(s.exec(query).one())

    # -- links: counts and write verification ---------------------------------

    def count_linked(self, connection: str) -> int:
        """How many records of a connection are linked (status ``linked``, with a remote id).

        Pending intents and deleted links are not records: the delete guard's share counts these only.
        """
        with self.session() as s:
            query = (
                select(func.count())
                .select_from(Link)
                .where(Link.connection == connection, Link.status == "linked", col(Link.remote_id).is_not(None))
            )
            return int(s.exec(query).one())

    def not_stored_counts(self, connection: str) -> dict[str, int]:
        """canonical field → how many linked records of a connection did not store it (``custsync status``)."""
        counts: dict[str, int] = {}
        with self.session() as s:
            query = select(Link.not_stored).where(Link.connection == connection, col(Link.not_stored).is_not(None))
            for value in s.exec(query):
                for name in (value or "").split(","):
                    if name:
                        counts[name] = counts.get(name, 0) + 1
        return dict(sorted(counts.items()))


_PASSWORD = re.compile(r"(://[^:/@]*:)[^@]*@")
_SUPPORTED = ("sqlite", "postgresql")


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL, or ``None`` for an in-memory database or a ``file:`` URI."""
    database = url.split(":///", 1)[1].split("?", 1)[0] if ":///" in url else ""
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def _engine(url: str, *, readonly: bool) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError(f"state store {mask_url(url)}: not a database URL (e.g. sqlite:///custsync.db)") from None
    if parsed.get_backend_name() not in _SUPPORTED:
        raise StoreError(
            f"state store {mask_url(url)}: unsupported database {parsed.get_backend_name()!r} "
            "(use sqlite:///FILE or postgresql://...)"
        )
    connect_args: dict[str, Any] = {}
    options: dict[str, Any] = {"pool_pre_ping": True}
    if parsed.get_backend_name() == "sqlite":
        connect_args = {"check_same_thread": False, "timeout": 30}
        if "uri=true" in url:
            connect_args["uri"] = True
        if sqlite_file(url) is None and "mode=ro" not in url:
            options["poolclass"] = StaticPool  # one in-memory database, shared by every thread
    elif readonly:
        connect_args = {"options": "-c default_transaction_read_only=on"}
    try:
        engine = create_engine(url, connect_args=connect_args, **options)
    except (ArgumentError, ImportError, ValueError) as exc:
        raise StoreError(f"state store {mask_url(url)}: {exc}") from None
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas_readonly if readonly else _sqlite_pragmas)
    return engine


@contextmanager
def _opening(url: str) -> Iterator[None]:
    """Turn the driver's failure to open a database into one :class:`StoreError` line."""
    try:
        yield
    except StoreError:
        raise
    except DBAPIError as exc:
        raise _open_error(url, exc) from None
    except OSError as exc:
        raise StoreUnreachableError(f"state store {mask_url(url)}: cannot open: {exc.strerror or exc}") from None


def _open_error(url: str, exc: DBAPIError) -> StoreError:
    detail = " ".join(str(exc.orig).split()) if exc.orig is not None else type(exc).__name__
    masked = mask_url(url)
    path = sqlite_file(url)
    if path is not None and not path.parent.is_dir():
        return StoreUnreachableError(f"state store {masked}: the folder {path.parent} does not exist")
    if "file is not a database" in detail:
        return StoreError(f"state store {masked}: {path} is not a SQLite database")
    if "readonly" in detail or "read-only" in detail:
        return StoreUnreachableError(f"state store {masked}: cannot write ({detail})")
    return StoreUnreachableError(f"state store {masked}: cannot open: {detail[:300]}")


def _sqlite_pragmas_readonly(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA query_only=ON")
    cursor.close()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets `custsync status` read while a run writes; foreign keys are off by default.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


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
