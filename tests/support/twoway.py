"""Helpers of the two-way tests (``tests/twoway/``): configs, seeds, edits, snapshots, rounds.

- :func:`twoway_config`: the sandbox config with options on chosen pipelines only
  (``conflict``, ``owner`` name connections of one pair, so they cannot go on all twelve);
- :func:`variant`: a fixture customer made a different customer (name, e-mail, RFC), so the
  two sides of a pair can be seeded with customers of their own without a natural-key match;
- :func:`seed_side`: a system seeded with the fixtures it can hold, tagged or not;
- :func:`edit`: a user's edit of one canonical field, in the system's own read shape;
- :func:`snapshot` / :func:`changed_fields`: every record of a system read as canonical customers,
  and what differs between two snapshots;
- :func:`writes`: how many record writes each emulator answered so far.

The vendor keys below are written by hand from the emulators' read shapes, not taken from the
connectors, so an edit is what a user of that system would do in its web app.
"""

from __future__ import annotations

import tomllib
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from connectors.base import Connector
from connectors.model import CANONICAL_FIELDS, Customer
from sandbox.server import Sandbox, sandbox_config
from state.store import Store
from tests.pairs.fixtures import FIXTURES, HELD_BY, seed
from worker.config import AppConfig, parse_config
from worker.engine.results import RunResult
from worker.runner import build_connector

SANDBOX_URL = "http://sandbox.test"
SYSTEMS4 = ("bigcapital", "thredfi", "piriod", "timbrix")

#: canonical field → how a user edits it in each system (read-shape changes for ``admin_edit``).
_EDITS: dict[str, dict[str, Callable[[dict[str, Any], str], dict[str, Any]]]] = {
    "bigcapital": {
        "email": lambda _r, v: {"email": v},
        "phone": lambda _r, v: {"work_phone": v},
        "notes": lambda _r, v: {"note": v},
        "city": lambda _r, v: {"billing_address_city": v},
        "address_line1": lambda _r, v: {"billing_address1": v},
    },
    "thredfi": {
        "email": lambda _r, v: {"email": v},
        "phone": lambda _r, v: {"office_phone": v},
        "notes": lambda _r, v: {"notes": v},
        "city": lambda _r, v: {"city": v},
        "address_line1": lambda _r, v: {"address_line1": v},
    },
    "piriod": {
        "email": lambda _r, v: {"email": v},
        "phone": lambda _r, v: {"phone": v},
        "notes": lambda r, v: {"metadata": {**(r.get("metadata") or {}), "notes": v}},
    },
    "timbrix": {
        "email": lambda _r, v: {"email": v},
        "phone": lambda _r, v: {"phone": v},
        "city": lambda _r, v: {"address": {"city": v, "municipality": v}},
    },
}

#: the record's last-modified stamp, per system (Bigcapital has none: always null).
UPDATED_KEY = {"thredfi": "updated_at", "piriod": "updated", "timbrix": "updatedAt"}


def editable(system: str) -> tuple[str, ...]:
    """The canonical fields :func:`edit` can change in ``system``."""
    return tuple(_EDITS[system])


def twoway_config(
    store_url: str,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    base_url: str = SANDBOX_URL,
    broker_url: str = "redis://127.0.0.1:6379/0",
) -> AppConfig:
    """The sandbox config (every ``SOURCE_to_TARGET``), with ``options[PIPELINE]`` added to that pipeline."""
    raw = tomllib.loads(sandbox_config(base_url, state_url=store_url, broker_url=broker_url))
    for name, extra in (options or {}).items():
        raw["pipelines"][name].update(extra)
    return parse_config(raw, path=Path("sandbox.toml"), environ={})


def twoway_toml(
    store_url: str, options: Mapping[str, Mapping[str, Any]] | None = None, *, base_url: str, broker_url: str
) -> str:
    """:func:`twoway_config` as the text of a config file (for the CLI)."""
    return _merge_options(sandbox_config(base_url, state_url=store_url, broker_url=broker_url), options or {})


