"""The store's identities and their links to each connection: bulk reads, writes, counts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import Select, bindparam, func, insert, update
from sqlalchemy import select as sa_select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from state.memory import merge
from state.models import Identity, Link, StoredLink
from state.session import Sessions, chunks, now


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
    #: counterpart connection → field → value hash, merged into the link's memory (those keys only).
    memory: Mapping[str, Mapping[str, str]] | None = None


#: the links table's columns, in the order of :class:`~state.models.StoredLink`'s fields.
_STORED = tuple(f.name for f in fields(StoredLink))


def _stored() -> Select[Any]:
    """A select of the links table's columns in :class:`~state.models.StoredLink`'s order."""
    table = Link.__table__  # type: ignore[attr-defined]
    return sa_select(*(table.c[name] for name in _STORED))


@dataclass(frozen=True)
class PageLinks:
    """What planning a page reads of its records' links, in one query (:meth:`Links.page_links`)."""

    #: remote id → the record's link in the source connection.
    source: dict[str, StoredLink]
    #: identity id → external_id, of those source links' identities.
    external_ids: dict[int, str]
    #: identity id → the identity's link in the target connection, where it has one.
    target: dict[int, StoredLink]


def _rows(s: Session, query: Select[Any]) -> list[StoredLink]:
    """The links a :func:`_stored` query selects, detached: no ORM object is loaded."""
    return [StoredLink(*row) for row in s.execute(query)]


def _linked(connection: str) -> tuple[Any, ...]:
    """The conditions of a link that is a record: ``linked``, with a remote id (not an intent, not deleted)."""
    return (Link.connection == connection, Link.status == "linked", col(Link.remote_id).is_not(None))


