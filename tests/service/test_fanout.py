"""A backfill fanned out by page (:mod:`worker.fanout`): real Celery worker processes on real Redis.

Redis database 3 (4 on a second xdist worker), emptied around each test; the sandbox on loopback
in this process, so the tests see every request; SQLite state in the test's directory.
How many page tasks ran is read from Celery's result backend and the workers' own log lines,
not from custsync's counters.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from structlog.testing import capture_logs

from sandbox.server import Sandbox
from state.store import Store
from tests.support.parallel import redis_url
from tests.support.service import PIPELINE, Service, serve
from worker.config import load_config
from worker.engine import RunResult
from worker.lock import KEY_PREFIX, Holder

pytestmark = [pytest.mark.slow, pytest.mark.redis]

REDIS_URL = redis_url(3, 4)
CUSTOMERS = 350
PAGE_SIZE = 50


class Box(Service):
    """:class:`Service` with a seeded source of :data:`CUSTOMERS`, counted in pages."""

    def text(self, name: str) -> str:
        return next(proc.text() for proc in self.procs if proc.name == name)

    def events(self, name: str) -> list[dict[str, Any]]:
        return next(proc.events() for proc in self.procs if proc.name == name)

    def pages(self) -> int:
        """Page tasks a backfill makes: Bigcapital lists active and inactive customers apart."""
        active = sum(1 for r in self.box["bigcapital"].records.values() if r["active"])
        return -(-active // PAGE_SIZE) + -(-(CUSTOMERS - active) // PAGE_SIZE)

    def inactive(self) -> int:
        return sum(1 for r in self.box["bigcapital"].records.values() if not r["active"])


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Box]:
    sandbox = Sandbox()
    sandbox["bigcapital"].seed_fake(CUSTOMERS)
    # Creates slow enough that a run lasts a few seconds over two workers.
    sandbox["thredfi"].faults.add("slow", method="POST", path="customers/$", delay_s=0.05, times=None)
    for here in serve(tmp_path, REDIS_URL, sandbox, Box):
        here.write_config()
        yield here


def _page_results(client: redis.Redis) -> list[dict[str, Any]]:
    """The results of every ``custsync.backfill_page`` task, as Celery's backend holds them."""
    found = []
    for key in client.scan_iter(match="celery-task-meta-*"):
        meta = json.loads(client.get(key) or b"{}")
        result = meta.get("result")
        if meta.get("status") == "SUCCESS" and isinstance(result, dict) and "page" in result and "by" in result:
            found.append(result)
    return found


def _running_page(log: str) -> int | None:
    """The page of the ``custsync.backfill_page`` task a worker received last and has not finished."""
    received: dict[str, int] = {}
    finished: set[str] = set()
    for line in log.splitlines():
        match = re.search(r"Task custsync\.backfill_page\[([0-9a-f-]+)\] (received|succeeded)", line)
        if match is None:
            continue
        if match[2] == "succeeded":
            finished.add(match[1])
        else:
            page = re.search(r"'page': (\d+)", line)
            received[match[1]] = int(page[1]) if page else -1
    running = [page for task, page in received.items() if task not in finished]
    return running[-1] if running else None


def _run_now(box: Box) -> RunResult:
    """A run of the pipeline from this process, as ``custsync run`` takes the locks."""
    from worker.runner import run_exclusive

    config = load_config(box.config_path, environ={})
    store = Store(config.state.url)
    try:
        return run_exclusive(config, PIPELINE, store=store, redis_url=REDIS_URL, owner="cli", ttl_s=3)
    finally:
        store.close()


def _keeper(sent: list[dict[str, Any]]) -> Callable[[dict[str, Any]], str]:
    """A ``send`` that keeps the page messages and sends nothing."""

    def send(message: dict[str, Any]) -> str:
        sent.append(message)
        return f"kept-{len(sent)}"

    return send


def _assert_each_customer_once(box: Box) -> None:
    ids = box.target_external_ids()
    assert len(ids) == CUSTOMERS
    assert len(set(ids)) == CUSTOMERS


