"""Real service processes for tests: Celery workers and beats (and the CLI) against a sandbox on loopback.

Each test gets a :class:`Service`: a sandbox served from the test's process (so the test sees
every request the workers make), a config for it in the test's directory, SQLite state there
(WAL and a busy timeout let several processes share it), and a Redis database of its own.
Every process is started in a session of its own and killed with its children at the end.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import redis
from celery import Celery

from sandbox.server import BackgroundServer, Sandbox, sandbox_config
from state.models import Run
from state.store import Store
from worker.app import make_app
from worker.config import load_config

REPO = Path(__file__).resolve().parents[2]
#: the console script, as installed beside this interpreter.
CUSTSYNC = str(Path(sys.executable).parent / "custsync")
PIPELINE = "bigcapital_to_thredfi"


@dataclass
class Proc:
    """A process we started, its output in a file."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def events(self) -> list[dict[str, Any]]:
        """The JSON log events so far."""
        found = []
        for line in self.text().splitlines():
            if line.startswith("{"):
                try:
                    found.append(json.loads(line))
                except ValueError:
                    continue  # a line still being written
        return found

    def kill(self) -> None:
        """SIGKILL the process and its children (its session)."""
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=10)


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@dataclass
class Service:
    """The sandbox, a config for it, and the processes of one test."""

    tmp: Path
    box: Sandbox
    url: str
    redis_url: str
    procs: list[Proc] = field(default_factory=list)

    @property
    def config_path(self) -> Path:
        return self.tmp / "custsync.toml"

    @property
    def state_url(self) -> str:
        return f"sqlite:///{self.tmp}/state.db"

    def write_config(self, *, schedule: str | None = None) -> None:
        text = sandbox_config(self.url, state_url=self.state_url, broker_url=self.redis_url)
        if schedule is not None:
            text = text.replace(f"[pipelines.{PIPELINE}]\n", f'[pipelines.{PIPELINE}]\nschedule = "{schedule}"\n')
        self.config_path.write_text(text)

    def environ(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CUSTSYNC_", "CELERY_"))}
        env.update(
            {
                "PYTHONPATH": str(REPO),
                "CUSTSYNC_CONFIG": str(self.config_path),
                "CUSTSYNC_BROKER_URL": self.redis_url,
                "CUSTSYNC_STATE_URL": self.state_url,
                "CUSTSYNC_LOG_FORMAT": "json",
                "CUSTSYNC_LOCK_TTL_S": "3",
                "CUSTSYNC_VISIBILITY_TIMEOUT_S": "60",
                "CUSTSYNC_TASK_TIME_LIMIT_S": "50",
            }
        )
        env.update(extra)
        return env

    def start(self, name: str, argv: list[str], **env: str) -> Proc:
        log = self.tmp / f"{name}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.environ(**env),
                cwd=self.tmp,
                start_new_session=True,
                # Ctrl-C reaches the process as from a terminal, even when these tests run in a
                # shell's background job (which ignores SIGINT, so Python would install no handler).
                preexec_fn=_default_sigint,
            )
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def worker(self, name: str, *, pool: str = "prefork", **env: str) -> Proc:
        argv = [sys.executable, "-m", "celery", "-A", "worker.app", "worker", "--loglevel", "INFO",
                "--pool", pool, "--concurrency", "1", "--hostname", f"{name}@%h",
                "--without-mingle", "--without-gossip"]  # fmt: skip
        proc = self.start(name, argv, **env)
        self.wait(lambda: "worker_ready" in proc.text(), 30, f"{name} ready")
        return proc

    def beat(self, name: str, **env: str) -> Proc:
        return self.start(
            name, [sys.executable, "-m", "celery", "-A", "worker.app", "beat", "--loglevel", "INFO"], **env
        )

    def cli(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [CUSTSYNC, *args, "-c", str(self.config_path)],
            capture_output=True,
            text=True,
            env=self.environ(**env),
            cwd=self.tmp,
            timeout=120,
            check=False,
        )

    def app(self) -> Celery:
        return make_app(load_config(self.config_path))

    def runs(self) -> list[Run]:
        store = Store(self.state_url)
        try:
            return list(reversed(store.runs(PIPELINE, limit=50)))
        finally:
            store.close()

    def wait(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.1)
        tails = "\n".join(f"--- {p.name} (rc={p.popen.poll()}):\n{p.text()[-3000:]}" for p in self.procs)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{tails}")

    def target_external_ids(self) -> list[str]:
        return [r["external_id"] for r in list(self.box["thredfi"].records.values())]

    def target_writes(self) -> int:
        return len(self.box["thredfi"].writes())

    def close(self) -> None:
        for proc in self.procs:
            proc.kill()


S = TypeVar("S", bound="Service")


def serve(tmp: Path, redis_url: str, box: Sandbox, kind: type[S]) -> Iterator[S]:
    """A fixture's body: ``box`` served on loopback, the Redis database emptied before and after,
    every process killed at the end."""
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    with BackgroundServer(box.app) as server:
        service = kind(tmp, box, server.url, redis_url)
        try:
            yield service
        finally:
            service.close()
            client.flushdb()
            client.close()


__all__ = ["CUSTSYNC", "PIPELINE", "REPO", "Proc", "Service", "serve"]
