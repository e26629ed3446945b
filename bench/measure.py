"""What the bench measures with: the sandbox in its own process, CPU from ``/proc``, the requests by kind
(the sandbox's own request log), the machine, and a config holding only the pipelines benched."""

from __future__ import annotations

import os
import platform
import re
import socket
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
SOURCE, TARGET = "bigcapital", "thredfi"
PIPELINE = f"{SOURCE}_to_{TARGET}"
#: the opposite pipeline: with it in the config, PIPELINE is one of a two-way pair (worker/topology.py).
PARTNER = f"{TARGET}_to_{SOURCE}"
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


# -- the config --------------------------------------------------------------------


#: the run lock's Redis in every bench config: a database of its own, so that a bench run never takes (or
#: waits on) the locks of a service using this machine's Redis (database 0, the sandbox config's default).
BENCH_REDIS = "redis://127.0.0.1:6379/14"


def write_config(
    box: SandboxProcess,
    workdir: Path,
    *,
    pipelines: tuple[str, ...] = (PIPELINE,),
    connection: dict[str, dict[str, str]] | None = None,
    state_url: str | None = None,
    broker_url: str | None = None,
) -> Path:
    """The sandbox's config in ``workdir``, holding only ``pipelines`` (the benched one by default).

    :func:`sandbox.server.sandbox_config` writes a pipeline for every ordered pair of systems,
    which makes each one of a two-way pair; the bench measures the one-way pipeline unless it
    asks for its partner too. ``connection`` adds settings to connections (name -> key -> TOML value).
    The state is ``workdir/state.db`` (SQLite) unless ``state_url`` says otherwise; the broker
    :data:`BENCH_REDIS` unless ``broker_url`` does.
    """
    from sandbox.server import sandbox_config

    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "custsync.toml"
    state = state_url or f"sqlite:///{workdir / 'state.db'}"
    text = sandbox_config(box.url, state_url=state, broker_url=broker_url or BENCH_REDIS)
    head, *blocks = text.split("\n[pipelines.")
    named = {block.split("]", 1)[0]: block for block in blocks}
    missing = set(pipelines) - set(named)
    if missing:
        raise ValueError(f"the sandbox config has no pipeline {sorted(missing)}")
    text = head.rstrip("\n") + "\n" + "".join(f"\n[pipelines.{named[name].rstrip()}\n" for name in pipelines)
    for name, settings in (connection or {}).items():
        header = f"[connections.{name}]\n"
        text = text.replace(header, header + "".join(f"{k} = {v}\n" for k, v in settings.items()), 1)
    config.write_text(text, encoding="utf-8")
    return config


def machine() -> dict[str, Any]:
    """Cores, CPU model, Python and platform of this machine, and its load average now."""
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
            "platform": platform.platform(), "load_average": load_average()}  # fmt: skip


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages (the machine is shared: what else ran)."""
    return [round(x, 2) for x in os.getloadavg()]
