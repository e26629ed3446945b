"""Benchmark: a backfill fanned out by page over 1, 2 and 4 Celery worker processes, at 50 ms latency.

    python -m bench.fanout                      # 2,000 customers, pages of 100
    python -m bench.fanout --records 5000 --workers 1 2 4

Each measurement is ``custsync.backfill`` sent to N real ``celery -A worker.app
worker --pool prefork --concurrency 1`` processes (the Procfile's worker, one
run slot each), started fresh, over:

- the sandbox in its own process (:class:`bench.run.SandboxProcess`), every API
  answer delayed by 50 ms, its target emptied before each measurement;
- a Redis server of the benchmark's own (``redis-server`` on a free port), so no
  test's database is touched;
- PostgreSQL (``CUSTSYNC_BENCH_STATE_URL``, default the local ``test`` database's
  server, a fresh ``custsync_bench_fanout`` database each time), SQLite when it does not answer.

Wall time runs from sending the task to its result. Also measured: the same
backfill in one task without fan-out (``fan_out=False``), the pages each side
ran (from Celery's result backend), and the CPU seconds of the workers and of
the sandbox (``/proc``), so the result says what set the ceiling. It writes
``bench/results/fanout.json`` and prints the table ``docs/benchmarks.md`` shows.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis
from celery import Celery

from bench.measure import (
    PIPELINE,
    RESULTS,
    ROOT,
    SOURCE,
    TARGET,
    SandboxProcess,
    _free_port,
    cpu_seconds,
    machine,
    write_config,
)
from bench.run import LATENCY_MS

DEFAULT_STATE = "postgresql+psycopg://postgres@127.0.0.1:5432/custsync_bench_fanout"


class RedisServer:
    """``redis-server`` on a free loopback port, no persistence, for the length of a ``with``."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: the fan-out bench runs a Redis of its own")
        argv = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self._process = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                client.ping()
            except redis.ConnectionError:
                time.sleep(0.05)
            else:
                return self
        raise RuntimeError("redis-server did not start")

    def __exit__(self, *exc_info: object) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)


def fresh_state(url: str, workdir: Path) -> str:
    """An empty state store: the PostgreSQL database dropped and created again, else a new SQLite file."""
    if url.startswith("postgresql"):
        try:
            import psycopg

            server, _, name = url.replace("+psycopg", "").rpartition("/")
            with psycopg.connect(f"{server}/postgres", autocommit=True, connect_timeout=3) as connection:
                connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                connection.execute(f'CREATE DATABASE "{name}"')
        except Exception as exc:  # any failure: fall back, and say so
            print(f"  PostgreSQL unavailable ({type(exc).__name__}); SQLite instead", flush=True)
        else:
            return url
    path = workdir / f"state-{time.monotonic_ns()}.db"
    return f"sqlite:///{path}"


def session_cpu(leader: int) -> float:
    """CPU seconds of every live process of a session (a prefork worker and its children)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == leader:  # the session id (field 6 of stat)
            total += cpu_seconds(int(entry.name))
    return total


class Workers:
    """N ``celery worker`` processes, each in a session of its own, killed at the end."""

    def __init__(self, count: int, env: dict[str, str], workdir: Path) -> None:
        self.count, self.env, self.workdir = count, env, workdir
        self.procs: list[tuple[subprocess.Popen[bytes], Path]] = []

    def __enter__(self) -> Workers:
        for n in range(self.count):
            log = self.workdir / f"worker{n}.log"
            argv = [sys.executable, "-m", "celery", "-A", "worker.app", "worker", "--loglevel", "INFO",
                    "--pool", "prefork", "--concurrency", "1", "--hostname", f"bench{n}@%h",
                    "--without-mingle", "--without-gossip"]  # fmt: skip
            with log.open("wb") as out:
                popen = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=self.env,
                                         cwd=self.workdir, start_new_session=True)  # fmt: skip
            self.procs.append((popen, log))
        deadline = time.monotonic() + 60
        while not all("worker_ready" in log.read_text(errors="replace") for _, log in self.procs):
            if time.monotonic() > deadline or any(p.poll() is not None for p, _ in self.procs):
                tails = "\n".join(log.read_text()[-2000:] for _, log in self.procs)
                raise RuntimeError(f"a worker did not start:\n{tails}")
            time.sleep(0.1)
        return self

    def cpu(self) -> float:
        return sum(session_cpu(p.pid) for p, _ in self.procs)

    def event(self, name: str) -> dict[str, Any]:
        """The first JSON log event of that name in any worker's log (``{}`` when none)."""
        for _, log in self.procs:
            for line in log.read_text(errors="replace").splitlines():
                if line.startswith("{") and f'"{name}"' in line:
                    found: dict[str, Any] = json.loads(line)
                    if found.get("event") == name:
                        return found
        return {}

    def __exit__(self, *exc_info: object) -> None:
        for popen, _ in self.procs:
            if popen.poll() is None:
                os.killpg(popen.pid, 9)
            popen.wait(timeout=10)