class Links(Sessions):
    """Identities and links (a part of :class:`~state.store.Store`)."""

    # -- identities and links -------------------------------------------

    def links_by_remote(self, connection: str, remote_ids: Sequence[str]) -> dict[str, StoredLink]:
        """Links of ``connection`` by remote id."""
        table = Link.__table__  # type: ignore[attr-defined]
        found: dict[str, StoredLink] = {}
        with self.session() as s:
            for chunk in chunks(list(remote_ids)):
                query = _stored().where(table.c.connection == connection, table.c.remote_id.in_(chunk))
                found.update({link.remote_id: link for link in _rows(s, query) if link.remote_id})
        return found

    def page_links(self, source: str, target: str, remote_ids: Sequence[str]) -> PageLinks:
        """The source links of ``remote_ids``, their identities' external_ids and target links: one query a chunk.

        As :meth:`links_by_remote`, then :meth:`identities_by_id` and :meth:`links_by_identity` of
        ``target`` on what it found, but read in one statement (a page is planned against them).
        """
        table = Link.__table__  # type: ignore[attr-defined]
        mine, theirs, identity = table.alias("mine"), table.alias("theirs"), Identity.__table__.alias("identity")  # type: ignore[attr-defined]
        width = len(_STORED)
        found = PageLinks({}, {}, {})
        with self.session() as s:
            for chunk in chunks(list(remote_ids)):
                query = (
                    sa_select(*(mine.c[n] for n in _STORED), identity.c.external_id, *(theirs.c[n] for n in _STORED))
                    .select_from(
                        mine.outerjoin(identity, identity.c.id == mine.c.identity_id).outerjoin(
                            theirs, (theirs.c.identity_id == mine.c.identity_id) & (theirs.c.connection == target)
                        )
                    )
                    .where(mine.c.connection == source, mine.c.remote_id.in_(chunk))
                )
                for row in s.execute(query):
                    link = StoredLink(*row[:width])
                    if link.remote_id:
                        found.source[link.remote_id] = link
                    external_id = row[width]
                    if external_id is None:  # no identity row (the foreign key forbids it): nothing more known
                        continue
                    found.external_ids[link.identity_id] = external_id
                    if row[width + 1] is not None:
                        found.target[link.identity_id] = StoredLink(*row[width + 1 :])
        return found

    def links_by_identity(self, connection: str, identity_ids: Sequence[int]) -> dict[int, StoredLink]:
        """Links of ``connection`` by identity id."""
        table = Link.__table__  # type: ignore[attr-defined]
        found: dict[int, StoredLink] = {}
        with self.session() as s:
            for chunk in chunks(list(identity_ids)):
                query = _stored().where(table.c.connection == connection, table.c.identity_id.in_(chunk))
                found.update({link.identity_id: link for link in _rows(s, query)})
        return found

    def identities_by_id(self, identity_ids: Sequence[int]) -> dict[int, str]:
        """identity id → external_id."""
        found: dict[int, str] = {}
        table = Identity.__table__  # type: ignore[attr-defined]
        with self.session() as s:
            for chunk in chunks(list(identity_ids)):
                query = select(table.c.id, table.c.external_id).where(table.c.id.in_(chunk))
                found.update((key, value) for key, value in s.execute(query))
        return found

    def identities_by_external_id(self, external_ids: Sequence[str]) -> dict[str, int]:
        """external_id → identity id, for those that exist."""
        found: dict[str, int] = {}
        table = Identity.__table__  # type: ignore[attr-defined]
        with self.session() as s:
            for chunk in chunks(list(external_ids)):
                query = select(table.c.external_id, table.c.id).where(table.c.external_id.in_(chunk))
                found.update((key, value) for key, value in s.execute(query))
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
            table = Identity.__table__  # type: ignore[attr-defined]
            try:
                with self.session() as s:
                    at = now()
                    s.execute(insert(table), [{"external_id": e, "created_at": at} for e in missing])
            except IntegrityError:
                for external_id in missing:
                    try:
                        with self.session() as s:
                            s.execute(insert(table), [{"external_id": external_id, "created_at": now()}])
                    except IntegrityError:
                        continue
            found.update(self.identities_by_external_id(missing))
        return found

    def save_links(self, connection: str, writes: Iterable[LinkWrite]) -> None:
        """Insert or update the links of ``connection`` in one transaction, in bulk (one statement per shape).

        A write's ``memory`` is merged key by key into the link's (two pipelines of a pair
        running at once each remember their own fields); the rows are locked while merged.
        Writes of one identity apply in order: the last one's values win.
        """
        writes = list(writes)
        if not writes:
            return
        at = self.clock.later()  # compared with when other hosts' listings were asked for
        remembering = any(w.memory for w in writes)
        table = Link.__table__  # type: ignore[attr-defined]
        columns = (table.c.id, table.c.identity_id, table.c.remote_id, table.c.memory)
        with self.session() as s:
            existing: dict[int, dict[str, Any]] = {}
            for chunk in chunks(list(dict.fromkeys(w.identity_id for w in writes))):
                query = select(*columns).where(table.c.connection == connection, table.c.identity_id.in_(chunk))
                if remembering:
                    query = query.with_for_update()
                existing.update({row.identity_id: row._asdict() for row in s.execute(query)})
            updates: dict[int, dict[str, Any]] = {}  # link id -> the columns this save sets
            inserts: dict[int, dict[str, Any]] = {}  # identity id -> a new link's row
            for w in writes:
                held = existing.get(w.identity_id)
                if held is None:
                    held = existing[w.identity_id] = {"id": None, "remote_id": None, "memory": None}
                    row = inserts[w.identity_id] = {
                        "identity_id": w.identity_id,
                        "connection": connection,
                        "remote_id": None,
                        "not_stored": None,
                        "memory": None,
                        "created_at": at,
                    }
                else:
                    row = inserts.get(w.identity_id) or updates.setdefault(held["id"], {"_id": held["id"]})
                if w.remote_id is not None or held["remote_id"] is None:
                    row["remote_id"] = held["remote_id"] = w.remote_id
                row.update(fingerprint=w.fingerprint, active=w.active, status=w.status, updated_at=at)
                if w.not_stored is not None:
                    row["not_stored"] = ",".join(sorted(w.not_stored)) or None
                if w.memory:
                    row["memory"] = held["memory"] = merge(held["memory"], w.memory)
            # Updates first, as the ORM flushed them: a remote id moved off a link frees it for a new one.
            shapes: dict[tuple[str, ...], list[dict[str, Any]]] = {}
            for _, row in sorted(updates.items()):  # by link id, as the ORM flushed: one lock order for every writer
                shapes.setdefault(tuple(sorted(row)), []).append(row)
            for rows in shapes.values():  # SET: the columns the rows carry, WHERE: their "_id"
                s.execute(update(table).where(table.c.id == bindparam("_id")), rows)
            if inserts:
                s.execute(insert(table), list(inserts.values()))

    def links_of(self, connection: str) -> list[StoredLink]:
        """Every link of a connection (delete detection, natural-key exclusion)."""
        table = Link.__table__  # type: ignore[attr-defined]
        with self.session() as s:
            return _rows(s, _stored().where(table.c.connection == connection))

    def count_links(self, connection: str) -> int:
        """How many records of a connection are linked."""
        with self.session() as s:
            return int(s.exec(select(func.count()).select_from(Link).where(Link.connection == connection)).one())

    # -- links: counts and write verification ---------------------------------

    def count_linked(self, connection: str) -> int:
        """How many records of a connection are linked (status ``linked``, with a remote id).

        Pending intents and deleted links are not records: the delete guard's share counts these only.
        """
        with self.session() as s:
            return int(s.exec(select(func.count()).select_from(Link).where(*_linked(connection))).one())

    def any_linked(self, connection: str) -> bool:
        """Whether any record of a connection is linked (as :meth:`count_linked` counts): one row read, not all."""
        with self.session() as s:
            return s.exec(select(Link.id).where(*_linked(connection)).limit(1)).first() is not None

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


__all__ = ["LinkWrite", "Links", "PageLinks"]
