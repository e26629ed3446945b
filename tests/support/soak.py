"""The kill soak's parts: seed the emulators, SIGKILL a real ``custsync run``, check the target.

Each kill point is one scenario on fresh emulator state and a fresh SQLite
state store:

1. seed the source emulator (in this process, served on loopback by
   :class:`~sandbox.server.BackgroundServer`, so it outlives the killed child);
2. in the ``update`` phase only: sync once cleanly, then edit, archive,
   re-activate and add source customers, so the killed run mixes creates,
   updates and (in)activations;
3. run ``custsync run PIPELINE`` through ``scripts/crashing_run.py write:N`` (or
   ``commit:N``), which injects a hook into the engine: it SIGKILLs itself right after its Nth remote write
   (before the state commit that records it) or its Nth state commit;
4. run it again without the crash, and check that every source customer is
   in the target exactly once with current data (:func:`verify`), and that a
   third run writes nothing.

The reliability tests use these helpers (``seed_source``, ``config_text``,
``verify_async``, ``Harness``...); ``scripts/kill_soak.py`` is the command line
of the long soak (1,000+ points) on top of them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import subprocess
import sys
import threading
import time
import tomllib
from collections import Counter
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from connectors.base import Connector
from connectors.model import RemoteCustomer
from sandbox.fake import fake_customers
from sandbox.server import BackgroundServer, Sandbox, sandbox_config
from state.store import Store
from tests.support.parallel import redis_url
from worker.config import AppConfig, parse_config
from worker.diff import apply_defaults
from worker.runner import build_connector
from worker.sync import RunResult, run_pipeline

ROOT = Path(__file__).resolve().parents[2]

#: short name → (source, target). One pair into each target system.
PAIRS: dict[str, tuple[str, str]] = {
    "bt": ("bigcapital", "thredfi"),
    "tb": ("thredfi", "bigcapital"),
    "tp": ("thredfi", "piriod"),
    "tx": ("thredfi", "timbrix"),
    "pb": ("piriod", "bigcapital"),
    "xt": ("timbrix", "thredfi"),
}
#: Timbrix needs CFDI codes no other system holds: the pipeline supplies them.
TIMBRIX_DEFAULTS = 'defaults = { tax_system = "601", invoice_use = "G03" }'


def custsync_executable() -> str:
    """The ``custsync`` console script next to this interpreter."""
    found = Path(sys.executable).parent / "custsync"
    if not found.exists():
        raise SystemExit(f"no custsync console script at {found}: install the package (make install)")
    return str(found)


def write_config(path: Path, base_url: str, state_url: str, **options: Any) -> str:
    """Write :func:`config_text` to ``path``; returns the text."""
    text = config_text(base_url, state_url, **options)
    path.write_text(text, encoding="utf-8")
    return text


def config_text(
    base_url: str,
    state_url: str,
    *,
    connections: Mapping[str, Mapping[str, Any]] | None = None,
    broker_url: str | None = None,
    suffix: str = "",
    **pipeline_options: Any,
) -> str:
    """The sandbox config, with Timbrix defaults and extra options on every pipeline.

    ``connections`` adds options to connections by name (``{"thredfi": {"timeout_s": 1}}``);
    ``suffix`` is appended to every pipeline's name (``bigcapital_to_thredfi_k1``).
    ``broker_url`` defaults to this xdist worker's database 0 or 1: runs through the CLI take
    their pipeline's lock there, and two workers' runs of one pipeline must not skip each other.
    """
    broker_url = broker_url or redis_url(0, 1)
    text = sandbox_config(base_url, state_url=state_url, broker_url=broker_url)
    lines: list[str] = []
    has_defaults = {table for table, body in tomllib.loads(text).get("pipelines", {}).items() if "defaults" in body}
    section = ""
    for line in text.splitlines():
        if line.startswith("["):
            section = line
        elif section.startswith("[pipelines.") and line.split(" = ", 1)[0] in pipeline_options:
            continue  # the caller's value replaces the sandbox's (TOML forbids a key twice)
        lines.append(line)
        if line.startswith("[connections.") and line[13:-1] in (connections or {}):
            lines.extend(f"{key} = {_toml(value)}" for key, value in (connections or {})[line[13:-1]].items())
        if line.startswith("[pipelines.") and line.endswith("_to_timbrix]") and line[11:-1] not in has_defaults:
            lines.append(TIMBRIX_DEFAULTS)  # older sandbox configs leave them out
        if line.startswith("[pipelines."):
            lines[-1] = f"{line[:-1]}{suffix}]"
            lines.extend(f"{key} = {_toml(value)}" for key, value in pipeline_options.items())
    return "\n".join(lines) + "\n"


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return str(value)


def load(text: str) -> AppConfig:
    """Parse a config text written by :func:`write_config`."""
    return parse_config(tomllib.loads(text), path=Path("kill.toml"), environ={})


# -- seeding ------------------------------------------------------------------


def seed_source(box: Sandbox, pair: str, count: int, *, seed: int = 7) -> None:
    """Seed the pair's source with ``count`` customers the target can take."""
    source, target = PAIRS[pair]
    if source == "thredfi" and target == "timbrix":
        seed_thredfi_mexicans(box, count, seed=seed)
    else:
        box[source].seed_fake(count, seed=seed)


