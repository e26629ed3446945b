"""A memory's hashes are stored: the hash of a value never changes from one version to the next."""

from __future__ import annotations

import hashlib
import json

import pytest

from worker.engine.twoway import value_hash


def _as_stored(value: object) -> str:
    """The hash as the first memories were written: sha256 of ``json.dumps(value, ensure_ascii=False)``."""
    encoded = json.dumps(None if value == "" else value, ensure_ascii=False)
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest()[:16]


@pytest.mark.parametrize(
    "value",
    ["ana@example.com", 'Ñandú "SA" de CV\n\t\\', "😀 日本", "", None, True, False, 0, 12, 1.5, "0", " "],
)
def test_a_value_hashes_as_memories_stored_it(value: object) -> None:
    assert value_hash(value) == _as_stored(value)
