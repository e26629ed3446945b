"""Benchmark: sync N customers Bigcapital → Thredfi and Thredfi → Bigcapital on the sandbox.

Each measurement uses two fresh processes, so that neither shares a GIL, a
heap or a peak-RSS counter with anything else:

- the sandbox (the emulators, seeded with N fake customers in the source),
  served by uvicorn on loopback;
- the engine: one first sync (N creates) and one re-run (nothing changed),
  in process through :func:`worker.sync.run_pipeline`, with a SQLite state
  store, exactly what ``custsync run`` does.

Reported per direction and N: records per second of the first sync and of
the re-run, and the engine process's peak RSS (``resource.getrusage``). The
machine (cores, CPU model, Python) heads the table, written to
``bench/RESULTS.md``.

    python -m bench.run                  # N = 1000 and 5000
    python -m bench.run --sizes 1000,5000,10000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
DIRECTIONS = (("bigcapital", "thredfi"), ("thredfi", "bigcapital"))


# -- the sandbox process ---------------------------------------------------------


def serve(source: str, count: int, port: int) -> None:
    """Serve the four emulators, ``count`` fake customers seeded in ``source`` (one in ten inactive)."""
    import uvicorn

    from sandbox.server import Sandbox

    box = Sandbox()
    box[source].seed_fake(count)  # type: ignore[attr-defined]
    uvicorn.run(box.app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(port: int, process: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the sandbox process exited")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError("the sandbox did not start")


# -- the engine process ----------------------------------------------------------


def measure(source: str, target: str, url: str, workdir: Path) -> dict[str, Any]:
    """First sync and re-run in this process; the numbers as a dict."""
    import logging

    import structlog

    from sandbox.server import sandbox_config
    from state.store import Store
    from worker.config import load_config
    from worker.sync import run_pipeline

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    state = workdir / "state.db"
    config_path = workdir / "bench.toml"
    config_path.write_text(sandbox_config(url, state_url=f"sqlite:///{state}"), encoding="utf-8")
    config = load_config(config_path)
    pipeline = f"{source}_to_{target}"
    out: dict[str, Any] = {}
    for label in ("first", "rerun"):
        store = Store(f"sqlite:///{state}")
        started, cpu = time.perf_counter(), time.process_time()
        result = asyncio.run(run_pipeline(config, pipeline, store=store))
        out[f"{label}_s"] = time.perf_counter() - started
        out[f"{label}_cpu_s"] = time.process_time() - cpu
        out[f"{label}_status"] = result.status
        out[f"{label}_counts"] = result.summary()
        store.close()
    out["peak_rss_mb"] = _peak_rss_mb(resource.RUSAGE_SELF)
    return out


def _peak_rss_mb(who: int) -> float:
    # Linux reports ru_maxrss in KiB, macOS in bytes.
    raw = resource.getrusage(who).ru_maxrss
    return raw / 1024 / 1024 if sys.platform == "darwin" else raw / 1024


# -- orchestration ---------------------------------------------------------------


def one(source: str, target: str, count: int) -> dict[str, Any]:
    """One measurement: a sandbox process and an engine process, both fresh."""
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen([sys.executable, "-m", "bench.run", "--serve", source, str(count), str(port)],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait(port, server)
        with tempfile.TemporaryDirectory(prefix="custsync-bench-") as tmp:
            done = subprocess.run(
                [sys.executable, "-m", "bench.run", "--measure", source, target, f"http://127.0.0.1:{port}", tmp],
                cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=3600)
        if done.returncode != 0:
            raise RuntimeError(f"the engine process failed: {done.stderr[-2000:]}")
        numbers: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        server.terminate()
        server.wait(timeout=30)
    numbers.update(source=source, target=target, count=count)
    numbers["first_rps"] = count / numbers["first_s"]
    numbers["rerun_rps"] = count / numbers["rerun_s"]
    return numbers


def machine() -> dict[str, str]:
    """Cores, CPU model and Python version of this machine."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cores": str(os.cpu_count() or "?"),
        "cpu": model,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "os": f"{platform.system()} {platform.release()}",
    }


def table(rows: list[dict[str, Any]], host: dict[str, str]) -> str:
    """The results as markdown."""
    lines = [
        "# custsync benchmark",
        "",
        "Customers synced on the sandbox over loopback (the emulators in one process, the engine in another),",
        "SQLite state store, default connection settings (16 requests in flight, no rate limit).",
        "*First sync*: every customer created in the target. *Re-run*: nothing changed, nothing written.",
        "Engine CPU is the engine process's CPU time during the first sync: close to the wall time, it",
        "says the engine, not the emulators, sets the pace. Peak RSS is the engine process's",
        "(`resource.getrusage`).",
        "Run with `python -m bench.run` (`--sizes 1000,5000,10000`).",
        "",
        f"Machine: {host['cores']} cores, {host['cpu']}; {host['python']}; {host['os']}.",
        f"Date: {time.strftime('%Y-%m-%d')}.",
        "",
        "| direction | customers | first sync (s) | first sync (records/s) | engine CPU (s) | re-run (s) "
        "| re-run (records/s) | peak RSS (MB) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['source']} → {r['target']} | {r['count']:,} | {r['first_s']:.1f} | {r['first_rps']:,.0f} "
            f"| {r['first_cpu_s']:.1f} | {r['rerun_s']:.1f} | {r['rerun_rps']:,.0f} | {r['peak_rss_mb']:.0f} |"
        )
    bad = [r for r in rows if r["first_status"] != "succeeded" or r["rerun_status"] != "succeeded"]
    if bad:
        failed = "; ".join(f"{r['source']}→{r['target']} {r['count']}" for r in bad)
        lines += ["", f"Runs that did not succeed: {failed}"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", default="1000,5000", help="comma-separated customer counts (default 1000,5000)")
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"markdown file (default {RESULTS})")
    parser.add_argument("--serve", nargs=3, metavar=("SOURCE", "COUNT", "PORT"), help=argparse.SUPPRESS)
    parser.add_argument("--measure", nargs=4, metavar=("SOURCE", "TARGET", "URL", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        source, count, port = args.serve
        serve(source, int(count), int(port))
        return 0
    if args.measure:
        source, target, url, workdir = args.measure
        print(json.dumps(measure(source, target, url, Path(workdir))))
        return 0
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    rows: list[dict[str, Any]] = []
    for count in sizes:
        for source, target in DIRECTIONS:
            row = one(source, target, count)
            rows.append(row)
            print(f"{source} -> {target} {count}: first {row['first_s']:.1f}s ({row['first_rps']:.0f}/s), "
                  f"re-run {row['rerun_s']:.1f}s ({row['rerun_rps']:.0f}/s), peak RSS {row['peak_rss_mb']:.0f} MB",
                  flush=True)
    text = table(rows, machine())
    args.output.write_text(text, encoding="utf-8")
    print(text)
    return 0 if all(r["first_status"] == r["rerun_status"] == "succeeded" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