def page_results(client: redis.Redis) -> list[dict[str, Any]]:
    """The reports of the ``custsync.backfill_page`` tasks, from Celery's result backend."""
    found = []
    for key in client.scan_iter(match="celery-task-meta-*"):
        meta = json.loads(client.get(key) or b"{}")
        result = meta.get("result")
        if isinstance(result, dict) and "page" in result and "by" in result:
            found.append(result)
    return found


def measure(box: SandboxProcess, workers: int, records: int, *, fan_out: bool, page_size: int,
            state: str, workdir: Path) -> dict[str, Any]:  # fmt: skip
    """One backfill of ``records`` on ``workers`` fresh worker processes; the target emptied first."""
    from worker.app import make_app
    from worker.config import load_config

    box.reset(TARGET)
    box.take_requests()
    with RedisServer() as broker:
        run_dir = workdir / f"{workers}-{'fan' if fan_out else 'one'}"
        run_dir.mkdir(parents=True, exist_ok=True)
        state_url = fresh_state(state, run_dir)
        config = write_config(box, run_dir, state_url=state_url, broker_url=broker.url)  # the pipeline one way
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CUSTSYNC_", "CELERY_"))}
        env.update({"PYTHONPATH": str(ROOT), "CUSTSYNC_CONFIG": str(config), "CUSTSYNC_LOG_FORMAT": "json"})
        with Workers(workers, env, run_dir) as pool:
            app: Celery = make_app(load_config(config, environ={}))
            cpu_before, box_before = pool.cpu(), box.cpu()
            started = time.perf_counter()
            result = app.send_task("custsync.backfill", args=[PIPELINE], kwargs={"fan_out": fan_out,
                                                                                  "page_size": page_size})  # fmt: skip
            summary = result.get(timeout=1800)
            wall = time.perf_counter() - started
            worker_cpu, sandbox_cpu = pool.cpu() - cpu_before, box.cpu() - box_before
            done = pool.event("fanout_pages_done") if fan_out else {}
            client = redis.Redis.from_url(broker.url)
            deadline = time.monotonic() + 60  # the page tasks still queued answer "taken"
            while len(pages := page_results(client)) < done.get("pages", 0) and time.monotonic() < deadline:
                time.sleep(0.2)
            client.close()
            app.close()
    by_task = sum(1 for p in pages if p["status"] == "synced")
    return {"name": f"{workers} worker{'s' if workers > 1 else ''}" + ("" if fan_out else ", no fan-out"),
            "workers": workers, "fan_out": fan_out, "records": records, "wall_s": wall,
            "records_per_s": records / wall, "worker_cpu_s": worker_cpu, "sandbox_cpu_s": sandbox_cpu,
            "pages": len(pages) if fan_out else 0, "pages_by_tasks": by_task,
            "pages_by_coordinator": sum(1 for p in pages if p["by"] == "coordinator"),
            "state": state_url.split(":", 1)[0], "status": summary.get("status"),
            "created": summary.get("created"), "pulled": summary.get("pulled")}  # fmt: skip


