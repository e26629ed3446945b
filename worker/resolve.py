"""``custsync resolve``: settle the held conflicts of a two-way pair with the kept side's values.

A held conflict (``conflict = "hold"``) is a quarantine entry whose reason
names the fields (``conflict: phone edited in books and in ledger since the
last sync``), under either pipeline of the pair. Resolving one customer:

1. reads its record on both sides;
2. writes the kept side's values of the conflicting fields into the other
   side (a partial update of the other side's own record), and checks what
   was stored;
3. remembers on both links that the two sides now agree, and releases the
   entries of both pipelines.

It runs under the named pipeline's state-store lock, so it never writes
while that pipeline runs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import httpx
import structlog

from connectors.base import Connector
from connectors.errors import ConnectorError, FatalError
from state.models import LinkView
from state.store import LinkWrite, Store
from worker.config import AppConfig, ConfigError
from worker.engine.partial import write_fields
from worker.engine.twoway import hashes
from worker.lock import dead_local_process, holder_token, on_holder
from worker.runner import build_connector
from worker.verify import WriteCheck

log = structlog.get_logger("custsync.resolve")

_FIELD = re.compile(r"conflict: (\w+) edited in ")


@dataclass
class Resolution:
    """What ``custsync resolve`` did.

    Attributes:
        resolved: external_id → the fields written.
        failed: external_id → why it stays held (one line).
        unknown: external ids given that have no held conflict.
    """

    resolved: dict[str, tuple[str, ...]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Held:
    external_id: str
    fields: tuple[str, ...]
    #: pipeline → its entry's source id.
    entries: Mapping[str, str]


def held_conflicts(store: Store, pipelines: Sequence[str]) -> dict[str, _Held]:
    """external_id → the conflicts held for it by these pipelines."""
    fields: dict[str, set[str]] = {}
    entries: dict[str, dict[str, str]] = {}
    for name in pipelines:
        for entry in store.quarantined(name):
            found = _FIELD.findall(entry.reason) if entry.reason.startswith("conflict: ") else []
            if not found or entry.external_id is None:
                continue
            fields.setdefault(entry.external_id, set()).update(found)
            entries.setdefault(entry.external_id, {})[name] = entry.source_id
    return {e: _Held(e, tuple(sorted(fields[e])), entries[e]) for e in sorted(fields)}


async def resolve(
    config: AppConfig,
    pipeline: str,
    *,
    keep: str,
    store: Store,
    external_ids: Sequence[str] = (),
    transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
    lock_ttl_s: float = 600.0,
) -> Resolution:
    """Settle held conflicts of ``pipeline``'s pair (or ring edge) with ``keep``'s values.

    Raises:
        ConfigError: the pipeline is not two-way, or ``keep`` is not one of its connections.
        RuntimeError: the pipeline is running (its state-store lock is held).
    """
    p = config.pipeline(pipeline)
    rules = config.topology().rules(pipeline)
    if not rules.two_way:
        raise ConfigError(f"{pipeline} is one-way (no pipeline leads back): it has no conflicts to resolve")
    if keep not in (p.source, p.target):
        raise ConfigError(f"--keep {keep!r}: not a connection of {pipeline} (use {p.source!r} or {p.target!r})")
    other = p.target if keep == p.source else p.source
    names = [pipeline] + ([rules.partner] if rules.partner else [])
    held = held_conflicts(store, names)
    result = Resolution(unknown=[e for e in external_ids if e not in held])
    wanted = [held[e] for e in (external_ids or held) if e in held]
    if not wanted:
        return result
    lock = store.run_lock(pipeline, holder=holder_token("cli"), ttl_s=lock_ttl_s)
    if not lock.acquire(take_over_if=on_holder(dead_local_process)):
        raise RuntimeError(f"{pipeline} is running ({lock.held_by}); resolve when it is done")
    try:
        transports = transports or {}
        kept = build_connector(config, keep, transport=transports.get(keep))
        written = build_connector(config, other, transport=transports.get(other))
        async with kept, written:
            for conflict in wanted:
                try:
                    result.resolved[conflict.external_id] = await _one(store, conflict, kept, written)
                except FatalError:
                    raise
                except (ConnectorError, LookupError) as exc:
                    result.failed[conflict.external_id] = str(exc)
                    continue
                for name, source_id in conflict.entries.items():
                    store.release(name, [source_id])
                log.info(
                    "conflict_resolved",
                    external_id=conflict.external_id,
                    fields=list(conflict.fields),
                    kept=keep,
                    written=other,
                )
    finally:
        lock.release()
    return result


async def _one(store: Store, conflict: _Held, kept: Connector, written: Connector) -> tuple[str, ...]:
    """Write the kept side's values of one customer's conflicting fields; the fields written."""
    external_id, fields = conflict.external_id, frozenset(conflict.fields)
    identity = store.identities_by_external_id([external_id]).get(external_id)
    if identity is None:
        raise LookupError(f"{external_id}: no such customer in the state store")
    kept_link = store.links_by_identity(kept.name, [identity]).get(identity)
    other_link = store.links_by_identity(written.name, [identity]).get(identity)
    if kept_link is None or kept_link.remote_id is None or other_link is None or other_link.remote_id is None:
        raise LookupError(f"{external_id}: not linked in both {kept.name} and {written.name}")
    source = (await kept.get(kept_link.remote_id)).customer
    target = (await written.get(other_link.remote_id)).customer
    if source is None or target is None:
        raise LookupError(f"{external_id}: its record could not be read on both sides")
    check = WriteCheck(written)
    stored, _, _ = await write_fields(
        written, check, other_link.remote_id, target, written.shape(source), fields, external_id
    )
    store.save_links(
        kept.name,
        [_remember(kept_link, {written.name: hashes(source, fields)})],
    )
    store.save_links(written.name, [_remember(other_link, {kept.name: hashes(stored, fields)})])
    return tuple(sorted(fields))


def _remember(link: LinkView, memory: Mapping[str, Mapping[str, str]]) -> LinkWrite:
    """A link written again as it is, with ``memory`` merged into its memory."""
    return LinkWrite(link.identity_id, link.remote_id, link.fingerprint, link.active, status=link.status, memory=memory)


__all__ = ["Resolution", "held_conflicts", "resolve"]
