"""State-store tables: identities, their links to each connection, runs, quarantine.

One customer is one :class:`Identity` (its ``external_id``); each copy of it
in a connection is one :class:`Link`. A pipeline reads the source link to
find the identity, then the target link to know what it last wrote there.
The same link serves as a target in one pipeline and a source in the
opposite one, which is what keeps two-way sync from creating copies of
customers that came from the other side.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeAlias

from sqlalchemy import Text, UniqueConstraint
from sqlmodel import Field, SQLModel


def _now() -> datetime:
    return datetime.now(UTC)


class Identity(SQLModel, table=True):
    """One customer across systems."""

    __tablename__ = "identities"

    id: int | None = Field(default=None, primary_key=True)
    external_id: str = Field(max_length=255, unique=True, index=True)
    created_at: datetime = Field(default_factory=_now)


class Link(SQLModel, table=True):
    """One identity's record in one connection.

    ``status`` is ``pending`` from the moment a create is decided (the
    intent, committed before the remote call) until the remote id is known,
    then ``linked``. A pending link found by a later run means a create may
    have happened without its answer reaching us: the identity is recovered
    before anything is created again.
    """

    __tablename__ = "links"
    __table_args__ = (
        UniqueConstraint("identity_id", "connection", name="uq_links_identity_connection"),
        UniqueConstraint("connection", "remote_id", name="uq_links_connection_remote"),
    )

    id: int | None = Field(default=None, primary_key=True)
    identity_id: int = Field(foreign_key="identities.id", index=True)
    connection: str = Field(max_length=100)
    remote_id: str | None = Field(default=None, max_length=100)
    status: str = Field(default="linked", max_length=16)
    fingerprint: str | None = Field(default=None, max_length=64)
    active: bool | None = None
    #: canonical fields the connection did not store as written (comma-separated): never written
    #: or fingerprinted again for this record, in either direction.
    not_stored: str | None = Field(default=None, max_length=1000)
    #: what this connection held at its last sync with each counterpart connection, as JSON
    #: ``{counterpart: {field: value hash}}`` (:mod:`state.memory`): how a two-way pair tells an
    #: edit made here from one made there. Hashes only, never values.
    memory: str | None = Field(default=None, sa_type=Text)
    created_at: datetime = Field(default_factory=_now)
    #: indexed: the store's stamp (:mod:`state.memos`) reads its newest value at every run's start and end.
    updated_at: datetime = Field(default_factory=_now, index=True)


@dataclass(frozen=True, slots=True)
class StoredLink:
    """A link row as the store's bulk reads give it: its values, bound to no session.

    A page is planned against thousands of links; loaded as ORM objects (identity map,
    instrumented attributes, pydantic's private state) they cost a third of a no-op run.
    Changes go through :meth:`state.links.Links.save_links`, never through these.
    """

    id: int
    identity_id: int
    connection: str
    remote_id: str | None
    status: str
    fingerprint: str | None
    active: bool | None
    not_stored: str | None
    memory: str | None
    created_at: datetime
    updated_at: datetime


#: what reading a link gives, read only: an ORM :class:`Link` or a :class:`StoredLink` of the bulk reads.
LinkView: TypeAlias = "Link | StoredLink"


class Run(SQLModel, table=True):
    """One execution of a pipeline."""

    __tablename__ = "runs"

    id: str = Field(primary_key=True, max_length=36)
    pipeline: str = Field(max_length=100, index=True)
    kind: str = Field(default="run", max_length=16)
    status: str = Field(default="running", max_length=16)
    dry_run: bool = False
    pulled: int = 0
    created: int = 0
    updated: int = 0
    archived: int = 0
    unchanged: int = 0
    failed: int = 0
    matched: int = 0
    error: str | None = None
    started_at: datetime = Field(default_factory=_now, index=True)
    finished_at: datetime | None = None


class QuarantineEntry(SQLModel, table=True):
    """A source record that failed permanently, with the reason."""

    __tablename__ = "quarantine"
    __table_args__ = (UniqueConstraint("pipeline", "source_id", name="uq_quarantine_pipeline_source"),)

    id: int | None = Field(default=None, primary_key=True)
    pipeline: str = Field(max_length=100, index=True)
    source_id: str = Field(max_length=100)
    external_id: str | None = Field(default=None, max_length=255)
    field: str = Field(max_length=64)
    reason: str = Field(max_length=2000)
    source_fingerprint: str | None = Field(default=None, max_length=64)
    run_id: str = Field(max_length=36)
    attempts: int = 1
    first_seen: datetime = Field(default_factory=_now)
    last_seen: datetime = Field(default_factory=_now)
    #: when what a plan reads of the entry (its record, field, reason, fingerprint) last changed:
    #: unlike ``last_seen`` and ``attempts``, it stays put while a record fails the same way.
    changed_at: datetime | None = Field(default=None, index=True)


class PageMemo(SQLModel, table=True):
    """What a pipeline's last quiet run listed, page by page: the no-op fast path (:mod:`state.memos`).

    A page listed again with the same digest, while the store is as that run left
    it (``stamp``) and the pipeline as it was configured (``config``), would be
    planned as it was then: every record unchanged. Digests only, never values.
    """

    __tablename__ = "page_memos"

    pipeline: str = Field(primary_key=True, max_length=100)
    #: a digest of what the plan depends on besides the store: the pipeline, its connections, custsync.
    config: str = Field(max_length=64)
    #: the store's stamp when the run ended (:meth:`state.memos.Memos.stamp`).
    stamp: str = Field(max_length=400)
    #: JSON: one entry per listed page, its digest where every record of it was unchanged, else null.
    pages: str = Field(sa_type=Text)
    saved_at: datetime = Field(default_factory=_now)


__all__ = ["Identity", "Link", "PageMemo", "QuarantineEntry", "Run"]
