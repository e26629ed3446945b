"""Benchmark: custsync against the sandbox, beside the bare clients that set the ceiling.

    python -m bench.run                 # quick: 500 customers, about 2 minutes
    python -m bench.run --size 10k      # 1k, 10k, 100k (100k takes long)

One run measures, on this machine, with the sandbox served by uvicorn in its
own process on loopback:

1. **Bare clients**: N Thredfi creates at 16 in flight with httpx, aiohttp and
   httpx over httpx-aiohttp's transport (each that is installed): the ceiling.
2. **custsync** (``custsync run bigcapital_to_thredfi`` in a subprocess, SQLite
   state): the first sync of N Bigcapital customers, a no-op re-sync, and a
   re-sync after 1 % of the source was edited.
3. **At 50 ms of latency** (a second sandbox process): the sequential
   baseline (one create at a time, httpx) and custsync's first sync; the ratio.
4. **Rate-limited** (a third sandbox process, Thredfi refusing over 5 requests
   per second): custsync with no ``requests_per_second`` (the AIMD limiter of
   the request loop finds the pace), custsync with ``requests_per_second = 5``
   (the share of that rate used: Thredfi's admitted requests at 5 per second,
   over the run's own ``duration_s``, which leaves out the process start but
   counts the listing and the state store), and a bare driver through :mod:`connectors.concurrency`'s AIMD
   limiter; the share refused with 429.

Each result gives records per second, requests by kind (counted by the
sandbox: its request log), requests per record, peak RSS of the custsync
process (``os.wait4``), and the CPU seconds of the engine and of the sandbox
(``/proc/PID/stat``), so that a result says which side set the pace.
It prints a table and writes ``bench/results/SIZE.json``, naming the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx

from bench import clients
from connectors.transport import ENV as TRANSPORT_ENV

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
SIZES = {"quick": 500, "1k": 1_000, "10k": 10_000, "100k": 100_000}
CONCURRENCY = 16
LATENCY_MS = 50.0
RATE_LIMIT = 5
SOURCE, TARGET = "bigcapital", "thredfi"
PIPELINE = f"{SOURCE}_to_{TARGET}"
#: the largest page each API serves (``docs/api-assumptions.md``); Bigcapital sets no maximum.
LARGEST_PAGE = {"bigcapital": 1000, "thredfi": 100, "piriod": 100}
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


# -- processes ---------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process (``/proc/PID/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


class SandboxProcess:
    """``bench.sandbox_process`` in its own process, for the length of a ``with``."""

    def __init__(self, *, seed: dict[str, int], latency_ms: float = 0.0, rate: dict[str, int] | None = None) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._args = [sys.executable, "-m", "bench.sandbox_process", "--port", str(self.port)]
        self._args += [a for s, n in seed.items() for a in ("--seed", f"{s}:{n}")]
        self._args += ["--latency-ms", str(latency_ms)]
        self.latency_ms = latency_ms
        self._args += [a for s, n in (rate or {}).items() for a in ("--rate", f"{s}:{n}")]
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> SandboxProcess:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self._process = subprocess.Popen(self._args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 600  # seeding 100k takes a while
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError("the sandbox process exited")
            try:
                if httpx.get(f"{self.url}/{TARGET}/_admin/faults", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError("the sandbox did not start")

    def __exit__(self, *exc_info: object) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=30)

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def admin(self, system: str, method: str, path: str, **kwargs: Any) -> Any:
        answer = httpx.request(method, f"{self.url}/{system}/_admin/{path}", timeout=120, **kwargs)
        answer.raise_for_status()
        return answer.json() if answer.content else None

    def reset(self, system: str) -> None:
        """Empty an emulator (records, log, faults), then put its latency back."""
        self.admin(system, "POST", "reset")
        if self.latency_ms > 0:
            slow = {"kind": "slow", "delay_s": self.latency_ms / 1000, "times": None}
            self.admin(system, "POST", "faults", json=slow)

    def take_requests(self) -> dict[str, list[dict[str, Any]]]:
        """Every emulator's request log since the last call (and clear it)."""
        logs = {}
        for system in ("bigcapital", "thredfi", "piriod", "timbrix"):
            logs[system] = self.admin(system, "GET", "requests")
            self.admin(system, "DELETE", "requests")
        return logs


# -- requests by kind --------------------------------------------------------------

_ITEM = re.compile(r"/customers/[^/]+/?$")