def test_given_a_large_backfill_on_two_workers_when_enqueued_then_each_page_is_a_task_of_one_run(box: Box) -> None:
    box.worker("w1")
    box.worker("w2")
    app = box.app()
    client = redis.Redis.from_url(REDIS_URL)
    try:
        result = app.send_task("custsync.backfill", args=[PIPELINE], kwargs={"page_size": PAGE_SIZE})
        box.wait(lambda: box.target_writes() >= 20, 30, "the first creates")
        # A second run while the backfill runs: the pipeline's lock is the backfill's for the whole run.
        second = _run_now(box)
        summary = result.get(timeout=60)
        box.wait(lambda: len(_page_results(client)) == box.pages(), 20, "every page task's result")
        pages = _page_results(client)
    finally:
        app.close()
        client.close()

    assert summary["status"] == "succeeded"
    assert (summary["pulled"], summary["created"], summary["failed"]) == (CUSTOMERS, CUSTOMERS, 0)
    assert second.status == "skipped"
    assert f"task:{result.id}" in (second.error or "")  # the backfill's own task holds it
    runs = box.runs()
    assert sorted((r.kind, r.status) for r in runs) == [("backfill", "succeeded"), ("run", "skipped")]
    (run,) = [r for r in runs if r.kind == "backfill"]
    assert (run.pulled, run.created) == (CUSTOMERS, CUSTOMERS)
    assert run.id == summary["run_id"]
    _assert_each_customer_once(box)
    assert box.target_writes() == CUSTOMERS + box.inactive()  # a create each (and an archive), never a second attempt

    # One task per page; each page synced exactly once, by a page task or by the coordinator,
    # whose worker took the pages no task had claimed yet.
    assert sorted(p["page"] for p in pages) == list(range(1, box.pages() + 1))
    by_tasks = [p for p in pages if p["status"] == "synced"]
    by_coordinator = [p for p in pages if p["status"] == "taken" and p["by"] == "coordinator"]
    assert len(by_tasks) + len(by_coordinator) == box.pages()
    assert by_tasks  # the other worker took pages: the run was shared
    assert sum(p["counts"]["created"] for p in by_tasks) <= CUSTOMERS
    logged = box.text("w1") + box.text("w2")
    assert logged.count("Task custsync.backfill_page[") >= box.pages()  # Celery's own lines: received and succeeded
    assert all(p["by"].startswith("task:") for p in by_tasks)
    synced = [e for name in ("w1", "w2") for e in box.events(name) if e.get("event") == "page_synced"]
    assert {e["run_id"] for e in synced} == {summary["run_id"]}
    assert redis.Redis.from_url(REDIS_URL).get(KEY_PREFIX + PIPELINE) is None


