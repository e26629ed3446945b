"""The service as users run it: Celery workers and beats as real processes.

Redis is the real one at 127.0.0.1:6379, database 12 (14 on a second xdist worker; emptied around each
test). The sandbox is served on loopback from this process, so the tests
see every request the workers make. State is SQLite in the test's temporary
directory (WAL and a busy timeout let several workers share it).

Every process is started in a session of its own and killed with its
children at teardown.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from sandbox.server import Sandbox, free_port
from tests.support.parallel import redis_url
from tests.support.service import CUSTSYNC, PIPELINE, REPO, Service, serve
from worker.lock import KEY_PREFIX, Holder

CRASHING_RUN = REPO / "scripts" / "crashing_run.py"

pytestmark = [pytest.mark.slow, pytest.mark.redis]

#: Database 12 (14 for the second xdist worker), emptied around each test.
REDIS_URL = redis_url(12, 14)
LOCK_KEY = KEY_PREFIX + PIPELINE


class Processes(Service):
    """:class:`Service` with a seeded source and slow runs to catch mid-way."""

    def seed(self, count: int) -> int:
        """Seed the source; return how many writes one run makes (a create each, plus archives)."""
        records = self.box["bigcapital"].seed_fake(count)
        return count + sum(1 for r in records if not r["active"])

    def slow_source(self, delay_s: float) -> None:
        """A run of a few seconds: a slow listing, then creates slow enough to be caught mid-run.

        One listing page holds 1,000 Bigcapital customers, so without slow writes a
        run of 150 ends within a fraction of a second of its 20th write.
        """
        self.box["bigcapital"].faults.add("slow", method="GET", path="customers$", delay_s=delay_s, times=None)
        self.box["thredfi"].faults.add("slow", method="POST", path="customers/$", delay_s=0.15, times=None)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Processes]:
    """A fresh sandbox on loopback, this worker's Redis database emptied, processes killed at the end."""
    yield from serve(tmp_path, REDIS_URL, Sandbox(), Processes)


def _assert_each_customer_once(service: Processes, count: int) -> None:
    ids = service.target_external_ids()
    assert len(ids) == count
    assert len(set(ids)) == count