def kind_of(entry: dict[str, Any]) -> str:
    """What a logged request did: list, lookup, get, create, update, archive, delete, token, other."""
    method, path, query = entry["method"], entry["path"], entry["query"]
    if "token" in path or "api-keys" in path:
        return "token"
    if "organization" in path and method == "GET" and "customers" not in path:
        return "other"
    if "/activate" in path or "/inactivate" in path or path.rstrip("/").endswith("/archive"):
        return "archive"
    item = _ITEM.search(path) is not None
    if method == "GET":
        if item:
            return "get"
        return "lookup" if "external_id" in query else "list"
    if method == "POST":
        return "create"
    if method in ("PUT", "PATCH"):
        return "update"
    if method == "DELETE":
        return "delete"
    return "other"


@dataclass
class Requests:
    """Requests by system and kind, the 429s among them, and the page sizes of lists."""

    by_kind: dict[str, Counter[str]] = field(default_factory=dict)
    refused: int = 0
    total: int = 0
    page_sizes: dict[str, list[int]] = field(default_factory=dict)

    @classmethod
    def of(cls, logs: dict[str, list[dict[str, Any]]]) -> Requests:
        out = cls()
        for system, entries in logs.items():
            if not entries:
                continue
            kinds: Counter[str] = Counter()
            sizes: set[int] = set()
            for entry in entries:
                kind = kind_of(entry)
                kinds[kind] += 1
                out.total += 1
                if entry["status"] == 429:
                    out.refused += 1
                    kinds["refused (429)"] += 1
                if kind == "list":
                    query = parse_qs(entry["query"])
                    raw = (query.get("page_size") or query.get("pageSize") or ["default"])[0]
                    sizes.add(int(raw) if raw.isdigit() else -1)
            out.by_kind[system] = kinds
            if sizes:
                out.page_sizes[system] = sorted(sizes)
        return out

    def as_dict(self) -> dict[str, Any]:
        return {"by_kind": {s: dict(k) for s, k in self.by_kind.items()}, "refused_429": self.refused,
                "total": self.total, "list_page_sizes": self.page_sizes}  # fmt: skip

    def short(self) -> str:
        parts = []
        for system, kinds in self.by_kind.items():
            inner = ", ".join(f"{k} {n}" for k, n in sorted(kinds.items()))
            parts.append(f"{system}: {inner}")
        return "; ".join(parts)


# -- measurements ------------------------------------------------------------------


def bare_client(box: SandboxProcess, name: str, count: int, concurrency: int) -> dict[str, Any]:
    """N Thredfi creates with one bare client; the target emptied first."""
    box.reset(TARGET)
    payloads = clients.thredfi_payloads(count)
    box_cpu, own_cpu = box.cpu(), time.process_time()
    started = time.perf_counter()
    ok: int = asyncio.run(clients.CLIENTS[name](f"{box.url}/{TARGET}", payloads, concurrency))
    wall = time.perf_counter() - started
    requests = Requests.of(box.take_requests())
    return {"name": f"bare {name}", "records": count, "ok": ok, "wall_s": wall, "records_per_s": count / wall,
            "client_cpu_s": time.process_time() - own_cpu, "sandbox_cpu_s": box.cpu() - box_cpu,
            "requests": requests.as_dict()}  # fmt: skip


#: custsync's CLI, as installed.
CLI = "from worker.cli import main; main()"