def _toml_table(extra: Mapping[str, Any]) -> list[str]:
    return [f"{key} = {_toml(value)}" for key, value in extra.items()]


def _toml(value: Any) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return str(value)


def _merge_options(text: str, options: Mapping[str, Mapping[str, Any]]) -> str:
    """Add ``options[NAME]`` lines right under ``[pipelines.NAME]``, replacing keys the table had."""
    out: list[str] = []
    current = ""  # not in a pipeline table
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            current = stripped[1:-1].removeprefix("pipelines.") if stripped.startswith("[pipelines.") else ""
            out.append(line)
            out += _toml_table(options[current]) if current in options else []
            continue
        key = stripped.partition("=")[0].strip()
        if current in options and key in options[current]:
            continue  # replaced above
        out.append(line)
    return "\n".join(out) + "\n"


def variant(customer: Customer, tag: str) -> Customer:
    """Another customer shaped like ``customer``: ``tag`` in its name, e-mail and tax id (natural keys differ).

    A person's tag goes on the last name too, so the display name still splits into the parts.
    """
    changes: dict[str, Any] = {"name": f"{customer.name} {tag}"}
    if customer.kind == "individual" and customer.last_name:
        changes["last_name"] = f"{customer.last_name} {tag}"
    if customer.company_name:
        changes["company_name"] = f"{customer.company_name} {tag}"
    if customer.email:
        local, _, domain = customer.email.partition("@")
        changes["email"] = f"{local}.{tag.lower()}@{domain}"
    if customer.tax_id and customer.country == "MX":  # an RFC with a homoclave of its own
        changes["tax_id"] = customer.tax_id[:-3] + f"{tag[0].upper()}{tag[-1].upper()}9"
    elif customer.tax_id and customer.tax_id[-1].isdigit():  # a tax id is a natural key: another one
        changes["tax_id"] = customer.tax_id[:-1] + str((int(customer.tax_id[-1]) + len(tag)) % 10)
    return customer.model_copy(update=changes)


def seed_side(sandbox: Sandbox, system: str, tag: str | None = None) -> dict[str, str]:
    """Seed ``system`` with every fixture it can hold (:func:`variant` ones when ``tag``); vendor id → email."""
    keys = sorted(HELD_BY[system])
    customers = {k: variant(FIXTURES[k], tag) if tag else FIXTURES[k] for k in keys}
    made = seed(system, sandbox[system], customers)
    return {rid: str(customers[key].email) for rid, key in made.items()}


def seed_pair(sandbox: Sandbox, one: str, other: str, tag: str = "Beta") -> None:
    """Every emulator emptied, then ``one`` seeded with the fixtures and ``other`` with variants of its own."""
    for emulator in sandbox.emulators.values():
        emulator.reset()
    seed_side(sandbox, one)
    seed_side(sandbox, other, tag)


def edit(sandbox: Sandbox, system: str, record_id: str, field: str, value: str, *, updated: str | None = None) -> None:
    """Edit one canonical field of a stored record as a user of ``system`` would.

    Args:
        updated: pin the record's last-modified stamp (``2030-01-01T00:00:00Z``) after the edit.
    """
    emulator = sandbox[system]
    record = emulator.records[record_id]
    emulator.admin_edit(record, _EDITS[system][field](record, value))
    if updated is not None:
        record[UPDATED_KEY[system]] = updated


def connectors(config: AppConfig, systems: Iterable[str] = SYSTEMS4) -> dict[str, Connector]:
    """A connector per system, for mapping only (no HTTP)."""
    return {system: build_connector(config, system) for system in systems}


Snapshot = dict[str, Customer | None]


def snapshot(sandbox: Sandbox, connector: Connector, system: str) -> Snapshot:
    """Every record of ``system``, read by its connector: vendor id → canonical customer (``None``: unreadable)."""
    return {str(rid): connector.read(raw).customer for rid, raw in sandbox[system].records.items()}