def _procfile() -> dict[str, list[str]]:
    """The Procfile's processes, with ``celery`` run by this interpreter."""
    processes = {}
    for line in (REPO / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        argv = shlex.split(command)
        processes[name.strip()] = [sys.executable, "-m", "celery", *argv[1:]] if argv[0] == "celery" else argv
    return processes


def test_given_the_deployment_section_when_followed_then_a_scheduled_pipeline_syncs_by_itself_once(
    service: Processes,
) -> None:
    # the README deployment section, step by step: the sandbox writes the config, a schedule is added,
    # the Procfile's worker and beat start (the beat twice: only one may schedule).
    port = free_port()
    config = service.tmp / "service.toml"
    env = {"CUSTSYNC_CONFIG": str(config), "CUSTSYNC_STATE_URL": "", "CUSTSYNC_LOG_FORMAT": "auto"}
    service.start("sandbox", [CUSTSYNC, "sandbox", "--seed", "30", "--port", str(port), "--write-config", str(config)])
    service.wait(
        lambda: config.exists() and _answers(f"http://127.0.0.1:{port}/bigcapital/_admin/customers"), 30, "the sandbox"
    )
    config.write_text(
        config.read_text().replace(f"[pipelines.{PIPELINE}]\n", f'[pipelines.{PIPELINE}]\nschedule = "* * * * *"\n')
    )
    processes = _procfile()
    assert sorted(processes) == ["beat", "worker"]
    worker = service.start("worker", processes["worker"], **env)
    beats = [service.start("beat1", processes["beat"], **env), service.start("beat2", processes["beat"], **env)]

    def status() -> dict[str, Any]:
        done = subprocess.run(
            [CUSTSYNC, "status", PIPELINE, "--json"],
            capture_output=True,
            text=True,
            env=service.environ(**env),
            cwd=service.tmp,
            timeout=60,
            check=True,
        )
        found: dict[str, Any] = json.loads(done.stdout)
        return found

    service.wait(lambda: any(r["status"] == "succeeded" for r in status()["runs"]), 80, "a scheduled run")
    time.sleep(3)  # had the second beat scheduled too, its run would be here by now

    runs = status()["runs"]
    # The sandbox seeds the same customers in every system, and its pipelines form pairs: a pair's
    # first sync links each customer to the target's own record by e-mail instead of copying it.
    assert [(r["kind"], r["status"], r["created"] + r["matched"]) for r in runs] == [("run", "succeeded", 30)]
    # Each of the 30 is in Thredfi once: linked to the record Thredfi already held, or created.
    emails = [c["email"] for c in _get(f"http://127.0.0.1:{port}/thredfi/_admin/customers")]
    assert len(emails) == len(set(emails)) == 30
    # Both beats are up; one holds the lock and schedules, the other waits for it.
    assert all(b.popen.poll() is None for b in beats)
    assert sum("beat: Acquired lock" in b.text() for b in beats) == 1
    assert sum("Sending due task custsync.sync:" in b.text() for b in beats) == 1

    # Not a terminal, so JSON: the engine's events and Celery's own lines, with the task bound.
    events = worker.events()
    (finished,) = [e for e in events if e.get("event") == "run_finished"]
    assert finished["pipeline"] == PIPELINE
    assert finished["run_id"] == runs[0]["run_id"]
    assert finished["task_id"]
    celery_lines = [e for e in events if str(e.get("event", "")).startswith("Task custsync.sync_pipeline[")]
    assert any(e.get("task_id") == finished["task_id"] and "succeeded" in e["event"] for e in celery_lines)


def _get(url: str) -> Any:
    return httpx.get(url, timeout=5).json()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_given_two_workers_when_one_pipeline_is_sent_twice_at_once_then_one_run_writes(service: Processes) -> None:
    writes = service.seed(150)
    service.slow_source(1.0)  # a run of a few seconds: both deliveries overlap it
    service.write_config()
    workers = [service.worker("w1"), service.worker("w2")]
    app = service.app()
    try:
        results = [app.send_task("custsync.sync_pipeline", args=[PIPELINE]) for _ in range(2)]
        summaries = [r.get(timeout=60) for r in results]
    finally:
        app.close()

    assert sorted(s["status"] for s in summaries) == ["skipped", "succeeded"]
    assert sorted(r.status for r in service.runs()) == ["skipped", "succeeded"]
    _assert_each_customer_once(service, 150)
    assert service.target_writes() == writes
    assert all("custsync.sync_pipeline[" in w.text() for w in workers)  # each worker took one
    skipped = next(e for w in workers for e in w.events() if e.get("event") == "run_skipped")
    assert skipped["reason"] == "lock_held"


def test_given_a_worker_process_killed_mid_run_when_redelivered_then_it_waits_out_the_lock_and_finishes(
    service: Processes,
) -> None:
    service.seed(150)
    service.slow_source(1.0)
    service.write_config()
    # Prefork: the run is in a child process. A lock TTL longer than the parent takes
    # to notice the lost child and requeue, so the redelivery meets the dead run's lock.
    worker = service.worker("w1", CUSTSYNC_LOCK_TTL_S="10")
    app = service.app()
    client = redis.Redis.from_url(REDIS_URL)
    try:
        result = app.send_task("custsync.sync_pipeline", args=[PIPELINE])
        service.wait(lambda: service.target_writes() >= 20, 30, "the first page written")
        holder = Holder.parse(client.get(LOCK_KEY).decode())  # type: ignore[union-attr]
        assert holder.owner == f"task:{result.id}"
        os.kill(holder.pid, signal.SIGKILL)  # type: ignore[arg-type]
        summary = result.get(timeout=60)
    finally:
        app.close()
        client.close()

    assert summary["status"] == "succeeded"
    waited = [e for e in worker.events() if e.get("event") == "lock_wait"]
    assert waited
    assert waited[0]["holder"] == holder.token  # the dead child's lock, waited out rather than skipped
    statuses = [r.status for r in service.runs()]
    assert statuses.count("succeeded") == 1
    assert "skipped" not in statuses
    _assert_each_customer_once(service, 150)


def test_given_a_whole_worker_killed_mid_run_when_another_starts_then_the_task_is_delivered_again(
    service: Processes,
) -> None:
    service.seed(150)
    service.slow_source(1.0)
    service.write_config()
    short = {"CUSTSYNC_VISIBILITY_TIMEOUT_S": "10", "CUSTSYNC_TASK_TIME_LIMIT_S": "8"}
    first = service.worker("w1", pool="solo", **short)
    app = service.app()
    client = redis.Redis.from_url(REDIS_URL)
    try:
        result = app.send_task("custsync.sync_pipeline", args=[PIPELINE])
        service.wait(lambda: service.target_writes() >= 20, 30, "the first page written")
        first.kill()
        assert client.get(LOCK_KEY) is not None  # left behind by the dead worker
        killed_at = time.monotonic()
        second = service.worker("w2", pool="solo", **short)
        summary = result.get(timeout=60)
        took = time.monotonic() - killed_at
    finally:
        app.close()
        client.close()

    assert summary["status"] == "succeeded"
    assert f"custsync.sync_pipeline[{result.id}]" in second.text()
    assert took < 40
    _assert_each_customer_once(service, 150)


def test_given_a_terminal_less_backfill_when_run_inline_then_it_logs_progress_and_exits_0(service: Processes) -> None:
    writes = service.seed(250)
    service.write_config()
    done = service.cli("backfill", PIPELINE)

    assert done.returncode == 0, done.stderr[-3000:]
    events = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    progress = [e for e in events if e["event"] == "backfill_progress"]
    assert progress
    assert progress[0]["pipeline"] == PIPELINE
    assert "lock_acquired" in {e["event"] for e in events}
    assert f"backfill {PIPELINE}: succeeded" in done.stdout
    assert [(r.kind, r.status) for r in service.runs()] == [("backfill", "succeeded")]
    _assert_each_customer_once(service, 250)
    assert service.target_writes() == writes
    assert redis.Redis.from_url(REDIS_URL).get(LOCK_KEY) is None


def test_given_a_backfill_killed_when_started_again_then_it_finishes_with_no_duplicate(service: Processes) -> None:
    service.seed(150)
    service.write_config()
    # A TTL that outlasts the restart below, so the second backfill meets the dead one's lock.
    # The kill is injected around the same command line by the kill tests' driver (never by custsync).
    killed = subprocess.run(
        [sys.executable, str(CRASHING_RUN), "write:60", "backfill", PIPELINE, "-c", str(service.config_path)],
        capture_output=True,
        text=True,
        env=service.environ(CUSTSYNC_LOCK_TTL_S="10"),
        cwd=service.tmp,
        timeout=120,
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL
    assert redis.Redis.from_url(REDIS_URL).get(LOCK_KEY) is not None  # the dead process's lock

    again = service.cli("backfill", PIPELINE)

    assert again.returncode == 0, again.stderr[-3000:]
    # The dead process of this host holds nothing: its lock is taken over at once, not refused.
    assert '"lock_taken_over"' in again.stderr
    _assert_each_customer_once(service, 150)
    assert [r.status for r in service.runs()].count("succeeded") == 1


def test_given_a_backfill_interrupted_with_ctrl_c_when_started_again_then_it_finishes(service: Processes) -> None:
    service.seed(150)
    service.slow_source(1.0)
    service.write_config()
    proc = service.start("backfill", [CUSTSYNC, "backfill", PIPELINE, "-c", str(service.config_path)])
    service.wait(lambda: service.target_writes() >= 20, 30, "the first page written")
    proc.popen.send_signal(signal.SIGINT)
    assert proc.popen.wait(timeout=20) == 3
    assert "interrupted" in proc.text()
    assert redis.Redis.from_url(REDIS_URL).get(LOCK_KEY) is None  # released on the way out

    again = service.cli("backfill", PIPELINE)

    assert again.returncode == 0, again.stderr[-3000:]
    _assert_each_customer_once(service, 150)


def test_given_enqueue_when_a_worker_runs_then_the_backfill_finishes_there(service: Processes) -> None:
    service.seed(60)
    service.write_config()
    worker = service.worker("w1")
    done = service.cli("backfill", PIPELINE, "--enqueue")

    assert done.returncode == 0, done.stderr
    task_id = done.stdout.strip()
    app = service.app()
    try:
        summary = app.AsyncResult(task_id).get(timeout=60)
    finally:
        app.close()
    assert summary["status"] == "succeeded"
    assert [(r.kind, r.status) for r in service.runs()] == [("backfill", "succeeded")]
    assert any(e.get("event") == "backfill_progress" and e.get("task_id") == task_id for e in worker.events())
    _assert_each_customer_once(service, 60)


def test_given_a_source_that_cannot_filter_when_since_is_given_then_usage_error(service: Processes) -> None:
    service.write_config()
    done = service.cli("backfill", "thredfi_to_bigcapital", "--since", "2024-01-01")
    assert done.returncode == 2
    assert "thredfi cannot list customers created since a date" in done.stderr


def test_given_an_unreachable_state_store_when_a_run_is_sent_then_it_is_retried_with_backoff(
    service: Processes,
) -> None:
    service.write_config()
    worker = service.worker("w1", CUSTSYNC_STATE_URL="postgresql+psycopg://custsync@127.0.0.1:1/custsync")
    app = service.app()
    try:
        result = app.send_task("custsync.sync_pipeline", args=[PIPELINE])
        service.wait(lambda: result.state == "RETRY", 30, "the task to be retried")
    finally:
        app.close()
    (retry,) = [e for e in worker.events() if e.get("event") == "run_retry"]
    assert retry["attempt"] == 1
    assert 0 < retry["countdown_s"] <= 30
    assert retry["task_id"] == result.id


def test_given_refused_credentials_when_a_run_is_sent_then_it_fails_once_without_retry(service: Processes) -> None:
    from sandbox import bigcapital
    from worker.tasks import RunFailedError

    service.seed(5)
    service.write_config()
    service.box["bigcapital"].faults.add("error_before", path="customers$", status=401, times=None)
    worker = service.worker("w1")
    app = service.app()
    try:
        result = app.send_task("custsync.sync_pipeline", args=[PIPELINE])
        with pytest.raises(RunFailedError, match="failed"):
            result.get(timeout=30)
    finally:
        app.close()
    assert [r.status for r in service.runs()] == ["failed"]
    assert not [e for e in worker.events() if e.get("event") == "run_retry"]
    assert bigcapital.SANDBOX_API_KEY not in worker.text()  # secrets stay out of the logs
