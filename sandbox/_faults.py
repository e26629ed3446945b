"""Faults an emulator injects, and its rate limit (see :class:`sandbox._core.Emulator`).

Faults (``FaultRule``) are matched per request, in order:

- ``error_before``: answer ``status`` (500 by default) without applying anything;
- ``error_after``: apply the write, then answer ``status``: a lost response;
- ``rate_limit``: answer 429 with ``Retry-After: retry_after`` when set;
- ``slow``: wait ``delay_s`` seconds, then answer normally;
- ``late``: answer at once, and deliver the answer ``delay_s`` seconds later: it
  shows the records as they stood when asked for, whatever happened since (a
  slow network on the way back, a large page still in transit);
- ``drop``: drop the connection (after applying the write when ``after`` is set);
- ``drop_field``: silently drop ``field`` from a write body before the
  emulator reads it (the write succeeds without it: a target that loses a
  field). ``field`` is a vendor key (``office_phone``, dotted for a nested
  one: ``metadata.notes``) or a canonical field the emulator maps in
  ``field_aliases`` (Thredfi's ``phone`` is ``office_phone``). It combines
  with one other rule on the same request;
- ``kill``: apply the write, then SIGKILL the process serving the emulator
  before it answers (loopback only: in process it would kill the test run;
  tests replace ``Emulator.kill``).

Each rule fires on requests matching ``method`` and the ``path`` regular
expression, ``times`` times at most (``None``: forever), after skipping the
first ``skip`` matches, and with ``probability`` drawn from a seeded RNG so a
fault run is reproducible. ``drop_field`` and ``kill`` without a ``method``
match record writes only (never a read or a token request).

A rate limit (:meth:`Emulator.limit_rate`) is separate from the faults: a
fixed window of ``requests`` per ``window_s`` over every non-admin request,
the way Django REST framework's throttles count. A request over it gets 429
with ``Retry-After`` (whole seconds until the window ends); with
``headers=True`` every answer also carries ``X-RateLimit-Limit``,
``-Remaining`` and ``-Reset``. The benchmark uses it; it is off by default.
"""

from __future__ import annotations

import math
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import httpx

FaultKind = Literal["error_before", "error_after", "rate_limit", "slow", "late", "drop", "drop_field", "kill"]
#: kinds that, without a ``method``, match record writes only.
_WRITE_KINDS = frozenset({"drop_field", "kill"})
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class ConnectionDropped(httpx.ReadError):
    """Raised inside the app to drop the connection.

    In process (``ASGITransport``) the client sees it as the transport error
    it subclasses; over uvicorn the half-sent response makes the server close
    the socket, so the client sees a real protocol error.
    """


@dataclass
class FaultRule:
    """One fault to inject; see the module docstring."""

    kind: FaultKind
    method: str | None = None
    path: str = ".*"
    status: int = 500
    retry_after: float | None = None
    delay_s: float = 0.0
    times: int | None = 1
    skip: int = 0
    probability: float = 1.0
    after: bool = False
    field: str | None = None
    fired: int = 0
    seen: int = 0

    def __post_init__(self) -> None:
        if self.kind == "drop_field" and not self.field:
            raise ValueError("a drop_field fault needs a field")

    def matches(self, method: str, path: str, *, write: bool = True) -> bool:
        """Tell whether this rule applies to a request (does not consume it).

        Args:
            method: the request's method.
            path: the request's path.
            write: whether the request is a record write (not a read or a token request).
        """
        if self.method and self.method.upper() != method.upper():
            return False
        if not self.method and self.kind in _WRITE_KINDS and not write:
            return False
        return re.search(self.path, path) is not None

    @property
    def exhausted(self) -> bool:
        """True once the rule fired ``times`` times."""
        return self.times is not None and self.fired >= self.times


@dataclass
class RateLimit:
    """A fixed-window request limit; see the module docstring."""

    requests: int
    window_s: float = 1.0
    headers: bool = False
    clock: Callable[[], float] = time.monotonic
    window_start: float = 0.0
    hits: int = 0
    refused: int = 0

    def hit(self) -> tuple[float | None, dict[str, str]]:
        """Count one request: (seconds to wait, or None when admitted; headers to send)."""
        now = self.clock()
        if now - self.window_start >= self.window_s:
            self.window_start, self.hits = now, 0
        left = self.window_start + self.window_s - now
        admitted = self.hits < self.requests
        if admitted:
            self.hits += 1
        else:
            self.refused += 1
        headers: dict[str, str] = {}
        if self.headers:
            headers = {
                "X-RateLimit-Limit": str(self.requests),
                "X-RateLimit-Remaining": str(max(self.requests - self.hits, 0)),
                "X-RateLimit-Reset": str(math.ceil(left)),
            }
        return (None if admitted else left), headers


class Faults:
    """The active fault rules of one emulator."""

    def __init__(self, seed: int = 0) -> None:
        self.rules: list[FaultRule] = []
        self._rng = random.Random(seed)  # reproducible fault runs

    def add(self, kind: FaultKind, **options: Any) -> FaultRule:
        """Add a rule and return it (its ``fired`` counter is live)."""
        rule = FaultRule(kind=kind, **options)
        self.rules.append(rule)
        return rule

    def clear(self) -> None:
        """Remove every rule."""
        self.rules.clear()

    def pick(self, method: str, path: str, *, write: bool = True, rewrite: bool = False) -> FaultRule | None:
        """Return the rule that fires for this request, consuming it, or None.

        Args:
            method: the request's method.
            path: the request's path.
            write: whether the request is a record write.
            rewrite: pick among ``drop_field`` rules (which change the body and
                combine with another fault) instead of among the others.
        """
        for rule in self.rules:
            if (rule.kind == "drop_field") != rewrite:
                continue
            if rule.exhausted or not rule.matches(method, path, write=write):
                continue
            rule.seen += 1
            if rule.seen <= rule.skip:
                continue
            if rule.probability < 1.0 and self._rng.random() >= rule.probability:
                continue
            rule.fired += 1
            return rule
        return None


__all__ = ["WRITE_METHODS", "ConnectionDropped", "FaultKind", "FaultRule", "Faults", "RateLimit"]