def changed_fields(before: Snapshot, after: Snapshot) -> dict[str, set[str]]:
    """vendor id → the canonical fields that differ (``+`` a new record, ``-`` a gone one)."""
    out: dict[str, set[str]] = {}
    for rid in before.keys() | after.keys():
        old, new = before.get(rid), after.get(rid)
        if old is None or new is None:
            if old != new:
                out[rid] = {"+" if old is None else "-"}
            continue
        diff = {f for f in CANONICAL_FIELDS if getattr(old, f) != getattr(new, f)}
        if diff:
            out[rid] = diff
    return out


def writes(sandbox: Sandbox, systems: Iterable[str] = SYSTEMS4) -> dict[str, int]:
    """How many record writes (POST/PUT/PATCH/DELETE) each emulator answered so far."""
    return {system: len(sandbox[system].writes()) for system in systems}


def duplicated_emails(sandbox: Sandbox, connector: Connector, system: str) -> dict[str, int]:
    """E-mails held by more than one record of ``system`` (each seeded customer has its own)."""
    held = Counter(c.email for c in snapshot(sandbox, connector, system).values() if c is not None)
    return {str(email): n for email, n in held.items() if n > 1}


def by_email(snap: Snapshot) -> dict[str, tuple[str, Customer]]:
    """email → (vendor id, customer) of a snapshot whose e-mails are unique."""
    return {c.email: (rid, c) for rid, c in snap.items() if c is not None and c.email}


SyncFn = Callable[..., Awaitable[RunResult]]


async def run_round(sync: SyncFn, pipelines: Sequence[str], **options: Any) -> list[RunResult]:
    """Run the pipelines one after the other, in order."""
    return [await sync(name, **options) for name in pipelines]


def returning_quarantined(store: Store, pipeline: str, origin: str) -> list[tuple[str, str]]:
    """(external_id, reason) of the customers from ``origin`` that ``pipeline`` quarantined on their way back.

    A customer's identity names the system it was first read from (``timbrix:ORG:ID``).
    """
    found = [(q.external_id or "", q.reason) for q in store.quarantined(pipeline)]
    return [(identity, why) for identity, why in found if identity.startswith(f"{origin}:")]


def failed_runs(results: Iterable[RunResult]) -> list[dict[str, Any]]:
    """The summaries of runs that could not finish (exit 3): a round must never have one."""
    return [r.summary() for r in results if r.exit_code not in (0, 1)]


__all__ = [
    "SANDBOX_URL",
    "SYSTEMS4",
    "UPDATED_KEY",
    "Snapshot",
    "by_email",
    "changed_fields",
    "connectors",
    "duplicated_emails",
    "edit",
    "editable",
    "failed_runs",
    "returning_quarantined",
    "run_cli_together",
    "run_round",
    "seed_side",
    "snapshot",
    "twoway_config",
    "twoway_toml",
    "variant",
    "writes",
]


def run_cli_together(config: Path, pipelines: Sequence[str], *, lead_s: float = 4.0) -> list[tuple[int, str, str]]:
    """Start ``custsync run PIPELINE --json`` for each pipeline in its own process, released at one instant.

    Each process imports everything first, then sleeps until the common start (``lead_s`` from now,
    past every interpreter's start-up). Returns (exit code, stdout, stderr) per pipeline, in order.
    """
    import os
    import subprocess
    import sys
    import time

    start = time.time() + lead_s
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUSTSYNC_")}
    env |= {"CUSTSYNC_LOG_FORMAT": "json", "PYTHONPATH": str(Path(__file__).parents[2])}
    children = []
    for pipeline in pipelines:
        code = (
            "import sys, time\n"
            "from worker.cli import main\n"
            "import worker.lock, worker.sync, state.store\n"  # the run's imports, before the start line
            f"time.sleep(max(0.0, {start} - time.time()))\n"
            f"sys.argv = ['custsync', 'run', {pipeline!r}, '--json', '--config', {str(config)!r}]\n"
            "main()\n"
        )
        children.append(
            subprocess.Popen(
                [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
            )
        )
    results = []
    for child in children:
        stdout, stderr = child.communicate(timeout=150)
        results.append((child.returncode, stdout, stderr))
    return results
