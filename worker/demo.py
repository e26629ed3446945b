"""``custsync demo``: the first thing a new user types.

Serves the registered emulators on loopback, seeds customers in the source,
syncs them to the target with the embedded SQLite state store, edits a few
in the source the way a user of that system would (through its admin
surface), syncs again to show that only those changes are written, and says
what to try next. Nothing outside ``workdir`` is touched; no Redis needed.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from connectors.model import CANONICAL_FIELDS
from connectors.plugin import System
from connectors.registry import systems
from sandbox.server import BackgroundServer, Sandbox, sandbox_config
from state.store import Store
from worker.config import AppConfig, load_config
from worker.engine import RunResult
from worker.progress import tally_records
from worker.runner import run_pipeline

#: Most seeded customers must land for the demo to pass (exit 0).
_MOST = 0.5


def run_demo(*, source: str, target: str, count: int, workdir: Path, console: Console, verbose: bool = False) -> int:
    """Run the demo; return the exit code.

    Args:
        source: source system name.
        target: target system name.
        count: customers to seed in the source.
        workdir: where the config and the SQLite state go (recreated).
        console: where to tell the user what happens.
        verbose: log every record's event instead of a summary.

    Returns:
        0 most customers landed; 1 most were quarantined (the output says why);
        2 a usage error; 3 a run failed.
    """
    known = systems()
    box = Sandbox()
    usable = [name for name in known if name in box.emulators]  # a system whose plug-in ships an emulator
    if source not in usable or target not in usable or source == target:
        console.print(f"error: --source and --target must be two different systems of: {', '.join(usable)}")
        return 2
    workdir.mkdir(parents=True, exist_ok=True)
    # Absolute: a relative SQLite URL in a config file is read against the file's folder.
    state_path = (workdir / "state.db").resolve()
    for leftover in workdir.glob("state.db*"):
        leftover.unlink()
    seeded = _seed(box, source, known[target], count)
    pipeline = f"{source}_to_{target}"
    with BackgroundServer(box.app) as server, tally_records(verbose=verbose):
        config_path = workdir / "custsync.toml"
        config_path.write_text(sandbox_config(server.url, state_url=f"sqlite:///{state_path}"), encoding="utf-8")
        config = load_config(config_path)
        store = Store(config.state.url)
        console.print(f"[bold]custsync demo[/]: sandbox on {server.url}, state in {state_path}", markup=True)
        mix = known[target].demo_seed_note if known[target].demo_seed_countries else ""
        console.print(f"Seeded {len(seeded)} customers in {source}{mix}. Syncing {source} → {target}…\n")
        first = _sync(console, config, pipeline, store, "first run")
        _show(console, f"First run: {_landed(first)}", first)

        edited = _edit_some(server.url, known[source], box)
        console.print(f"\nEdited {edited} customers in {source}, the way a user of {source} would. Syncing again…\n")
        second = _sync(console, config, pipeline, store, "second run")
        writes = _writes(second)
        _show(console, f"Second run: {writes} write(s) for {edited} edited customers", second)
        third = _sync(console, config, pipeline, store, "third run")
        console.print(
            f"A third run right away writes {_writes(third) or 'nothing'}: {third.counts.unchanged} unchanged"
            + (f", {third.counts.failed} still quarantined." if third.counts.failed else ".")
        )
        quarantined = store.count_quarantined(pipeline)
        fields = fields_at_fault(entry.reason for entry in store.quarantined(pipeline))
        store.close()
    if quarantined:
        console.print(
            f"\n{quarantined} customer(s) could not go to {target} and are quarantined, each with its reason "
            f"(a field {target} requires or limits that the {source} record cannot meet). Nothing was sent for them."
        )
        console.print("Fields at fault: " + ", ".join(f"{field} ({n})" for field, n in fields.most_common()))
    mostly_failed = first.counts.pulled > 0 and first.counts.failed > first.counts.pulled * _MOST
    if mostly_failed:
        why = known[target].demo_notes.get(source) or (
            f"{target} requires fields that most {source} customers lack (the fields above); "
            f"`custsync failures {pipeline} --config {config_path}` lists each record and its reason."
        )
        console.print(
            f"\n[bold]Most customers did not land[/] ({first.counts.failed} of {first.counts.pulled}): {why}",
            markup=True,
        )
    console.print(
        "\nWhat to try next:\n"
        f"  custsync --help\n"
        f"  custsync status --config {config_path}\n"
        f"  custsync failures {pipeline} --config {config_path}\n"
        f"  custsync demo {_other_pair(known, source, target)}    # any pair of the {_count(len(usable))} systems\n"
        f"  custsync sandbox --seed 50 --write-config sandbox.toml\n"
        f"  custsync run {_first_pipeline(known, pipeline)} -c sandbox.toml      # in another terminal, "
        "while the sandbox runs"
    )
    if first.status == "failed" or second.status == "failed":
        return 3
    return 1 if mostly_failed else 0


def _sync(console: Console, config: AppConfig, pipeline: str, store: Store, label: str) -> RunResult:
    """One run; on a terminal, a live count of the customers pulled so far."""
    if not console.is_terminal:
        return asyncio.run(run_pipeline(config, pipeline, store=store))
    with console.status(f"{label}: syncing…") as status:

        def progress(pulled: int) -> None:
            status.update(f"{label}: {pulled} customers pulled…")

        return asyncio.run(run_pipeline(config, pipeline, store=store, progress=progress))


def _seed(box: Sandbox, source: str, target: System, count: int) -> list[dict[str, Any]]:
    """Seed the source; with the mix of countries the target declares, if any (``demo_seed_countries``)."""
    emulator: Any = box[source]
    if target.demo_seed_countries and source != target.name:
        return list(emulator.seed_fake(count, countries=target.demo_seed_countries))
    return list(emulator.seed_fake(count))


def fields_at_fault(reasons: Iterable[str]) -> Counter[str]:
    """Count every canonical field named by every reason (``field: why; field: why``)."""
    found: Counter[str] = Counter()
    for reason in reasons:
        names = {part.split(":", 1)[0].strip() for part in reason.split("; ") if ":" in part}
        found.update(name for name in names if name in CANONICAL_FIELDS)
    return found


def _landed(result: RunResult) -> str:
    c = result.counts
    if result.status == "failed":
        return f"failed ({result.error})"
    if not c.failed:
        return "every customer lands once"
    landed = c.created + c.updated + c.archived + c.unchanged
    return f"{landed} of {c.pulled} customers land, {c.failed} quarantined"


def demo_pairs(known: dict[str, System] | None = None) -> list[tuple[str, str]]:
    """The pairs that show the demo well (each system's ``demo_next``), in registry order."""
    known = systems() if known is None else known
    return [(s.name, t) for s in known.values() for t in s.demo_next if t in known and t != s.name]


def _other_pair(known: dict[str, System], source: str, target: str) -> str:
    """A pair worth trying next: the demo pair after this one, never the default one (the first)."""
    pairs = demo_pairs(known)
    if not pairs:
        others = [(s, t) for s in known for t in known if s != t and (s, t) != (source, target)]
        return f"--source {others[0][0]} --target {others[0][1]}" if others else "--help"
    at = pairs.index((source, target)) if (source, target) in pairs else 0
    after = pairs[at + 1 :] + pairs[:at]
    chosen = next((pair for pair in after if pair != pairs[0]), after[0] if after else pairs[0])
    return f"--source {chosen[0]} --target {chosen[1]}"


def _first_pipeline(known: dict[str, System], fallback: str) -> str:
    """The pipeline of the default demo pair (the sandbox config has one for every pair)."""
    pairs = demo_pairs(known)
    return f"{pairs[0][0]}_to_{pairs[0][1]}" if pairs else fallback


def _count(n: int) -> str:
    return {2: "two", 3: "three", 4: "four", 5: "five", 6: "six"}.get(n, str(n))


def _writes(result: RunResult) -> int:
    return result.counts.created + result.counts.updated + result.counts.archived


def _edit_some(base_url: str, system: System, box: Sandbox) -> int:
    """Change a phone on three customers and deactivate one, through the admin surface (its ``demo_edit``)."""
    phone_field, deactivate = system.demo_edit.phone_field, system.demo_edit.deactivate
    ids = list(box[system.name].records)[:4]
    with httpx.Client(base_url=f"{base_url}/{system.name}") as client:
        for n, record_id in enumerate(ids[:3]):
            response = client.patch(f"/_admin/customers/{record_id}", json={phone_field: f"+1555010{n:04d}"})
            response.raise_for_status()
        if deactivate is not None and len(ids) > 3:
            client.patch(f"/_admin/customers/{ids[3]}", json=dict(deactivate)).raise_for_status()
            return 4
    return 3


def _show(console: Console, title: str, result: RunResult) -> None:
    table = Table(title=f"{title} ({result.status}, {result.duration_s:.1f}s)")
    names = ("pulled", "created", "updated", "archived", "unchanged", "failed")
    for name in names:
        table.add_column(name, justify="right")
    table.add_row(*(str(getattr(result.counts, n)) for n in names))
    console.print(table)


__all__ = ["demo_pairs", "fields_at_fault", "run_demo"]
