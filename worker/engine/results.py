"""What a run reports (:class:`RunResult`, :class:`Counts`, :class:`PlannedChange`) and how it is asked to go.

What becomes of each record is in :mod:`worker.engine.outcomes`.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Progress = Callable[[int], None]
#: the :class:`Counts` field a record's outcome counts under.
CountKey = Literal["created", "updated", "archived", "unchanged", "failed", "matched"]


@dataclass
class Counts:
    """Per-run counts; each source record counts exactly once."""

    pulled: int = 0
    created: int = 0
    updated: int = 0
    archived: int = 0
    unchanged: int = 0
    failed: int = 0
    #: found already in the target (lost state store, lost answer, idempotent create) and linked, not created.
    matched: int = 0

    @classmethod
    def of(cls, pulled: int, outcomes: Iterable[CountKey], *, vanished: int = 0) -> Counts:
        """The counts of ``pulled`` records whose outcomes (one each) are given, plus the vanished archived."""
        tally = Counter(outcomes)
        return cls(
            pulled=pulled,
            created=tally["created"],
            updated=tally["updated"],
            archived=tally["archived"] + vanished,
            unchanged=tally["unchanged"],
            failed=tally["failed"],
            matched=tally["matched"],
        )


@dataclass(frozen=True)
class PlannedChange:
    """One change a dry run would make; a would-be quarantine has a ``reason``."""

    action: str
    external_id: str
    source_id: str
    target_id: str | None
    fields: tuple[str, ...] = ()
    reason: str | None = None


@dataclass
class RunResult:
    """What a run did; ``summary()`` is the ``--json`` object."""

    pipeline: str
    run_id: str
    status: str
    counts: Counts
    duration_s: float
    error: str | None = None
    dry_run: bool = False
    planned: list[PlannedChange] = field(default_factory=list)
    #: the run failed on a transient error that outlasted the retry budget: a task may retry it.
    retriable: bool = False

    @property
    def matched(self) -> int:
        """Records found already in the target and linked instead of created."""
        return self.counts.matched

    @property
    def exit_code(self) -> int:
        """0 all went through, 1 some quarantined, 3 could not finish."""
        return {"succeeded": 0, "partial": 1}.get(self.status, 3)

    def summary(self) -> dict[str, Any]:
        """The one object ``--json`` prints (product.md)."""
        out: dict[str, Any] = {"pipeline": self.pipeline, "run_id": self.run_id, "status": self.status}
        out.update(asdict(self.counts))
        out["duration_s"] = round(self.duration_s, 3)
        if self.error:
            out["error"] = self.error
        if self.dry_run:
            out["dry_run"] = True
            out["planned"] = [asdict(p) for p in self.planned]
        return out


@dataclass(frozen=True)
class RunHooks:
    """Callbacks at the engine's two durable points, for tests (the kill tests inject a SIGKILL here).

    Attributes:
        on_write: called right after each remote write, before the state commit that records it.
        on_commit: called right after each state commit of the run.
    """

    on_write: Callable[[], None] | None = None
    on_commit: Callable[[], None] | None = None

    def wrote(self) -> None:
        if self.on_write is not None:
            self.on_write()

    def committed(self) -> None:
        if self.on_commit is not None:
            self.on_commit()


@dataclass(frozen=True)
class EngineOptions:
    """How one run goes; frozen, built by :mod:`worker.runner`.

    Attributes:
        dry_run: plan only; write nothing to the target or the store.
        full: rewrite every linked record even when its fingerprint is unchanged.
        retry_quarantined: push quarantined records even if unchanged (``custsync retry``).
        hooks: test callbacks after each remote write and state commit.
        progress: called with the running ``pulled`` count after each page.
    """

    dry_run: bool = False
    full: bool = False
    retry_quarantined: bool = False
    hooks: RunHooks = field(default_factory=RunHooks)
    progress: Progress | None = None


@dataclass(frozen=True)
class PageShare:
    """What one page of a run shared by several processes did, for the run's coordinator (:mod:`worker.fanout`).

    Attributes:
        counts: the page's counts (``pulled``: its records), each record once, by its final outcome.
        waiting: source ids of creates that wait on a natural-key match: pushed by the coordinator,
            once every page is in (they are counted there, not here).
        not_stored: field → records whose written value the target did not keep.
    """

    counts: Counts
    waiting: tuple[str, ...] = ()
    not_stored: Mapping[str, int] = field(default_factory=dict)


def plus(a: Counts, b: Counts) -> Counts:
    """Two counts added field by field."""
    return Counts(**{f.name: getattr(a, f.name) + getattr(b, f.name) for f in dataclasses.fields(a)})


__all__ = [
    "CountKey",
    "Counts",
    "EngineOptions",
    "PageShare",
    "PlannedChange",
    "Progress",
    "RunHooks",
    "RunResult",
    "plus",
]
