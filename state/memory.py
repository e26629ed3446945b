"""A link's memory: per counterpart connection, a hash of each field's value at the last sync.

Stored as JSON text (``links.memory``): ``{"ledger": {"phone": "3f2a…", "active": "9c1e…"}}``.
Only hashes: no customer value ever reaches the store through it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

Memory = dict[str, dict[str, str]]


def parse(text: str | None) -> Memory:
    """The memory of a link (empty when it has none or the text is not a memory)."""
    if not text:
        return {}
    try:
        found = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(found, dict):
        return {}
    return {
        str(peer): {str(k): str(v) for k, v in fields.items()}
        for peer, fields in found.items()
        if isinstance(fields, dict)
    }


#: ``json.dumps(memory, sort_keys=True, separators=(",", ":"))``, one encoder for every call.
_ENCODED = json.JSONEncoder(sort_keys=True, separators=(",", ":")).encode


def merge(text: str | None, changes: Mapping[str, Mapping[str, str]]) -> str | None:
    """``text``'s memory with the keys of ``changes`` replaced (the others kept)."""
    memory = parse(text)
    for peer, fields in changes.items():
        memory.setdefault(peer, {}).update(fields)
    return _ENCODED(memory) if memory else None


__all__ = ["Memory", "merge", "parse"]
