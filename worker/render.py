"""Tables of ``status``, ``failures`` and run counts that stay readable at any width.

A table is printed when it fits the console (80 columns when piped, unless
``COLUMNS`` says otherwise); otherwise the same facts are printed as plain
lines, one fact per line, never cut (``c… u…``) and easy to grep.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table

COUNTS = ("pulled", "created", "updated", "archived", "unchanged", "failed")


def fits(console: Console, table: Table) -> bool:
    """Whether ``table`` prints at its natural width, with no column cut or folded."""
    wide = console.options.update_width(10_000)  # measure unconstrained: rich would squeeze to fit
    return Measurement.get(console, wide, table).maximum <= console.width


def counts_table(title: str, counts: Mapping[str, Any] | Any) -> Table:
    """The one-row table of a run's counts (six columns: fits 80)."""
    table = Table(title=title, show_header=True)
    for name in COUNTS:
        table.add_column(name, justify="right", no_wrap=True)
    table.add_row(*(str(_get(counts, n)) for n in COUNTS))
    return table


def print_counts(console: Console, title: str, counts: Mapping[str, Any] | Any) -> None:
    """A run's counts: the table, or one line ``title: pulled 3, created 3, ...``."""
    table = counts_table(title, counts)
    if fits(console, table):
        console.print(table)
    else:
        console.print(f"{title}: " + ", ".join(f"{n} {_get(counts, n)}" for n in COUNTS), markup=False)


def next_run(schedule: str | None, *, now: datetime | None = None) -> datetime | None:
    """When beat next sends a run of a pipeline with this cron ``schedule`` (UTC), or ``None``."""
    if not schedule:
        return None
    from croniter import croniter

    from worker.schedule import parse_cron

    cron = parse_cron(schedule, where="schedule")
    when = croniter(" ".join(cron), now or datetime.now(UTC)).get_next(datetime)
    return when if isinstance(when, datetime) else None


def print_overview(console: Console, report: Sequence[Mapping[str, Any]]) -> None:
    """``custsync status``: one line per pipeline (its last run, quarantine, schedule and last worker)."""
    brief = ("created", "updated", "archived", "failed")
    table = Table(title="Pipelines: last run")
    table.add_column("pipeline", no_wrap=True)
    table.add_column("last run (UTC)", no_wrap=True)
    table.add_column("status", no_wrap=True)
    for col in (*brief, "quarantined"):
        table.add_column(col, justify="right", no_wrap=True)
    for col in ("schedule", "next run (UTC)", "last worker"):
        table.add_column(col, no_wrap=True)
    for entry in report:
        last = entry["runs"][0] if entry["runs"] else None
        tail = (entry.get("schedule") or "on demand", _short(entry.get("next_run")), _worker(entry))
        if last is None:
            table.add_row(entry["pipeline"], "never run", "", *("" for _ in brief), str(entry["quarantined"]), *tail)
        else:
            table.add_row(
                entry["pipeline"],
                _short(last["started_at"]),
                last["status"],
                *(str(last[k]) for k in brief),
                str(entry["quarantined"]),
                *tail,
            )
    if fits(console, table):
        console.print(table)
        return
    for entry in report:
        console.print(_plain_entry(entry), markup=False)


def _plain_entry(entry: Mapping[str, Any]) -> str:
    last = entry["runs"][0] if entry["runs"] else None
    head = f"{entry['pipeline']}: "
    if last is None:
        head += "never run"
    else:
        writes = ", ".join(f"{k} {last[k]}" for k in ("created", "updated", "archived", "failed"))
        head += f"{last['status']} at {_short(last['started_at'])} UTC ({writes})"
    head += f"; {entry['quarantined']} quarantined"
    schedule = entry.get("schedule")
    head += f"; schedule {schedule}, next {_short(entry.get('next_run'))} UTC" if schedule else "; on demand"
    if entry.get("last_worker"):
        head += f"; last worker {_worker(entry)}"
    return head


def print_runs(console: Console, entry: Mapping[str, Any]) -> None:
    """``custsync status PIPELINE``: its last runs, as a table or one line per run."""
    title = f"{entry['pipeline']}: last runs ({entry['quarantined']} quarantined)"
    table = Table(title=title)
    for col in ("started (UTC)", "kind", "status"):
        table.add_column(col, no_wrap=True)
    for col in COUNTS:
        table.add_column(col, justify="right", no_wrap=True)
    for r in entry["runs"]:
        table.add_row(r["started_at"][:19].replace("T", " "), r["kind"], r["status"], *(str(r[k]) for k in COUNTS))
    if not entry["runs"]:
        table.add_row("never run", "", "", *("" for _ in COUNTS))
    schedule = entry.get("schedule")
    footer = f"schedule {schedule}, next run {_short(entry.get('next_run'))} UTC" if schedule else "on demand"
    if entry.get("last_worker"):
        footer += f"; last worker {_worker(entry)}"
    if fits(console, table):
        console.print(table)
    else:
        console.print(title, markup=False)
        for r in entry["runs"]:
            counts = ", ".join(f"{k} {r[k]}" for k in COUNTS)
            console.print(
                f"  {r['started_at'][:19].replace('T', ' ')} {r['kind']} {r['status']}: {counts}", markup=False
            )
        if not entry["runs"]:
            console.print("  never run", markup=False)
    console.print(footer, markup=False)


def print_failures(console: Console, pipeline: str, rows: Iterable[Mapping[str, Any]]) -> None:
    """``custsync failures``: a table when it fits, else one block of lines per record."""
    rows = list(rows)
    title = f"{pipeline}: {len(rows)} quarantined"
    table = Table(title=title)
    for col in ("source id", "external_id", "field"):
        table.add_column(col, no_wrap=True)
    table.add_column("reason", no_wrap=True)
    for r in rows:
        table.add_row(*(escape(v) for v in (r["source_id"], r["external_id"] or "", r["field"], r["reason"])))
    if fits(console, table):
        console.print(table)
        return
    console.print(title, markup=False)
    for r in rows:
        console.print(f"{r['source_id']}  {r['external_id'] or '-'}  {r['field']}", markup=False)
        console.print(f"    {r['reason']}", markup=False)


def _worker(entry: Mapping[str, Any]) -> str:
    """The last worker's host, marked when a later run (from the CLI) is not its own."""
    host = entry.get("last_worker")
    if not host:
        return ""
    runs = entry.get("runs") or []
    if runs and entry.get("last_worker_run_id") not in (None, runs[0]["run_id"]):
        return f"{host} (an earlier run)"
    return str(host)


def _short(iso: str | None) -> str:
    """``2026-12-01T21:40:12+00:00`` → ``2026-12-01 21:40``."""
    return iso[:16].replace("T", " ") if iso else ""


def _get(counts: Mapping[str, Any] | Any, name: str) -> Any:
    return counts[name] if isinstance(counts, Mapping) else getattr(counts, name)


__all__ = [
    "COUNTS",
    "counts_table",
    "fits",
    "next_run",
    "print_counts",
    "print_failures",
    "print_overview",
    "print_runs",
]
