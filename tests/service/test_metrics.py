"""Prometheus metrics: served on a port, fed from a task's run result, scraped over HTTP."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
import structlog

from sandbox.server import BackgroundServer, Sandbox, free_port, sandbox_config
from tests.support.parallel import redis_url
from worker import metrics
from worker.app import service_config
from worker.config import load_config
from worker.settings import get_settings

PIPELINE = "bigcapital_to_thredfi"
#: Database 9 (8 for the second xdist worker), emptied around each test.
REDIS_URL = redis_url(9, 8)


def _sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in Prometheus' text format, or ``None``."""
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}", 1)[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    """The sandbox on loopback, a worker config for it, and the task's settings pointing there."""
    box = Sandbox()
    with BackgroundServer(box.app) as server:
        path = tmp_path / "custsync.toml"
        path.write_text(sandbox_config(server.url, state_url=f"sqlite:///{tmp_path}/state.db", broker_url=REDIS_URL))
        monkeypatch.setenv("CUSTSYNC_CONFIG", str(path))
        monkeypatch.delenv("CUSTSYNC_STATE_URL", raising=False)
        monkeypatch.delenv("CUSTSYNC_BROKER_URL", raising=False)
        get_settings.cache_clear()
        service_config.cache_clear()
        client = redis.Redis.from_url(REDIS_URL)
        client.flushdb()
        try:
            yield box
        finally:
            client.flushdb()
            client.close()
            get_settings.cache_clear()
            service_config.cache_clear()


@pytest.mark.redis
def test_given_metrics_served_when_a_task_runs_then_runs_records_quarantine_and_429s_are_scraped(
    served: Sandbox,
) -> None:
    from worker.tasks import sync_pipeline

    box = served
    seeded = box["bigcapital"].seed_fake(6)
    box["bigcapital"].admin_edit(seeded[2], {"email": "not-an-email"})
    box["bigcapital"].faults.add("rate_limit", method="GET", retry_after=0, times=2)
    port = free_port()
    metrics.enable()
    server = metrics.serve(port, host="127.0.0.1")
    before = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    runs_before = _sample(before, "custsync_runs_total", pipeline=PIPELINE, status="partial") or 0.0
    limited_before = _sample(before, "custsync_rate_limited_total", system="bigcapital") or 0.0
    try:
        summary = sync_pipeline.apply(args=[PIPELINE]).get()
        structlog.get_logger("test").warning("field_not_stored", pipeline=PIPELINE, field="phone")
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    finally:
        server.shutdown()

    assert summary["status"] == "partial", summary
    assert _sample(text, "custsync_runs_total", pipeline=PIPELINE, status="partial") == runs_before + 1
    assert _sample(text, "custsync_records_total", pipeline=PIPELINE, outcome="created") is not None
    assert (_sample(text, "custsync_records_total", pipeline=PIPELINE, outcome="failed") or 0) >= 1
    assert _sample(text, "custsync_quarantined_records", pipeline=PIPELINE) == 1.0
    assert (_sample(text, "custsync_run_duration_seconds_count", pipeline=PIPELINE) or 0) >= 1
    assert (_sample(text, "custsync_last_success_timestamp_seconds", pipeline=PIPELINE) or 0) > 0
    assert _sample(text, "custsync_rate_limited_total", system="bigcapital") == limited_before + 2
    assert (_sample(text, "custsync_field_not_stored_total", pipeline=PIPELINE, field="phone") or 0) >= 1
    # The worker that ran it is left for `custsync status`.
    assert metrics.last_workers(REDIS_URL, [PIPELINE])[PIPELINE]["run_id"] == summary["run_id"]


def test_given_metrics_not_enabled_then_observing_a_run_records_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    metrics.metrics()  # the families exist, so a sample recorded by mistake would show
    monkeypatch.setattr(metrics, "_enabled", False)
    metrics.observe_run({"pipeline": "nowhere_to_nothing", "status": "succeeded", "created": 3}, quarantined=0)
    from prometheus_client import REGISTRY

    labels = {"pipeline": "nowhere_to_nothing", "status": "succeeded"}
    assert REGISTRY.get_sample_value("custsync_runs_total", labels) is None


@pytest.mark.slow
@pytest.mark.redis
def test_given_a_prefork_worker_with_a_metrics_port_when_a_task_runs_then_its_parent_serves_the_childrens_counts(
    tmp_path: Path,
) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    from worker.app import make_app

    box = Sandbox()
    box["bigcapital"].seed_fake(5)
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    port = free_port()
    with BackgroundServer(box.app) as server:
        path = tmp_path / "custsync.toml"
        path.write_text(sandbox_config(server.url, state_url=f"sqlite:///{tmp_path}/state.db", broker_url=REDIS_URL))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CUSTSYNC_", "CELERY_", "PROMETHEUS_"))}
        env.update(
            CUSTSYNC_CONFIG=str(path),
            CUSTSYNC_METRICS_PORT=str(port),
            CUSTSYNC_LOG_FORMAT="json",
            CUSTSYNC_VISIBILITY_TIMEOUT_S="60",
            CUSTSYNC_TASK_TIME_LIMIT_S="50",
        )
        log = (tmp_path / "worker.log").open("wb")
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "worker.app",
                "worker",
                "--pool",
                "prefork",
                "--concurrency",
                "2",
                "--loglevel",
                "INFO",
                "--hostname",
                f"metrics-{port}@%h",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 60
            text = ""
            while time.monotonic() < deadline and "worker_ready" not in text:
                time.sleep(0.5)
                text = (tmp_path / "worker.log").read_text(errors="replace")
            assert "worker_ready" in text, text[-3000:]
            config = load_config(path)
            result = make_app(config).send_task("custsync.sync_pipeline", args=[PIPELINE])
            assert result.get(timeout=60)["created"] == 5
            scraped = ""
            while time.monotonic() < deadline:
                scraped = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
                if _sample(scraped, "custsync_runs_total", pipeline=PIPELINE, status="succeeded"):
                    break
                time.sleep(0.5)
        finally:
            os.killpg(worker.pid, signal.SIGTERM)
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait(timeout=10)
            log.close()
            client.flushdb()
            client.close()
    assert _sample(scraped, "custsync_runs_total", pipeline=PIPELINE, status="succeeded") == 1.0, scraped[-2000:]
    assert _sample(scraped, "custsync_records_total", pipeline=PIPELINE, outcome="created") == 5.0
    assert _sample(scraped, "custsync_quarantined_records", pipeline=PIPELINE) == 0.0
