"""``custsync demo --two-way``: a two-way pair on the sandbox, from the first round to a quiet third.

1. Seeds customers in the first system and runs the pair both ways (round 1).
2. Edits one customer's phone in each system, and the same customer's phone in
   both (a conflict), the way a user of each would (their admin surfaces).
3. Round 2: each edit arrives on the other side; the conflict is held and
   listed with its reason.
4. ``custsync resolve`` keeps the first system's value.
5. Round 3 writes nothing.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from rich.console import Console

from connectors.registry import systems
from sandbox.server import BackgroundServer, Sandbox, sandbox_config
from state.store import Store
from worker.config import AppConfig, load_config
from worker.engine import RunResult
from worker.progress import tally_records
from worker.resolve import resolve
from worker.runner import build_connector, run_pipeline


def run_two_way_demo(*, first: str, second: str, count: int, workdir: Path, console: Console) -> int:
    """Run the two-way demo between ``first`` and ``second``; return the exit code (0, or 3 when a run failed)."""
    known = systems()
    box = Sandbox()
    if first not in box.emulators or second not in box.emulators or first == second:
        console.print(f"error: --source and --target must be two different systems of: {', '.join(box.emulators)}")
        return 2
    workdir.mkdir(parents=True, exist_ok=True)
    state_path = (workdir / "state.db").resolve()
    for leftover in workdir.glob("state.db*"):
        leftover.unlink()
    box[first].seed_fake(count)
    there, back = f"{first}_to_{second}", f"{second}_to_{first}"
    with BackgroundServer(box.app) as server, tally_records(verbose=False):
        config_path = workdir / "custsync.toml"
        config_path.write_text(sandbox_config(server.url, state_url=f"sqlite:///{state_path}"), encoding="utf-8")
        config = load_config(config_path)
        store = Store(config.state.url)
        console.print(f"[bold]custsync demo --two-way[/]: {first} ⇄ {second}, state in {state_path}", markup=True)
        runs = _round(config, store, there, back)
        console.print(f"Round 1: {_said(runs)}")
        pairs = _linked(store, first, second, 3)
        if len(pairs) < 3:
            console.print(f"error: fewer than three customers landed in {second}; try another pair")
            store.close()
            return 3
        (a_here, a_there), (b_here, b_there), (c_here, c_there) = pairs
        phone = {name: known[name].demo_edit.phone_field for name in (first, second)}
        with httpx.Client(base_url=server.url) as client:
            _edit(client, first, a_here, {phone[first]: "+15550101001"})
            _edit(client, second, b_there, {phone[second]: "+15550102002"})
            _edit(client, first, c_here, {phone[first]: "+15550103003"})
            _edit(client, second, c_there, {phone[second]: "+15550104004"})
        console.print(
            f"\nEdited a phone in {first} (customer A), another in {second} (customer B), "
            f"and customer C's phone in both, differently."
        )
        runs += _round(config, store, there, back)
        console.print(f"Round 2: {_said(runs[2:])}")
        arrived = [
            _phone(config, second, a_there) == "+15550101001",
            _phone(config, first, b_here) == "+15550102002",
        ]
        console.print(
            f"  A's new phone {'arrived' if arrived[0] else 'did NOT arrive'} in {second}, "
            f"B's {'arrived' if arrived[1] else 'did NOT arrive'} in {first}."
        )
        held = store.quarantined(there) + store.quarantined(back)
        for entry in held:
            if entry.reason.startswith("conflict:"):
                console.print(f"  held: {entry.external_id}: {entry.reason}")
        others = {entry.external_id for entry in held if not entry.reason.startswith("conflict:")}
        if others:
            console.print(
                f"  ({len(others)} other customers are quarantined for fields one side cannot take: "
                f"`custsync failures {there}` names them)"
            )
        settled = asyncio.run(resolve(config, there, keep=first, store=store))
        for external_id, fields in settled.resolved.items():
            console.print(
                f"\n`custsync resolve {there} --keep {first}`: {external_id}: kept {first}'s {', '.join(fields)}"
            )
        arrived.append(_phone(config, second, c_there) == "+15550103003")
        console.print(f"  C's phone in {second} is now {first}'s" + ("." if arrived[2] else ": NOT as expected."))
        third = _round(config, store, there, back)
        runs += third
        writes = sum(r.counts.created + r.counts.updated + r.counts.archived for r in third)
        console.print(f"\nRound 3 writes {writes or 'nothing'}: {_said(third)}")
        store.close()
    console.print(
        "\nWhat to try next:\n"
        f"  custsync failures {there} --config {config_path}\n"
        f"  custsync status --config {config_path}\n"
        "  README: a two-way configuration with `conflict` and `owner`"
    )
    if any(r.status == "failed" for r in runs):
        return 3
    return 0 if all(arrived) and not writes else 1


def _round(config: AppConfig, store: Store, there: str, back: str) -> list[RunResult]:
    """One round of the pair: there, then back."""
    return [asyncio.run(run_pipeline(config, name, store=store)) for name in (there, back)]


def _said(runs: list[RunResult]) -> str:
    parts = []
    for run in runs:
        c = run.counts
        parts.append(
            f"{run.pipeline} {c.created} created, {c.updated} updated, {c.unchanged} unchanged"
            + (f", {c.failed} held" if c.failed else "")
        )
    return "; ".join(parts)


def _linked(store: Store, first: str, second: str, count: int) -> list[tuple[str, str]]:
    """(id in first, id in second) of ``count`` customers linked in both."""
    there = {link.identity_id: link.remote_id for link in store.links_of(second) if link.remote_id}
    found = [
        (link.remote_id, there[link.identity_id])
        for link in sorted(store.links_of(first), key=lambda link: link.identity_id)
        if link.remote_id and link.identity_id in there
    ]
    return found[:count]


def _phone(config: AppConfig, connection: str, record_id: str) -> str | None:
    """The phone a connection holds for a record, read through its connector."""

    async def read() -> str | None:
        async with build_connector(config, connection) as connector:
            customer = (await connector.get(record_id)).customer
            return customer.phone if customer is not None else None

    return asyncio.run(read())


def _edit(client: httpx.Client, system: str, record_id: str, changes: dict[str, str]) -> None:
    client.patch(f"/{system}/_admin/customers/{record_id}", json=changes).raise_for_status()


__all__ = ["run_two_way_demo"]