def seed_thredfi_mexicans(box: Sandbox, count: int, *, seed: int = 7) -> None:
    """Thredfi customers with a complete Mexican address and RFC (for Timbrix)."""
    for fake in fake_customers(count, seed=seed, countries=("MX",)):
        box["thredfi"].admin_seed(
            {
                "individual_name": fake.name if fake.kind == "individual" else "",
                "company_name": fake.company_name or "",
                "email": fake.email,
                "office_phone": fake.phone,
                "address_line1": fake.address_line1,
                "address_line2": fake.address_line2,
                "city": fake.city,
                "state_county": fake.state,
                "postal_code": fake.postal_code,
                "country": "MX",
                "vat_number": fake.tax_id,
                "notes": fake.notes,
                "status": "active" if fake.active else "archived",
            }
        )


def mutate_source(box: Sandbox, pair: str, rng: random.Random, *, added_seed: int | None = 99) -> None:
    """Edit about a third of the source, flip a few active flags, add a few customers.

    ``added_seed=None`` adds none.

    E-mails and tax ids stay as they are: they are the natural keys by
    which a target without an identity slot is recovered.
    """
    source, _ = PAIRS[pair]
    emulator = box[source]
    records = list(emulator.records.values())
    for n, record in enumerate(records):
        if n % 3 == 0:
            emulator.admin_edit(record, _edit(source, record, rng))
        elif n % 7 == 1 and source != "timbrix":
            emulator.admin_edit(record, _flip(source, record))
    if added_seed is None:
        return
    extra = max(2, len(records) // 10)
    if source == "thredfi" and pair == "tx":
        before = set(emulator.records)
        seed_thredfi_mexicans(box, extra, seed=added_seed)
        for record_id in set(emulator.records) - before:  # keep e-mails unique
            record = emulator.records[record_id]
            emulator.admin_edit(record, {"email": f"new{record_id[:8]}@example.mx"})
    else:
        created = emulator.seed_fake(extra, seed=added_seed)
        for record in created:
            emulator.admin_edit(record, _new_email(source, str(record["id"])))


def _edit(system: str, record: Mapping[str, Any], rng: random.Random) -> dict[str, Any]:
    phone = f"+1555{rng.randint(1000000, 9999999)}"
    if system == "bigcapital":
        return {"work_phone": phone, "note": f"edited {rng.randint(0, 10**6)}"}
    if system == "thredfi":
        return {"office_phone": phone, "notes": f"edited {rng.randint(0, 10**6)}"}
    if system == "piriod":
        return {"phone": phone[:16], "zip_code": str(rng.randint(10000, 99999))}
    return {"phone": phone}


def _flip(system: str, record: Mapping[str, Any]) -> dict[str, Any]:
    if system == "bigcapital":
        return {"active": not record["active"]}
    if system == "thredfi":
        return {"status": "active" if record["is_archived"] else "archived"}
    return {"status": "active" if record["status"] == "archived" else "archived"}


def _new_email(system: str, record_id: str) -> dict[str, Any]:
    return {"email": f"new{record_id}@example.com"}


# -- checking the target ------------------------------------------------------


@dataclass
class Check:
    """What :func:`verify` found; clean when every list is empty."""

    expected: int = 0
    found: int = 0
    duplicates: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.duplicates or self.missing or self.stale or self.extra)

    def __str__(self) -> str:
        return (
            f"expected={self.expected} found={self.found} duplicates={len(self.duplicates)} "
            f"missing={len(self.missing)} stale={len(self.stale)} extra={len(self.extra)}"
            + ("" if self.clean else f" e.g. {(self.duplicates + self.missing + self.stale + self.extra)[:3]}")
        )


