"""The store's identities and their links to each connection: bulk reads, writes, counts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from state.memory import merge
from state.models import Identity, Link
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


class Links(Sessions):
    """Identities and links (a part of :class:`~state.store.Store`)."""

    # -- identities and links -------------------------------------------

    def links_by_remote(self, connection: str, remote_ids: Sequence[str]) -> dict[str, Link]:
        """Links of ``connection`` by remote id."""
        found: dict[str, Link] = {}
        with self.session() as s:
            for chunk in chunks(list(remote_ids)):
                query = select(Link).where(Link.connection == connection, col(Link.remote_id).in_(chunk))
                found.update({link.remote_id: link for link in s.exec(query) if link.remote_id})
        return found

    def links_by_identity(self, connection: str, identity_ids: Sequence[int]) -> dict[int, Link]:
        """Links of ``connection`` by identity id."""
        found: dict[int, Link] = {}
        with self.session() as s:
            for chunk in chunks(list(identity_ids)):
                query = select(Link).where(Link.connection == connection, col(Link.identity_id).in_(chunk))
                found.update({link.identity_id: link for link in s.exec(query)})
        return found

    def identities_by_id(self, identity_ids: Sequence[int]) -> dict[int, str]:
        """identity id → external_id."""
        found: dict[int, str] = {}
        with self.session() as s:
            for chunk in chunks(list(identity_ids)):
                for identity in s.exec(select(Identity).where(col(Identity.id).in_(chunk))):
                    assert identity.id is not None
                    found[identity.id] = identity.external_id
        return found

    def identities_by_external_id(self, external_ids: Sequence[str]) -> dict[str, int]:
        """external_id → identity id, for those that exist."""
        found: dict[str, int] = {}
        with self.session() as s:
            for chunk in chunks(list(external_ids)):
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
                    s.add_all(Identity(external_id=e, created_at=now()) for e in missing)
            except IntegrityError:
                for external_id in missing:
                    try:
                        with self.session() as s:
                            s.add(Identity(external_id=external_id, created_at=now()))
                    except IntegrityError:
                        continue
            found.update(self.identities_by_external_id(missing))
        return found

    def save_links(self, connection: str, writes: Iterable[LinkWrite]) -> None:
        """Insert or update the links of ``connection`` in one transaction.

        A write's ``memory`` is merged key by key into the link's (two pipelines of a pair
        running at once each remember their own fields); the rows are locked while merged.
        """
        writes = list(writes)
        if not writes:
            return
        at = now()
        remembering = any(w.memory for w in writes)
        with self.session() as s:
            existing = {}
            for chunk in chunks([w.identity_id for w in writes]):
                query = select(Link).where(Link.connection == connection, col(Link.identity_id).in_(chunk))
                if remembering:
                    query = query.with_for_update()
                existing.update({link.identity_id: link for link in s.exec(query)})
            for w in writes:
                link = existing.get(w.identity_id) or Link(
                    identity_id=w.identity_id, connection=connection, created_at=at
                )
                if w.remote_id is not None or link.remote_id is None:
                    link.remote_id = w.remote_id
                link.fingerprint, link.active, link.status, link.updated_at = (w.fingerprint, w.active, w.status, at)
                if w.not_stored is not None:
                    link.not_stored = ",".join(sorted(w.not_stored)) or None
                if w.memory:
                    link.memory = merge(link.memory, w.memory)
                s.add(link)

    def links_of(self, connection: str) -> list[Link]:
        """Every link of a connection (delete detection, natural-key exclusion)."""
        with self.session() as s:
            return list(s.exec(select(Link).where(Link.connection == connection)))

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


__all__ = ["LinkWrite", "Links"]
