"""A partial update of a target's own record: the fields a two-way write, or ``custsync resolve``, puts in."""

from __future__ import annotations

from connectors.base import Connector
from connectors.model import Customer
from worker.verify import WriteCheck


async def write_fields(
    target: Connector,
    check: WriteCheck,
    remote_id: str,
    held: Customer,
    shaped: Customer,
    fields: frozenset[str],
    external_id: str,
) -> tuple[Customer, frozenset[str], tuple[str, ...]]:
    """Write ``fields`` of ``shaped`` into the target record ``held`` (a two-way update, ``custsync resolve``).

    The target's own record with those fields put in is what is sent: whatever else a write
    carries (a kind, a display name) is the target's own value, never the other side's.

    Returns:
        (the record as stored after, fields it did not store, the actions written).
    """
    values = fields - {"active"}
    stored, missing = held, frozenset[str]()
    done: tuple[str, ...] = ()
    if values:
        merged = target.shape(held.model_copy(update={n: getattr(shaped, n) for n in values}))
        answered = await target.update(remote_id, merged, external_id, fields=values)
        done += ("update",)
        missing, after = await check.check(remote_id, merged, answered, values)
        stored = after or merged
    if "active" in fields and held.active != shaped.active and target.spec.archive:
        await target.set_active(remote_id, shaped.active)
        done += ("reactivate" if shaped.active else "archive",)
        stored = stored.model_copy(update={"active": shaped.active})
    return stored, missing, done


__all__ = ["write_fields"]