async def _all(connector: Connector) -> list[RemoteCustomer]:
    return [record async for page in connector.pages() for record in page]


def _key(target: Connector, customer: Any) -> str | None:
    """How to find a record in a target without an identity slot: e-mail, tax id, else name."""
    value = customer.email or customer.tax_id
    return "".join(value.split()).lower() if value else f"name:{customer.name}"


async def verify_async(box: Sandbox, config: AppConfig, pipeline: str, *, skip: Iterable[str] = ()) -> Check:
    """Every valid source customer is in the target exactly once, with current data.

    The target is matched by its identity slot (Thredfi, Piriod) or, where it
    has none (Bigcapital, Timbrix), by e-mail (the seeded e-mails are unique),
    independently of the state store. Records the target cannot take (the
    engine quarantines them) are not expected, nor those whose source ids are
    in ``skip``; anything else in the target is an ``extra``.
    """
    skipped = set(skip)
    spec = config.pipeline(pipeline)
    transport = httpx.ASGITransport(app=box.app)
    source = build_connector(config, spec.source, transport=transport)
    target = build_connector(config, spec.target, transport=transport)
    async with source, target:
        sources, targets = await _all(source), await _all(target)
    slot = target.spec.identity_slot
    by_key: dict[str, list[RemoteCustomer]] = {}
    for record in targets:
        if record.customer is None:
            continue
        key = record.external_id if slot else _key(target, record.customer)
        by_key.setdefault(key or f"?{record.id}", []).append(record)
    check = Check(found=len(targets))
    seen: set[str] = set()
    for record in sources:
        if record.customer is None or record.id in skipped:
            continue
        shaped = target.shape(apply_defaults(record.customer, spec.defaults), truncate=spec.truncate)
        if target.problems(shaped):
            continue
        check.expected += 1
        key = (record.external_id or source.external_id_for(record.id)) if slot else _key(target, shaped)
        if key is None:
            raise AssertionError(f"source record {record.id} has no e-mail to find it by")
        seen.add(key)
        held = by_key.get(key, [])
        if not held:
            check.missing.append(key)
            continue
        if len(held) > 1:
            check.duplicates.append(key)
        copy = held[0]
        assert copy.customer is not None
        if differences(target, shaped, copy.customer, archive=spec.archive):
            check.stale.append(key)
    check.extra = sorted(set(by_key) - seen)
    return check


#: (target system, field): the target fills the field itself when we send none
#: (Piriod defaults the currency from the country).
TARGET_DEFAULTED = frozenset({("piriod", "currency")})


def differences(target: Connector, shaped: Any, held: Any, *, archive: bool = True) -> list[str]:
    """Canonical fields where the target's record differs from what the source says it should hold.

    ``kind`` is left out where the target cannot hold it (Piriod reads every
    record back as a company); ``active`` counts where the target archives.
    """
    held = target.shape(held)
    fields = sorted(target.spec.fields | {"name"} | ({"kind"} if target.system != "piriod" else set()))
    out = [
        f
        for f in fields
        if getattr(shaped, f) != getattr(held, f)
        and not (getattr(shaped, f) is None and (target.system, f) in TARGET_DEFAULTED)
    ]
    if target.spec.archive and archive and shaped.active != held.active:
        out.append("active")
    return out


def verify(box: Sandbox, config: AppConfig, pipeline: str) -> Check:
    """:func:`verify_async` from synchronous code (threads of the soak)."""
    return asyncio.run(verify_async(box, config, pipeline))


# -- one kill point -----------------------------------------------------------


@dataclass
class Outcome:
    """One kill point's result."""

    pair: str
    phase: str
    crash_at: str
    killed: bool
    check: Check | None = None
    problem: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.problem is None and self.check is not None and self.check.clean

    def __str__(self) -> str:
        state = "ok" if self.ok else "FAIL"
        how = "killed" if self.killed else "not reached"
        return f"{state:4} {self.pair} {self.phase:6} {self.crash_at:9} {how:11} {self.check} {self.problem or ''}"


