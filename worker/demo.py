"""``custsync demo``: the first thing a new user types.

Serves the four emulators on loopback, seeds customers in the source,
syncs them to the target with the embedded SQLite state store, edits a few
in the source the way a user of that system would (through its admin
surface), syncs again to show that only those changes are written, and says
what to try next. Nothing outside ``workdir`` is touched; no Redis needed.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from sandbox.server import SYSTEMS, BackgroundServer, Sandbox, sandbox_config
from state.store import Store
from worker.config import load_config
from worker.sync import RunResult, run_pipeline

#: How a user edits a record in each system's web app: (phone field, how to deactivate).
_EDITS: dict[str, tuple[str, dict[str, Any] | None]] = {
    "bigcapital": ("work_phone", {"active": False}),
    "thredfi": ("office_phone", {"status": "ARCHIVED"}),
    "piriod": ("phone", {"status": "archived"}),
    "timbrix": ("phone", None),  # Timbrix has no archived state
}


def run_demo(*, source: str, target: str, count: int, workdir: Path, console: Console) -> int:
    """Run the demo; return the exit code.

    Args:
        source: source system name.
        target: target system name.
        count: customers to seed in the source.
        workdir: where the config and the SQLite state go (recreated).
        console: where to tell the user what happens.
    """
    if source not in SYSTEMS or target not in SYSTEMS or source == target:
        console.print(f"error: --source and --target must be two different systems of: {', '.join(SYSTEMS)}")
        return 2
    workdir.mkdir(parents=True, exist_ok=True)
    state_path = workdir / "state.db"
    for leftover in workdir.glob("state.db*"):
        leftover.unlink()
    box = Sandbox()
    seeded = box[source].seed_fake(count)  # type: ignore[attr-defined]
    pipeline = f"{source}_to_{target}"
    with BackgroundServer(box.app) as server:
        config_path = workdir / "custsync.toml"
        config_path.write_text(sandbox_config(server.url, state_url=f"sqlite:///{state_path}"), encoding="utf-8")
        config = load_config(config_path)
        store = Store(config.state.url)
        console.print(f"[bold]custsync demo[/]: sandbox on {server.url}, state in {state_path}", markup=True)
        console.print(f"Seeded {len(seeded)} customers in {source}. Syncing {source} → {target}…\n")
        first = asyncio.run(run_pipeline(config, pipeline, store=store))
        _show(console, "First run: every customer lands once", first)

        edited = _edit_some(server.url, source, box)
        console.print(f"\nEdited {edited} customers in {source}, the way a user of {source} would. Syncing again…\n")
        second = asyncio.run(run_pipeline(config, pipeline, store=store))
        _show(console, "Second run: only the edits are written", second)
        third = asyncio.run(run_pipeline(config, pipeline, store=store))
        console.print(
            f"A third run right away writes nothing: {third.counts.unchanged} unchanged, "
            f"{third.counts.created + third.counts.updated + third.counts.archived} writes."
        )
        quarantined = store.count_quarantined(pipeline)
        reasons = Counter(entry.field for entry in store.quarantined(pipeline))
        store.close()
    if quarantined:
        console.print(
            f"\n{quarantined} customer(s) could not go to {target} and are quarantined with the reason "
            f"(for example a field {target} requires that {source} does not have)."
        )
        console.print("Fields at fault: " + ", ".join(f"{field} ({n})" for field, n in reasons.most_common(5)))
    console.print(
        "\nWhat to try next:\n"
        f"  custsync --help\n"
        f"  custsync status --config {config_path}\n"
        f"  custsync failures {pipeline} --config {config_path}\n"
        f"  custsync demo --source timbrix --target piriod    # any pair of the four systems\n"
        f"  custsync sandbox --seed 50 --write-config sandbox.toml\n"
        f"  custsync run bigcapital_to_thredfi -c sandbox.toml      # in another terminal, while the sandbox runs"
    )
    return 0 if first.status != "failed" and second.status != "failed" else 3


def _edit_some(base_url: str, system: str, box: Sandbox) -> int:
    """Change a phone on three customers and deactivate one, through the admin surface."""
    phone_field, deactivate = _EDITS[system]
    ids = list(box[system].records)[:4]
    with httpx.Client(base_url=f"{base_url}/{system}") as client:
        for n, record_id in enumerate(ids[:3]):
            response = client.patch(f"/_admin/customers/{record_id}", json={phone_field: f"+1555010{n:04d}"})
            response.raise_for_status()
        if deactivate is not None and len(ids) > 3:
            client.patch(f"/_admin/customers/{ids[3]}", json=deactivate).raise_for_status()
            return 4
    return 3


def _show(console: Console, title: str, result: RunResult) -> None:
    table = Table(title=f"{title} ({result.status}, {result.duration_s:.1f}s)")
    names = ("pulled", "created", "updated", "archived", "unchanged", "failed")
    for name in names:
        table.add_column(name, justify="right")
    table.add_row(*(str(getattr(result.counts, n)) for n in names))
    console.print(table)


__all__ = ["run_demo"]