def custsync(
    box: SandboxProcess, label: str, config: Path, records: int, *, transport: str = "httpx"
) -> dict[str, Any]:
    """``custsync run`` in a subprocess over ``transport`` (``httpx`` or ``aiohttp``, see
    :mod:`connectors.transport`): wall, its peak RSS and CPU, the sandbox's CPU, the requests."""
    command = [sys.executable, "-c", CLI, "run", PIPELINE, "--config", str(config), "--json"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), TRANSPORT_ENV: transport}
    box_cpu = box.cpu()
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(command, cwd=config.parent, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    sandbox_cpu = box.cpu() - box_cpu
    try:
        summary = json.loads(stdout)
    except ValueError:
        summary = {"unparsed": stdout[-500:], "stderr": stderr[-1500:]}
    requests = Requests.of(box.take_requests())
    engine_cpu = usage.ru_utime + usage.ru_stime
    return {"name": f"custsync {label}", "records": records, "exit_code": process.returncode,
            "wall_s": wall, "records_per_s": records / wall, "engine_cpu_s": engine_cpu,
            "sandbox_cpu_s": sandbox_cpu, "sandbox_cpu_share": sandbox_cpu / max(engine_cpu + sandbox_cpu, 1e-9),
            "peak_rss_mb": usage.ru_maxrss / 1024, "summary": _counts(summary),
            "requests": requests.as_dict()}  # fmt: skip


def _counts(summary: Any) -> Any:
    if isinstance(summary, dict):
        keep = ("status", "counts", "created", "updated", "unchanged", "quarantined", "failed", "summary", "duration_s")
        picked = {k: summary[k] for k in keep if k in summary}
        return picked or summary
    return summary


def write_config(
    box: SandboxProcess, workdir: Path, *, extra: str = "", connection: dict[str, dict[str, str]] | None = None
) -> Path:
    """The sandbox's config in ``workdir``; ``connection`` adds settings to connections (name -> key -> TOML value)."""
    from sandbox.server import sandbox_config

    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "custsync.toml"
    text = sandbox_config(box.url, state_url=f"sqlite:///{workdir / 'state.db'}")
    for name, settings in (connection or {}).items():
        header = f"[connections.{name}]\n"
        text = text.replace(header, header + "".join(f"{k} = {v}\n" for k, v in settings.items()), 1)
    config.write_text(text + extra, encoding="utf-8")
    return config


def edit_source(box: SandboxProcess, share: float) -> int:
    """Edit ``share`` of the source's customers through the admin surface (as a user would)."""
    records = box.admin(SOURCE, "GET", "customers")
    step = max(int(1 / share), 1)
    picked = records[::step]
    for record in picked:
        box.admin(SOURCE, "PATCH", f"customers/{record['id']}", json={"note": f"edited {time.time():.0f}"})
    return len(picked)


def per_record(row: dict[str, Any], changed: int) -> dict[str, float]:
    """Requests per synced record, by kind, on the target (and lists on both)."""
    kinds = row["requests"]["by_kind"]
    target = kinds.get(TARGET, {})
    out: dict[str, float] = {}
    for kind in ("create", "update", "lookup", "get"):
        if target.get(kind):
            out[f"{TARGET} {kind}"] = target[kind] / max(changed, 1)
    for system, counted in kinds.items():
        if counted.get("list"):
            out[f"{system} list"] = counted["list"] / max(row["records"], 1)
    return out


def sequential(box: SandboxProcess, count: int) -> dict[str, Any]:
    """One create at a time with httpx: the baseline a sync without concurrency reaches."""
    row = bare_client(box, "httpx", count, 1)
    row["name"] = "sequential httpx (1 in flight)"
    return row


def aimd_driver(box: SandboxProcess, count: int) -> dict[str, Any] | None:
    """N creates through the AIMD limiter at up to 16 in flight against the rate-limited target."""
    try:
        from bench.aimd import drive
    except ImportError:
        return None
    box.reset(TARGET)
    started = time.perf_counter()
    ok = asyncio.run(drive(f"{box.url}/{TARGET}", clients.thredfi_payloads(count, tag="aimd"), CONCURRENCY))
    wall = time.perf_counter() - started
    requests = Requests.of(box.take_requests())
    return {"name": "AIMD driver (connectors.concurrency)", "records": count, "ok": ok, "wall_s": wall,
            "records_per_s": count / wall, "requests": requests.as_dict(),
            "refused_share": requests.refused / max(requests.total, 1)}  # fmt: skip


def machine() -> dict[str, Any]:
    """Cores, CPU model, Python and platform of this machine."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu_count": os.cpu_count(), "cpu_model": model,
            "python": f"{platform.python_implementation()} {platform.python_version()}",
            "platform": platform.platform(),
            "load_average": [round(x, 2) for x in os.getloadavg()]}  # fmt: skip


# -- the run -----------------------------------------------------------------------


def run(size: str, *, latency_records: int, rate_records: int, log: Any = print) -> dict[str, Any]:
    count = SIZES[size]
    date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    result: dict[str, Any] = {"size": size, "customers": count, "concurrency": CONCURRENCY, "date": date,
                              "machine": machine()}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="custsync-bench-") as tmp:
        with SandboxProcess(seed={SOURCE: count}) as box:
            box.take_requests()
            ceiling = []
            for name in clients.CLIENTS:
                if not clients.available(name):
                    log(f"  {name}: not installed, skipped")
                    continue
                ceiling.append(bare_client(box, name, count, CONCURRENCY))
                log(_line(ceiling[-1]))
            result["bare_clients"] = ceiling
            box.admin(TARGET, "POST", "reset")
            box.take_requests()
            config = write_config(box, Path(tmp) / "plain")
            runs = [custsync(box, "first sync", config, count)]
            log(_line(runs[-1]))
            runs.append(custsync(box, "no-op re-sync", config, count))
            log(_line(runs[-1]))
            changed = edit_source(box, 0.01)
            box.take_requests()
            runs.append(custsync(box, "re-sync, 1 % changed", config, count))
            runs[-1]["changed"] = changed
            log(_line(runs[-1]))
            runs[0]["per_record"] = per_record(runs[0], count)
            runs[1]["per_record"] = per_record(runs[1], count)
            runs[2]["per_record"] = per_record(runs[2], changed)
            result["custsync"] = runs
            box.reset(TARGET)
            box.take_requests()
            config = write_config(box, Path(tmp) / "chosen")
            chosen = [custsync(box, "first sync, aiohttp transport", config, count, transport="aiohttp")]
            log(_line(chosen[-1]))
            chosen.append(custsync(box, "no-op re-sync, aiohttp transport", config, count, transport="aiohttp"))
            log(_line(chosen[-1]))
            result["custsync_chosen_transport"] = chosen
        with SandboxProcess(seed={SOURCE: latency_records}, latency_ms=LATENCY_MS) as box:
            box.take_requests()
            base = sequential(box, latency_records)
            log(_line(base))
            box.reset(TARGET)
            box.take_requests()
            config = write_config(box, Path(tmp) / "latency")
            fast = custsync(box, f"first sync at {LATENCY_MS:g} ms", config, latency_records)
            log(_line(fast))
            result["latency"] = {"latency_ms": LATENCY_MS, "records": latency_records, "sequential": base,
                                 "custsync": fast, "ratio": fast["records_per_s"] / base["records_per_s"]}  # fmt: skip
            log(f"  ratio at {LATENCY_MS:g} ms: {result['latency']['ratio']:.1f}x the sequential baseline")
        with SandboxProcess(seed={SOURCE: rate_records}, rate={TARGET: RATE_LIMIT}) as box:
            box.take_requests()
            config = write_config(box, Path(tmp) / "rate")
            limited = custsync(box, f"first sync, {TARGET} at {RATE_LIMIT} req/s", config, rate_records)
            limited["refused_share"] = limited["requests"]["refused_429"] / max(limited["requests"]["total"], 1)
            log(_line(limited) + f", {limited['refused_share']:.0%} refused")
            box.reset(TARGET)
            box.take_requests()
            paced_at = {TARGET: {"requests_per_second": str(RATE_LIMIT)}}
            config = write_config(box, Path(tmp) / "rate_rps", connection=paced_at)
            paced = custsync(box, f"first sync, {TARGET} at {RATE_LIMIT} req/s, requests_per_second = {RATE_LIMIT}",
                             config, rate_records)  # fmt: skip
            target_kinds = paced["requests"]["by_kind"].get(TARGET, {})
            refused = target_kinds.get("refused (429)", 0)
            admitted = sum(target_kinds.values()) - 2 * refused
            # The run's own duration (the engine's, without the process start): a lower bound of the share.
            busy = max(float(paced["summary"].get("duration_s") or paced["wall_s"]), 1e-9)
            paced["refused_share"] = paced["requests"]["refused_429"] / max(paced["requests"]["total"], 1)
            paced["rate_used_share"] = admitted / RATE_LIMIT / busy
            log(_line(paced) + f", {paced['refused_share']:.1%} refused, {paced['rate_used_share']:.0%} of the rate")
            driver = aimd_driver(box, rate_records)
            if driver is not None:
                log(_line(driver) + f", {driver['refused_share']:.1%} refused")
            result["rate_limited"] = {"limit_per_s": RATE_LIMIT, "custsync": limited, "custsync_paced": paced,
                                      "aimd_driver": driver}  # fmt: skip
    best = max(result["bare_clients"], key=lambda r: r["records_per_s"])
    first, chosen = result["custsync"][0], result["custsync_chosen_transport"][0]
    result["verdict"] = {
        "best_bare_client": best["name"],
        "first_sync_vs_best_bare": first["records_per_s"] / best["records_per_s"],
        "first_sync_aiohttp_transport_vs_best_bare": chosen["records_per_s"] / best["records_per_s"],
        "first_sync_sandbox_cpu_share": first["sandbox_cpu_share"],
        "latency_ratio": result["latency"]["ratio"],
        "rate_limited_refused_share": result["rate_limited"]["custsync"]["refused_share"],
        "aimd_refused_share": driver["refused_share"] if driver else None,
        "paced_refused_share": paced["refused_share"],
        "paced_rate_used_share": paced["rate_used_share"],
    }
    return result


def _line(row: dict[str, Any]) -> str:
    text = f"  {row['name']}: {row['records']:,} in {row['wall_s']:.2f} s = {row['records_per_s']:,.0f}/s"
    if "peak_rss_mb" in row:
        text += (f", engine CPU {row['engine_cpu_s']:.1f} s, sandbox CPU {row['sandbox_cpu_s']:.1f} s"
                 f", peak RSS {row['peak_rss_mb']:.0f} MB, exit {row['exit_code']}")  # fmt: skip
    elif "client_cpu_s" in row:
        text += f", client CPU {row['client_cpu_s']:.1f} s, sandbox CPU {row['sandbox_cpu_s']:.1f} s"
    return text


def table(result: dict[str, Any]) -> str:
    """The results as a markdown table (what ``docs/benchmarks.md`` shows)."""
    host = result["machine"]
    lines = [
        f"Machine: {host['cpu_count']} CPUs, {host['cpu_model']}; {host['python']}; {host['platform']}; "
        f"load {host['load_average']} at start. {result['date']}. {result['customers']:,} customers, "
        f"{result['concurrency']} in flight.",
        "",
        "| run | records | wall (s) | records/s | engine/client CPU (s) | records per CPU-s | sandbox CPU (s) "
        "| peak RSS (MB) | requests by kind |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    rows = [*result["bare_clients"], *result["custsync"], *result["custsync_chosen_transport"],
            result["latency"]["sequential"],
            result["latency"]["custsync"], result["rate_limited"]["custsync"],
            result["rate_limited"]["custsync_paced"]]  # fmt: skip
    if result["rate_limited"]["aimd_driver"]:
        rows.append(result["rate_limited"]["aimd_driver"])
    for r in rows:
        cpu = r.get("engine_cpu_s", r.get("client_cpu_s"))
        rss = f"{r['peak_rss_mb']:.0f}" if "peak_rss_mb" in r else ""
        kinds = Requests(by_kind={s: Counter(k) for s, k in r["requests"]["by_kind"].items()}).short()
        per_cpu = f"{r['records'] / cpu:,.0f}" if cpu else ""
        lines.append(
            f"| {r['name']} | {r['records']:,} | {r['wall_s']:.2f} | {r['records_per_s']:,.0f} "
            f"| {'' if cpu is None else f'{cpu:.1f}'} | {per_cpu} "
            f"| {r.get('sandbox_cpu_s', 0):.1f} | {rss} | {kinds} |"
        )
    v = result["verdict"]
    lines += [
        "",
        f"- First sync / best bare client ({v['best_bare_client']}): **{v['first_sync_vs_best_bare']:.2f}** "
        f"(over the aiohttp transport: **{v['first_sync_aiohttp_transport_vs_best_bare']:.2f}**); "
        f"the sandbox's share of the CPU during the first sync: {v['first_sync_sandbox_cpu_share']:.0%}.",
        f"- At {result['latency']['latency_ms']:g} ms latency: custsync is **{v['latency_ratio']:.1f}x** "
        "the sequential baseline.",
        f"- {TARGET} limited to {result['rate_limited']['limit_per_s']} req/s, no `requests_per_second`: "
        f"**{v['rate_limited_refused_share']:.1%}** of custsync's requests refused with 429"
        + (
            f"; through the AIMD limiter: **{v['aimd_refused_share']:.1%}**."
            if v["aimd_refused_share"] is not None
            else "."
        ),
        f"- With `requests_per_second = {result['rate_limited']['limit_per_s']}`: "
        f"**{v['paced_rate_used_share']:.0%}** of the rate used, **{v['paced_refused_share']:.1%}** refused.",
    ]
    for r in result["custsync"]:
        per = ", ".join(f"{k} {n:.3g}" for k, n in r.get("per_record", {}).items())
        sizes = "; ".join(f"{s} {v}" for s, v in r["requests"]["list_page_sizes"].items())
        lines.append(f"- {r['name']}: requests per record: {per}; list page sizes: {sizes}.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="quick", help="customers to seed (default quick: 500)")
    parser.add_argument("--latency-records", type=int, default=200, help="creates in the 50 ms runs (default 200)")
    parser.add_argument("--rate-records", type=int, default=60, help="creates in the 5 req/s runs (default 60)")
    parser.add_argument("--output", type=Path, default=None, help="JSON file (default bench/results/SIZE.json)")
    args = parser.parse_args(argv)
    print(f"custsync bench, size {args.size} ({SIZES[args.size]:,} customers)", flush=True)
    result = run(args.size, latency_records=args.latency_records, rate_records=args.rate_records,
                 log=lambda text: print(text, flush=True))  # fmt: skip
    output = args.output or RESULTS / f"{args.size}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=1, default=str) + "\n", encoding="utf-8")
    print()
    print(table(result))
    print(f"written: {output.relative_to(ROOT) if output.is_relative_to(ROOT) else output}")
    return 0 if all(r["exit_code"] == 0 for r in result["custsync"]) else 1


if __name__ == "__main__":
    sys.exit(main())