_MIGRATING = threading.Lock()
CRASHING_RUN = ROOT / "scripts" / "crashing_run.py"
#: The Redis database of the harnesses' pipeline locks (no other test uses it).
LOCK_REDIS = "redis://127.0.0.1:6379/2"
_HARNESSES = 0


class Harness:
    """One sandbox served on loopback, reused (reset) across kill points.

    Args:
        workdir: where configs and SQLite state files go.
        count: customers seeded per scenario.
        recover_in_process: run the recovery run in this process rather than as a
            second ``custsync`` process (faster; the killed run is always a process).
    """

    def __init__(self, workdir: Path, *, count: int = 30, recover_in_process: bool = False) -> None:
        self.workdir = workdir
        self.count = count
        self.recover_in_process = recover_in_process
        self.box = Sandbox()
        self.server = BackgroundServer(self.box.app)
        self.exe = custsync_executable()
        self._n = 0
        # ``custsync run`` takes the pipeline's Redis lock: each harness names its pipelines
        # apart (a suffix), so parallel harnesses, or a soak next to the CI test, never skip
        # each other; a killed child's lock is taken over by the next run (a dead local holder).
        with _MIGRATING:
            global _HARNESSES
            _HARNESSES += 1
            self.suffix = f"_k{os.getpid()}x{_HARNESSES}"

    def __enter__(self) -> Harness:
        # A killed child leaves requests half-read: uvicorn logs each as an error.
        logging.getLogger("uvicorn.error").setLevel(logging.CRITICAL)
        self.server.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.__exit__(*exc_info)

    def reset(self) -> None:
        for emulator in self.box.emulators.values():
            emulator.reset()

    def cli(
        self, config: Path, pipeline: str, crash_at: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run ``custsync run PIPELINE --json`` as a real process."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("CUSTSYNC_")}
        env.update(CUSTSYNC_LOG_FORMAT="json", CUSTSYNC_LOG_LEVEL="warning")
        args = ["run", pipeline, "-c", str(config), "--json"]
        # The kill is injected by a test driver around the same command line, never by custsync itself.
        command = [sys.executable, str(CRASHING_RUN), crash_at, *args] if crash_at else [self.exe, *args]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, check=False)

    def in_process(self, config: AppConfig, pipeline: str, state_url: str) -> RunResult:
        """A run in this process, straight against the emulators (no loopback)."""
        transport = httpx.ASGITransport(app=self.box.app)
        with _MIGRATING:  # Alembic's command API is not thread-safe
            store = Store(state_url)
        try:
            return asyncio.run(
                run_pipeline(config, pipeline, store=store, transports={name: transport for name in config.connections})
            )
        finally:
            store.close()

    def kill_point(self, pair: str, crash_at: str, *, phase: str = "create", seed: int = 7) -> Outcome:
        """One scenario: seed, (sync and edit), killed run, recovery run, checks."""
        started = time.monotonic()
        self._n += 1
        source, target = PAIRS[pair]
        pipeline = f"{source}_to_{target}{self.suffix}"
        state = self.workdir / f"state-{threading.get_ident()}-{self._n}.db"
        config_path = self.workdir / f"config-{threading.get_ident()}.toml"
        text = write_config(
            config_path, self.server.url, f"sqlite:///{state}", broker_url=LOCK_REDIS, suffix=self.suffix
        )
        config = load(text)
        self.reset()
        seed_source(self.box, pair, self.count, seed=seed)
        outcome = Outcome(pair, phase, crash_at, killed=False)
        try:
            if phase == "update":
                first = self.in_process(config, pipeline, f"sqlite:///{state}")
                if first.status != "succeeded":
                    outcome.problem = f"first run {first.status}: {first.error}"
                    return outcome
                mutate_source(self.box, pair, random.Random(seed))
            killed = self.cli(config_path, pipeline, crash_at)
            outcome.killed = killed.returncode == -9
            if killed.returncode not in (-9, 0):
                outcome.problem = f"crash run exit {killed.returncode}: {killed.stderr[-400:]}"
                return outcome
            if self.recover_in_process:
                result = self.in_process(config, pipeline, f"sqlite:///{state}")
                if result.status != "succeeded":
                    outcome.problem = f"recovery run {result.status}: {result.summary()}"
                    return outcome
            else:
                again = self.cli(config_path, pipeline)
                if again.returncode != 0:
                    outcome.problem = (
                        f"recovery run exit {again.returncode}: {again.stdout[-300:]} {again.stderr[-400:]}"
                    )
                    return outcome
            outcome.check = verify(self.box, config, pipeline)
            writes = len(self.box[target].writes())
            third = self.in_process(config, pipeline, f"sqlite:///{state}")
            if third.status != "succeeded" or len(self.box[target].writes()) != writes:
                outcome.problem = (
                    f"third run not quiet: {third.status}, {len(self.box[target].writes()) - writes} writes"
                )
        finally:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{state}{suffix}").unlink(missing_ok=True)
            outcome.seconds = time.monotonic() - started
        return outcome


