"""Progress and summaries on a terminal, instead of one log line per record.

product.md: "On an interactive terminal, run, backfill and demo show progress
and a summary instead of one line per record (per-record events then go to
the log at debug level, or with --verbose)."

The engine reports a page's running ``pulled`` count through its progress
callback, and every record it writes or quarantines as a log event. A
:class:`RecordTally` is a structlog processor that counts those events (the
written and failed counts of a live display) and, unless verbose, demotes
them to debug: they are dropped unless the log level is debug. Nothing in the
engine changes; the events stay what they are for JSON logs and metrics.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

import structlog
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from worker.engine import Progress as ProgressCallback

#: Events logged once per record (or page): the ones a terminal summarises.
PER_RECORD_EVENTS = frozenset(
    {
        "record_written",
        "record_quarantined",
        "record_deferred",
        "page_synced",
        "natural_key_matched",
        "identity_recovered",
    }
)


class RecordTally:
    """A structlog processor counting per-record events, and dropping them unless verbose.

    Args:
        verbose: keep per-record events at their own level (``--verbose``).
    """

    def __init__(self, *, verbose: bool = False) -> None:
        self.verbose = verbose
        self.quarantined = 0
        self.events: Counter[str] = Counter()
        # A record may take two writes (a create, then its inactivation): it counts once, as in the run's counts.
        self._written: set[str] = set()
        self._extra_written = 0

    @property
    def written(self) -> int:
        """Records written so far (each once)."""
        return len(self._written) + self._extra_written

    @written.setter
    def written(self, value: int) -> None:
        self._written.clear()
        self._extra_written = value

    def __call__(self, _logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        """Count the event; drop it when it is per-record and the log level is above debug."""
        name = event.get("event")
        if name not in PER_RECORD_EVENTS:
            return event
        self.events[str(name)] += 1
        if name == "record_written":
            self._written.add(str(event.get("external_id")))
        elif name == "record_quarantined":
            self.quarantined += 1
        if self.verbose:
            return event
        if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
            raise structlog.DropEvent
        event["level"] = "debug"
        return event


@contextmanager
def tally_records(*, verbose: bool = False) -> Iterator[RecordTally]:
    """Install a :class:`RecordTally` at the head of structlog's processors for the block."""
    tally = RecordTally(verbose=verbose)
    with structlog_processor(tally):
        yield tally


@contextmanager
def structlog_processor(processor: Any) -> Iterator[None]:
    """Run ``processor`` first on every structlog event within the block."""
    processors = list(structlog.get_config()["processors"])
    structlog.configure(processors=[processor, *processors])
    try:
        yield
    finally:
        current = [p for p in structlog.get_config()["processors"] if p is not processor]
        structlog.configure(processors=current)


def last_pulled(store: Any, pipeline: str) -> int | None:
    """How many records the pipeline's last finished full run pulled: the estimate of a total.

    None of the four APIs gives a total that custsync can trust before the
    scan ends, so the last run's count stands in for one (labelled as such).
    """
    for run in store.runs(pipeline, limit=10):
        if run.status in {"succeeded", "partial"} and run.kind in {"run", "backfill", "retry"} and run.pulled:
            return int(run.pulled)
    return None


class LiveProgress:
    """A live line on stderr: pulled (of the estimated total), written, failed, elapsed, ETA.

    Args:
        label: what runs (``run bigcapital_to_thredfi``).
        console: stderr.
        tally: the counts of written and quarantined records.
        total: the estimated number of source records, or ``None``.
    """

    def __init__(self, label: str, console: Console, tally: RecordTally, total: int | None) -> None:
        self.tally = tally
        self.total = total
        self.started = time.monotonic()
        # Kept under 80 columns for a usual pipeline name: the time left replaces the elapsed time when known.
        columns: list[Any] = [SpinnerColumn(), TextColumn(label)]
        if total:
            columns.append(TextColumn("{task.completed}/~{task.total} pulled,"))
        else:
            columns.append(TextColumn("[bold]{task.completed}[/] customers pulled,"))
        columns.append(TextColumn("{task.fields[written]} written, {task.fields[failed]} failed"))
        columns.append(TimeRemainingColumn() if total else TimeElapsedColumn())
        self.bar = Progress(*columns, console=console, transient=False)
        self.task = self.bar.add_task(label, total=total, written=0, failed=0)

    def __call__(self, pulled: int) -> None:
        """The engine's progress callback: called after each page with the running count."""
        total = self.total
        if total is not None and pulled > total:  # the estimate was low: the bar must not overflow
            total = self.total = pulled
        self.bar.update(
            self.task, completed=pulled, total=total, written=self.tally.written, failed=self.tally.quarantined
        )


@contextmanager
def live_progress(label: str, console: Console, tally: RecordTally, total: int | None) -> Iterator[ProgressCallback]:
    """A :class:`LiveProgress` shown for the block; the other log events still print above it."""
    live = LiveProgress(label, console, tally, total)
    with live.bar:
        yield live
        live.bar.update(live.task, written=tally.written, failed=tally.quarantined)


__all__ = [
    "PER_RECORD_EVENTS",
    "LiveProgress",
    "RecordTally",
    "last_pulled",
    "live_progress",
    "structlog_processor",
    "tally_records",
]
