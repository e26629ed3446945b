"""The secrets of this process, remembered by value so that no string leaving custsync shows one.

Shapes (``Bearer ...``, ``sk_...``) catch many secrets, but not an API key
an error body quotes without its prefix, nor a token an endpoint issued.
Every configured secret and every token issued to us is remembered here;
:func:`scrub` replaces each remembered value wherever it appears in a
string, and :func:`scrub_any` does so through nested mappings and lists.
Logs, exception messages, ``--json`` output and the state store call them.

A configured secret is kept for the life of the process. Issued tokens are
kept newest first, :data:`TOKENS_KEPT` of them: a worker that runs for weeks
renews tokens for ever, and the pattern's cost grows with what it holds
(one scrub of a log line: about 2 µs with 8 values, 4 µs with 16, 74 µs with
256). A run holds one token per connection, and an API echoes the token it
was sent; a token evicted has had sixteen newer ones issued after it in this
process, so it belongs to a run long over.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

MASK = "***"
#: shorter values are not masked: they would mask ordinary words and numbers.
_MIN_LENGTH = 6

#: issued tokens kept at most (the newest); configured secrets are all kept.
TOKENS_KEPT = 16

_lock = threading.Lock()
_values: set[str] = set()
_issued: OrderedDict[str, None] = OrderedDict()
_pattern: re.Pattern[str] | None = None
#: counts the changes to what is remembered: text scrubbed under one count may be kept until the next.
_generation = 0


def remember(*values: str | None, issued: bool = False) -> None:
    """Remember secret values: configured credentials, or (``issued``) tokens an endpoint issued to us."""
    fresh = {v for v in values if v and len(v) >= _MIN_LENGTH} - _values
    if issued:
        fresh -= _issued.keys()
    if not fresh:
        return
    global _generation
    with _lock:
        if issued:
            _issued.update(dict.fromkeys(sorted(fresh)))
            while len(_issued) > TOKENS_KEPT:
                _issued.popitem(last=False)
        else:
            _values.update(fresh)
            for value in fresh:
                _issued.pop(value, None)
        _compile()
        _generation += 1


def _compile() -> None:
    """The pattern of every value remembered (under the lock)."""
    global _pattern
    # Longest first, so a token that contains another secret is masked whole.
    alternatives = sorted(_values.union(_issued), key=len, reverse=True)
    _pattern = re.compile("|".join(re.escape(v) for v in alternatives)) if alternatives else None


def forget_all() -> None:
    """Forget every remembered value (tests)."""
    global _pattern, _generation
    with _lock:
        _values.clear()
        _issued.clear()
        _pattern = None
        _generation += 1


def generation() -> int:
    """A count that changes whenever the remembered secrets do (a cache of scrubbed text keys on it)."""
    return _generation


def scrub(text: str) -> str:
    """``text`` with every remembered secret replaced by ``***``."""
    pattern = _pattern
    if pattern is None or not text:
        return text
    return pattern.sub(MASK, text)


def scrub_any(value: Any) -> Any:
    """``value`` with every string in it scrubbed, through mappings, lists and tuples."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, Mapping):
        return {scrub_any(k): scrub_any(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(scrub_any(v) for v in value)
    return value


__all__ = ["MASK", "TOKENS_KEPT", "forget_all", "generation", "remember", "scrub", "scrub_any"]