def plan(points: int, pairs: Iterable[str], rng: random.Random, *, count: int) -> list[tuple[str, str, str]]:
    """``points`` kill points (pair, phase, crash_at), spread over pairs, phases and kinds.

    A ``create`` run writes about one create per customer (plus archives); an
    ``update`` run edits, flips or adds about half as many. Commits come two
    per source page (intents, then results): Bigcapital lists two pages
    (active, inactive), the others one at this size.
    """
    chosen = list(pairs)
    out: list[tuple[str, str, str]] = []
    for n in range(points):
        pair = chosen[n % len(chosen)]
        phase = "update" if rng.random() < 0.35 else "create"
        if rng.random() < 0.8:
            crash = f"write:{rng.randint(1, count if phase == 'create' else max(1, count // 2))}"
        else:
            pages = 2 if PAIRS[pair][0] == "bigcapital" else 1
            crash = f"commit:{rng.randint(1, 2 * pages)}"
        out.append((pair, phase, crash))
    return out


def soak(
    points: list[tuple[str, str, str]],
    *,
    count: int,
    workers: int,
    workdir: Path,
    verbose: bool = False,
    recover_in_process: bool = False,
) -> list[Outcome]:
    """Run kill points on ``workers`` harnesses in parallel; return every outcome."""
    lock = threading.Lock()
    results: list[Outcome] = []
    queue = list(points)

    def worker() -> None:
        with Harness(workdir, count=count, recover_in_process=recover_in_process) as harness:
            while True:
                with lock:
                    if not queue:
                        return
                    pair, phase, crash = queue.pop(0)
                outcome = harness.kill_point(pair, crash, phase=phase)
                with lock:
                    results.append(outcome)
                    if verbose or not outcome.ok:
                        print(f"[{len(results)}/{len(points)}] {outcome}", flush=True)
                    elif len(results) % 50 == 0:
                        failed = sum(not r.ok for r in results)
                        print(f"[{len(results)}/{len(points)}] {failed} failed so far", flush=True)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for future in [pool.submit(worker) for _ in range(workers)]:
            future.result()
    return results


def summarise(results: list[Outcome]) -> str:
    """A short report: per pair, killed / not reached / failed, and the totals."""
    lines = ["pair   points killed notreached failed duplicates missing stale extra"]
    for pair in sorted({r.pair for r in results}):
        rs = [r for r in results if r.pair == pair]
        lines.append(
            f"{pair:6} {len(rs):6} {sum(r.killed for r in rs):6} {sum(not r.killed for r in rs):10} "
            f"{sum(not r.ok for r in rs):6} {sum(len(r.check.duplicates) for r in rs if r.check):10} "
            f"{sum(len(r.check.missing) for r in rs if r.check):7} {sum(len(r.check.stale) for r in rs if r.check):5} "
            f"{sum(len(r.check.extra) for r in rs if r.check):5}"
        )
    kinds = Counter(r.crash_at.split(":")[0] for r in results if r.killed)
    lines.append(
        f"total: {len(results)} points, {sum(r.killed for r in results)} killed "
        f"({', '.join(f'{k} {v}' for k, v in sorted(kinds.items()))}), "
        f"{sum(not r.ok for r in results)} failed"
    )
    return "\n".join(lines)