def run(records: int, worker_counts: list[int], *, page_size: int, state: str, log: Any = print) -> dict[str, Any]:
    result: dict[str, Any] = {"records": records, "latency_ms": LATENCY_MS, "page_size": page_size,
                              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                              "machine": machine(), "worker": "prefork, concurrency 1"}  # fmt: skip
    rows = []
    with tempfile.TemporaryDirectory(prefix="custsync-fanout-") as tmp, \
            SandboxProcess(seed={SOURCE: records}, latency_ms=LATENCY_MS) as box:  # fmt: skip
        rows.append(measure(box, 1, records, fan_out=False, page_size=page_size, state=state, workdir=Path(tmp)))
        log(_line(rows[-1]))
        for count in worker_counts:
            rows.append(measure(box, count, records, fan_out=True, page_size=page_size, state=state, workdir=Path(tmp)))
            log(_line(rows[-1]))
    base = next(r for r in rows if r["fan_out"] and r["workers"] == 1)
    for row in rows:
        row["speed_up_vs_1_worker"] = row["records_per_s"] / base["records_per_s"]
    result["runs"] = rows
    result["machine"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    return result


def _line(row: dict[str, Any]) -> str:
    return (f"  {row['name']}: {row['records']:,} in {row['wall_s']:.2f} s = {row['records_per_s']:,.0f}/s, "
            f"{row['status']}, created {row['created']}, pages {row['pages_by_tasks']} by tasks / "
            f"{row['pages_by_coordinator']} by the coordinator, worker CPU {row['worker_cpu_s']:.1f} s, "
            f"sandbox CPU {row['sandbox_cpu_s']:.1f} s")  # fmt: skip


def table(result: dict[str, Any]) -> str:
    """The results as the markdown ``docs/benchmarks.md`` shows."""
    host = result["machine"]
    lines = [
        f"Machine: {host['cpu_count']} CPUs, {host['cpu_model']}; {host['python']}; load {host['load_average']} "
        f"before, {host['load_average_after']} after. {result['date']}. {result['records']:,} Bigcapital "
        f"customers to Thredfi, {result['latency_ms']:g} ms per API answer, pages of {result['page_size']}, "
        f"workers {result['worker']}, state {result['runs'][0]['state']}.",
        "",
        "| run | wall (s) | records/s | speed-up vs 1 worker | pages by tasks / by the coordinator "
        "| worker CPU (s) | sandbox CPU (s) |",
        "|---|---:|---:|---:|---|---:|---:|",
    ]
    for r in result["runs"]:
        pages = f"{r['pages_by_tasks']} / {r['pages_by_coordinator']}" if r["fan_out"] else "(one task)"
        lines.append(
            f"| {r['name']} | {r['wall_s']:.2f} | {r['records_per_s']:,.0f} | {r['speed_up_vs_1_worker']:.2f}x "
            f"| {pages} | {r['worker_cpu_s']:.1f} | {r['sandbox_cpu_s']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--records", type=int, default=2000, help="customers to backfill (default 2,000)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4], help="worker processes (default 1 2 4)")
    parser.add_argument("--page-size", type=int, default=100, help="records per page task (default 100)")
    parser.add_argument("--state", default=os.environ.get("CUSTSYNC_BENCH_STATE_URL", DEFAULT_STATE))
    parser.add_argument("--output", type=Path, default=RESULTS / "fanout.json")
    args = parser.parse_args(argv)
    print(f"custsync fan-out bench: {args.records:,} at {LATENCY_MS:g} ms, workers {args.workers}", flush=True)
    result = run(args.records, args.workers, page_size=args.page_size, state=args.state,
                 log=lambda text: print(text, flush=True))  # fmt: skip
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=1, default=str) + "\n", encoding="utf-8")
    print()
    print(table(result))
    print(f"written: {args.output}")
    return 0 if all(r["status"] == "succeeded" for r in result["runs"]) else 1


if __name__ == "__main__":
    sys.exit(main())
