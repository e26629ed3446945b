"""The state a page is planned against, read from the store in bulk before planning."""

from __future__ import annotations

from collections.abc import Sequence

from connectors.base import Connector
from connectors.model import RemoteCustomer
from state.store import Store
from worker.engine.plan import PlanContext, Snapshot, fresh_external_id


def read_snapshot(
    store: Store,
    records: Sequence[RemoteCustomer],
    ids: Sequence[str],
    *,
    pipeline: str,
    source: Connector,
    target: Connector,
    ctx: PlanContext,
) -> Snapshot:
    """Read what the plan of a page needs of the state store.

    Args:
        store: the state store.
        records: the page, numbered (:func:`~worker.engine.plan.positional`).
        ids: the source ids the page was listed with (not the positional ones).
        pipeline: the pipeline's name (its quarantine).
        source: the source connection.
        target: the target connection.
        ctx: the plan's context (how a new external_id is made).
    """
    page = store.page_links(source.name, target.name, list(ids))
    source_links, known, target_links = page.source, page.external_ids, page.target
    listed = set(ids)
    unlinked = [r for r in records if r.id in listed and r.id not in source_links]
    aliases = _aliases(store, source, [r for r in unlinked if not r.external_id])
    wanted = [fresh_external_id(r, aliases, ctx) for r in unlinked if r.customer is not None]
    identities = store.identities_by_external_id(wanted) if wanted else {}
    claims = store.links_by_identity(source.name, list(identities.values())) if identities else {}
    fresh = [i for i in identities.values() if i not in target_links]
    if fresh:
        target_links.update(store.links_by_identity(target.name, fresh))
    quarantined = {q.source_id: q for q in store.quarantined(pipeline, [r.id for r in records])}
    return Snapshot(source_links, known, aliases, identities, claims, target_links, quarantined)


def _aliases(store: Store, source: Connector, records: list[RemoteCustomer]) -> dict[str, str]:
    """source id -> an older external_id form of it that the store holds an identity under.

    After an external-id scheme change (Bigcapital's host-based form), a record
    whose source link is gone keeps the identity its links were made under.
    """
    forms = {r.id: source.external_id_aliases(r.id) for r in records}
    wanted = [alias for found in forms.values() for alias in found]
    if not wanted:
        return {}
    known = store.identities_by_external_id(wanted)
    held = {rid: [a for a in found if a in known] for rid, found in forms.items()}
    return {rid: found[0] for rid, found in held.items() if found}


__all__ = ["read_snapshot"]
