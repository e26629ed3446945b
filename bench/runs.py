"""One measurement each: a bare client's creates, one ``custsync run``, the sequential baseline, the AIMD driver.

A custsync run is ``python -m bench.timed_cli run PIPELINE --config ... --json``
in a subprocess (:mod:`bench.timed_cli`: the installed CLI, with the time
spent in HTTP requests kept by kind). Its row holds the wall time (process
start included) and the run's own ``duration_s`` from the ``--json`` summary
(from the connectors built to the run's end: imports, config and the state
store's opening left out), records per second by each, the peak RSS (the
process's own ``VmHWM``; ``os.wait4``'s ``ru_maxrss`` also holds the bench's
own RSS at the spawn, Linux keeping it across ``exec``), the CPU of the engine and of the sandbox, the requests by kind
as the sandbox logged them, the HTTP time by kind, and a timeline of the
run's pages from its own JSON events (``page_synced``, ``record_written``).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from bench import clients
from bench.measure import PIPELINE, ROOT, SOURCE, TARGET, Requests, SandboxProcess
from bench.timed_cli import ENV as STATS_ENV
from connectors.transport import ENV as TRANSPORT_ENV

CONCURRENCY = 16


def bare_client(box: SandboxProcess, name: str, count: int, concurrency: int) -> dict[str, Any]:
    """N Thredfi creates with one bare client; the target emptied first."""
    box.reset(TARGET)
    payloads = clients.thredfi_payloads(count)
    box_cpu, own_cpu = box.cpu(), time.process_time()
    started = time.perf_counter()
    ok: int = asyncio.run(clients.CLIENTS[name](f"{box.url}/{TARGET}", payloads, concurrency))
    wall = time.perf_counter() - started
    requests = Requests.of(box.take_requests())
    cpu = time.process_time() - own_cpu
    return {"name": f"bare {name}", "records": count, "ok": ok, "wall_s": wall, "records_per_s": count / wall,
            "client_cpu_s": cpu, "cpu_ms_per_record": 1000 * cpu / count, "sandbox_cpu_s": box.cpu() - box_cpu,
            "requests": requests.as_dict()}  # fmt: skip


def custsync(
    box: SandboxProcess, label: str, config: Path, records: int, *, transport: str = "aiohttp"
) -> dict[str, Any]:
    """``custsync run PIPELINE`` in a subprocess over ``transport`` (``aiohttp``, the default, or ``httpx``)."""
    stats = config.parent / "http_stats.json"
    stats.unlink(missing_ok=True)
    command = [sys.executable, "-m", "bench.timed_cli", "run", PIPELINE, "--config", str(config), "--json"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), TRANSPORT_ENV: transport, STATS_ENV: str(stats)}
    box_cpu = box.cpu()
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(command, cwd=config.parent, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        out.seek(0)
        stdout = out.read().decode()
        err.seek(0)
        timeline, tail = events(err)
    sandbox_cpu = box.cpu() - box_cpu
    try:
        summary = _counts(json.loads(stdout))
    except ValueError:
        summary = {"unparsed": stdout[-500:], "stderr": tail}
    requests = Requests.of(box.take_requests())
    engine_cpu = usage.ru_utime + usage.ru_stime
    duration = float(summary.get("duration_s") or wall) if isinstance(summary, dict) else wall
    http = json.loads(stats.read_text(encoding="utf-8")) if stats.exists() else {}
    return {"name": f"custsync {label}", "records": records, "exit_code": process.returncode, "transport": transport,
            "wall_s": wall, "records_per_s": records / wall, "duration_s": duration,
            "records_per_s_run": records / max(duration, 1e-9), "engine_cpu_s": engine_cpu,
            "cpu_ms_per_record": 1000 * engine_cpu / max(records, 1), "run_cpu_s": http.get("run_cpu_s"),
            "sandbox_cpu_s": sandbox_cpu, "sandbox_cpu_share": sandbox_cpu / max(engine_cpu + sandbox_cpu, 1e-9),
            "peak_rss_mb": http.get("peak_rss_mb") or usage.ru_maxrss / 1024,
            "ru_maxrss_mb": usage.ru_maxrss / 1024, "summary": summary, "requests": requests.as_dict(),
            "http": http, "timeline": timeline}  # fmt: skip


def _counts(summary: Any) -> Any:
    if isinstance(summary, dict):
        keep = ("status", "counts", "created", "updated", "unchanged", "matched", "quarantined", "failed",
                "summary", "duration_s", "error")  # fmt: skip
        picked = {k: summary[k] for k in keep if k in summary}
        return picked or summary
    return summary


def events(stream: Any) -> tuple[dict[str, Any], str]:
    """The run's pages from its JSON events on stderr, and the last lines of stderr (for a failure).

    Per page: seconds from the previous page's ``page_synced`` (or ``run_started``) to the page's
    first ``record_written`` (listing the page, planning it, committing its intents), the span of
    its writes, and from its last write to its ``page_synced`` (the page's commit). A page without
    writes has only its total.
    """
    started: float | None = None
    finished: float | None = None
    pages: list[dict[str, Any]] = []
    first: float | None = None
    last: float | None = None
    writes = 0
    tail: list[str] = []
    previous: float | None = None
    for raw in stream:
        line = raw.decode(errors="replace")
        tail = [*tail[-19:], line]
        if not line.startswith("{"):
            continue
        try:
            event = json.loads(line)
        except ValueError:
            continue
        name = event.get("event")
        if name not in ("run_started", "record_written", "page_synced", "run_finished"):
            continue
        at = datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).timestamp()
        if name == "run_started":
            started = previous = at
        elif name == "record_written":
            first = at if first is None else first
            last = at
            writes += 1
        elif name == "page_synced":
            page: dict[str, Any] = {"records": event.get("records"), "writes": writes}
            base = previous if previous is not None else at
            page["total_s"] = round(at - base, 4)
            if first is not None and last is not None:
                page.update(before_writes_s=round(first - base, 4), writes_s=round(last - first, 4),
                            after_writes_s=round(at - last, 4))  # fmt: skip
            pages.append(page)
            previous, first, last, writes = at, None, None, 0
        else:
            finished = at
    out: dict[str, Any] = {"pages": pages}
    if started is not None and finished is not None and previous is not None:
        out["after_pages_s"] = round(finished - previous, 4)  # natural keys, vanished records, the end
        out["events_s"] = round(finished - started, 4)
    return out, "".join(tail)[-1500:]


def edit_source(box: SandboxProcess, share: float) -> int:
    """Edit ``share`` of the source's customers through the admin surface (as a user would)."""
    records = box.admin(SOURCE, "GET", "customers")
    step = max(int(1 / share), 1)
    picked = records[::step]
    with httpx.Client(base_url=f"{box.url}/{SOURCE}/_admin", timeout=120) as admin:
        for record in picked:
            admin.patch(f"customers/{record['id']}", json={"note": f"edited {time.time():.0f}"}).raise_for_status()
    return len(picked)


def per_record(row: dict[str, Any], changed: int) -> dict[str, float]:
    """Requests per synced record, by kind, on the target (and lists on both)."""
    kinds = row["requests"]["by_kind"]
    target = kinds.get(TARGET, {})
    out: dict[str, float] = {}
    for kind in ("create", "update", "lookup", "get", "archive"):
        if target.get(kind):
            out[f"{TARGET} {kind}"] = target[kind] / max(changed, 1)
    for system, counted in kinds.items():
        if counted.get("list"):
            out[f"{system} list"] = counted["list"] / max(row["records"], 1)
    return out


def http_share(row: dict[str, Any], op: str = "list") -> dict[str, float]:
    """Seconds the run had an ``op`` request in flight (all connections), and the rest of its duration."""
    busy = sum(c["by_op"].get(op, {}).get("busy_s", 0.0) for c in row.get("http", {}).get("connections", {}).values())
    duration = row["duration_s"]
    return {f"{op}_busy_s": busy, "outside_s": duration - busy, "outside_share": (duration - busy) / duration,
            "outside_share_of_wall": (row["wall_s"] - busy) / row["wall_s"]}  # fmt: skip


def in_flight(row: dict[str, Any], connection: str = TARGET) -> dict[str, float]:
    """Time-weighted requests in flight on ``connection`` while it had any, and the share of time at 16."""
    levels = row.get("http", {}).get("connections", {}).get(connection, {}).get("in_flight_s", {})
    busy = {int(n): s for n, s in levels.items() if int(n) > 0}
    total = sum(busy.values())
    if not total:
        return {}
    return {"mean_when_busy": sum(n * s for n, s in busy.items()) / total, "busy_s": total,
            "idle_s": float(levels.get("0", 0.0)),
            "at_ceiling_share": busy.get(CONCURRENCY, 0.0) / total}  # fmt: skip


def sequential(box: SandboxProcess, count: int) -> dict[str, Any]:
    """One create at a time with httpx: the baseline a sync without concurrency reaches."""
    row = bare_client(box, "httpx", count, 1)
    row["name"] = "sequential httpx (1 in flight)"
    return row


def aimd_driver(box: SandboxProcess, count: int) -> dict[str, Any]:
    """N creates through the AIMD limiter at up to 16 in flight against the rate-limited target."""
    from bench.aimd import drive

    box.reset(TARGET)
    time.sleep(1.1)  # a fresh window of the rate limit: the driver's token requests would be refused after the last run
    started = time.perf_counter()
    ok = asyncio.run(drive(f"{box.url}/{TARGET}", clients.thredfi_payloads(count, tag="aimd"), CONCURRENCY))
    wall = time.perf_counter() - started
    requests = Requests.of(box.take_requests())
    return {"name": "AIMD driver (connectors.concurrency)", "records": count, "ok": ok, "wall_s": wall,
            "records_per_s": count / wall, "requests": requests.as_dict(),
            "refused_share": requests.refused / max(requests.total, 1)}  # fmt: skip


__all__ = ["CONCURRENCY", "aimd_driver", "bare_client", "custsync", "edit_source", "events", "http_share",
           "in_flight", "per_record", "sequential"]  # fmt: skip
