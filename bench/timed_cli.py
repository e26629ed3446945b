"""``custsync`` as the bench runs it: the CLI, with the time spent in HTTP requests measured by kind.

    BENCH_HTTP_STATS=/tmp/stats.json python -m bench.timed_cli run PIPELINE --config FILE --json

:meth:`connectors.http.HttpClient.request` (one call per request the engine
makes, its retries and waits included) is wrapped to keep, per connection and
``op`` (``list``, ``create``...), in constant memory:

- ``calls`` and ``sum_s``: how many, and the seconds they took added up;
- ``busy_s``: the seconds at least one of them was in flight (the union of
  their intervals: what the run spent waiting on that kind, concurrency
  counted once);
- ``in_flight_s``: seconds spent with 0, 1, 2... requests of any kind on the
  wire on that connection (time-weighted; ``httpx.AsyncClient.send``, inside
  the AIMD slot, so a request waiting for its turn is not counted), to see
  whether the run keeps its ``max_concurrency`` busy; ``asked``: the mean and
  most of the requests the engine has asked for at once (``HttpClient.request``:
  on the wire, waiting for a slot, or between retries).

At exit the numbers go to ``BENCH_HTTP_STATS`` as JSON, with the process's own
peak RSS (``VmHWM``) and its CPU from its first request to its exit
(``run_cpu_s``: the run's CPU, Python's start, imports and the config left
out, as the run's own ``duration_s`` leaves them out). Nothing else changes:
the engine, the connectors and their transports are the installed ones.
"""

from __future__ import annotations

import atexit
import contextvars
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENV = "BENCH_HTTP_STATS"


@dataclass
class _Kind:
    calls: int = 0
    sum_s: float = 0.0
    busy_s: float = 0.0
    open: int = 0
    since: float = 0.0


@dataclass
class _Levels:
    """Seconds spent at each number of open requests (time-weighted)."""

    open: int = 0
    changed: float = 0.0
    seconds: dict[int, float] = field(default_factory=dict)

    def step(self, by: int, now: float) -> None:
        if self.changed:
            self.seconds[self.open] = self.seconds.get(self.open, 0.0) + now - self.changed
        self.changed = now
        self.open += by

    def as_dict(self) -> dict[str, float]:
        return {str(n): round(s, 4) for n, s in sorted(self.seconds.items())}

    def summary(self) -> dict[str, float]:
        """The time-weighted mean while any was open, the most open at once, and the seconds with none."""
        busy = {n: s for n, s in self.seconds.items() if n > 0}
        total = sum(busy.values())
        mean = sum(n * s for n, s in busy.items()) / total if total else 0.0
        return {
            "mean_when_any": round(mean, 2),
            "most": max(busy, default=0),
            "none_s": round(self.seconds.get(0, 0.0), 4),
        }


@dataclass
class _Connection:
    kinds: dict[str, _Kind] = field(default_factory=dict)
    asked: _Levels = field(default_factory=_Levels)
    wire: _Levels = field(default_factory=_Levels)

    def start(self, op: str, now: float) -> None:
        self.asked.step(1, now)
        kind = self.kinds.setdefault(op, _Kind())
        if kind.open == 0:
            kind.since = now
        kind.open += 1

    def end(self, op: str, started: float, now: float) -> None:
        self.asked.step(-1, now)
        kind = self.kinds[op]
        kind.calls += 1
        kind.sum_s += now - started
        kind.open -= 1
        if kind.open == 0:
            kind.busy_s += now - kind.since

    def as_dict(self) -> dict[str, Any]:
        return {
            "by_op": {op: {"calls": k.calls, "sum_s": round(k.sum_s, 4), "busy_s": round(k.busy_s, 4)}
                      for op, k in self.kinds.items()},
            "in_flight_s": self.wire.as_dict(),
            "asked": self.asked.summary(),
        }  # fmt: skip


def install(path: str) -> None:
    """Wrap ``HttpClient.request``; write the numbers to ``path`` at exit."""
    import httpx

    from connectors.http import HttpClient

    connections: dict[str, _Connection] = {}
    current: contextvars.ContextVar[_Connection | None] = contextvars.ContextVar("bench_connection", default=None)
    original, send = HttpClient.request, httpx.AsyncClient.send
    started_at = time.perf_counter()
    cpu_at_first_request: list[float] = []

    async def timed(self: HttpClient, method: str, url: str, *, op: str, **kwargs: Any) -> Any:
        if not cpu_at_first_request:
            cpu_at_first_request.append(time.process_time())
        connection = connections.setdefault(self.name, _Connection())
        token = current.set(connection)
        began = time.perf_counter()
        connection.start(op, began)
        try:
            return await original(self, method, url, op=op, **kwargs)
        finally:
            connection.end(op, began, time.perf_counter())
            current.reset(token)

    async def on_the_wire(self: httpx.AsyncClient, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        connection = current.get()
        if connection is None:
            return await send(self, request, **kwargs)
        connection.wire.step(1, time.perf_counter())
        try:
            return await send(self, request, **kwargs)
        finally:
            connection.wire.step(-1, time.perf_counter())

    HttpClient.request = timed  # type: ignore[method-assign]
    httpx.AsyncClient.send = on_the_wire  # type: ignore[method-assign]

    def write() -> None:
        run_cpu = time.process_time() - cpu_at_first_request[0] if cpu_at_first_request else None
        out = {"process_s": round(time.perf_counter() - started_at, 4), "peak_rss_mb": _peak_rss_mb(),
               "run_cpu_s": run_cpu, "connections": {n: c.as_dict() for n, c in connections.items()}}  # fmt: skip
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(out, handle)

    atexit.register(write)


def _peak_rss_mb() -> float | None:
    """This process's own peak RSS (``VmHWM``): ``ru_maxrss`` as ``wait4`` reports it also holds the RSS
    of the process that spawned it (Linux keeps the old memory's high-water mark across ``exec``)."""
    try:
        for line in Path("/proc/self/status").read_text(encoding="utf-8").splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def main() -> None:
    path = os.environ.get(ENV)
    if path:
        install(path)
    from worker.cli import main as cli

    cli()


if __name__ == "__main__":
    main()