def test_given_a_worker_killed_mid_fanout_when_the_run_ends_and_runs_again_then_no_customer_is_doubled(
    box: Box,
) -> None:
    w1 = box.worker("w1")
    w2 = box.worker("w2")
    app = box.app()
    client = redis.Redis.from_url(REDIS_URL)
    try:
        result = app.send_task("custsync.backfill", args=[PIPELINE], kwargs={"page_size": PAGE_SIZE})
        box.wait(lambda: box.target_writes() >= 60, 30, "pages being written")
        holder = Holder.parse(client.get(KEY_PREFIX + PIPELINE).decode())  # type: ignore[union-attr]
        # The worker that does not run the coordinator is running a page: killed whole.
        coordinator_pids = {w1.popen.pid: "w1", w2.popen.pid: "w2"}
        parent = int(Path(f"/proc/{holder.pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        victim, name = (w2, "w2") if coordinator_pids.get(parent) == "w1" else (w1, "w1")
        box.wait(lambda: _running_page(box.text(name)) is not None, 10, f"a page running on {name}")
        victim.kill()
        cut = _running_page(box.text(name))
        summary = result.get(timeout=60)
        again = app.send_task("custsync.sync_pipeline", args=[PIPELINE]).get(timeout=60)
    finally:
        app.close()
        client.close()

    # The dead worker's page was claimed and stopped renewing: the coordinator ran it itself.
    assert summary["status"] == "succeeded", summary
    coordinator = "w1" if name == "w2" else "w2"
    here = [e["page"] for e in box.events(coordinator) if e.get("event") == "page_synced_here"]
    assert cut in here
    assert summary["pulled"] == CUSTOMERS
    assert again["status"] == "succeeded"
    assert (again["created"], again["pulled"]) == (0, CUSTOMERS)
    _assert_each_customer_once(box)


def test_given_a_lost_state_store_when_a_fanned_out_backfill_runs_then_natural_key_matches_wait_for_all_pages(
    box: Box,
) -> None:
    # In this process, no worker: the coordinator runs every page it sent (nobody claims them).
    from state.store import Store as StateStore
    from worker.fanout import Coordinator
    from worker.lock import redis_client
    from worker.runner import run_exclusive

    pipeline, count = "thredfi_to_bigcapital", 120
    box.box["thredfi"].seed_fake(count)
    text = box.config_path.read_text()
    results = []
    for state, drive in ((box.tmp / "first.db", None), (box.tmp / "lost.db", True)):
        box.config_path.write_text(text.replace(box.state_url, f"sqlite:///{state}"))
        config = load_config(box.config_path, environ={})
        store = StateStore(config.state.url)
        sent: list[dict[str, Any]] = []
        coordinator = Coordinator(redis_client(REDIS_URL), _keeper(sent), ttl_s=5, page_size=25)
        try:
            with capture_logs() as logs:
                result = run_exclusive(
                    config, pipeline, store=store, redis_url=REDIS_URL, owner="cli", ttl_s=5, kind="backfill",
                    drive=coordinator if drive else None,
                )  # fmt: skip
        finally:
            store.close()
        results.append((result, sent, logs))
    (first, _, _), (second, sent, logs) = results

    # The fake customers of both emulators come from one seed: Bigcapital's 350 hold Thredfi's 120 already.
    assert first.status == "succeeded"
    assert (first.counts.matched, first.counts.created) == (count, 0)
    # Thredfi lists 100 a page: 4 pages of 25, then one of 20.
    assert [(m["page"], m["offset"], len(m["records"])) for m in sent] == [
        (1, 0, 25), (2, 25, 25), (3, 50, 25), (4, 75, 25), (5, 100, 20),
    ]  # fmt: skip
    # Each page carries when its listing page was asked for (a two-way page reads again what moved since).
    listed = [datetime.fromisoformat(m["listed_at"]) for m in sent]
    assert len(set(listed[:4])) == 1, listed
    assert listed[0] < listed[4], listed
    assert all(t.tzinfo is not None and abs(datetime.now(UTC) - t) < timedelta(minutes=5) for t in listed)
    # The state store is new: every create would match a Bigcapital record by a natural key, so
    # each waited for the whole run before it was matched (never created a second time).
    assert second.status == "succeeded"
    assert (second.counts.pulled, second.counts.matched, second.counts.created) == (count, count, 0)
    assert len(box.box["bigcapital"].records) == CUSTOMERS
    assert not [r for r in box.box["bigcapital"].writes() if r.method == "POST"]
    (done,) = [e for e in logs if e["event"] == "fanout_pages_done"]
    assert (done["pages"], done["by_coordinator"], done["waiting"]) == (5, 5, count)


def test_given_a_page_refused_when_fanned_out_then_the_run_fails_once_and_late_page_tasks_write_nothing(
    box: Box,
) -> None:
    from state.store import Store as StateStore
    from worker.fanout import Coordinator, run_page
    from worker.lock import redis_client
    from worker.runner import run_exclusive

    config = load_config(box.config_path, environ={})
    store = StateStore(config.state.url)
    sent: list[dict[str, Any]] = []
    # Refuses every create after the 120th (and no longer slow): the coordinator's third page fails for good.
    box.box["thredfi"].faults.clear()
    box.box["thredfi"].faults.add("error_before", method="POST", path="customers/$", status=403, times=None,
                                      skip=120)  # fmt: skip
    try:
        result = run_exclusive(
            config, PIPELINE, store=store, redis_url=REDIS_URL, owner="cli", ttl_s=5, kind="backfill",
            drive=Coordinator(redis_client(REDIS_URL), _keeper(sent), ttl_s=5, page_size=PAGE_SIZE),
        )  # fmt: skip
        written = box.target_writes()
        # A page task that arrives now, with the run over and its lock released, does nothing.
        late = run_page(config, sent[0], store=store, redis_url=REDIS_URL, owner="task:late")
    finally:
        store.close()

    assert result.status == "failed"
    assert "HTTP 403" in (result.error or "")  # the page said why, as a run in one process does
    assert [(r.kind, r.status) for r in box.runs()] == [("backfill", "failed")]
    assert late.status == "run_gone"
    assert box.target_writes() == written
    assert redis.Redis.from_url(REDIS_URL).get(KEY_PREFIX + PIPELINE) is None
