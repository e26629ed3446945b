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
from worker import metrics
from worker.app import service_config
from worker.settings import get_settings

PIPELINE = "bigcapital_to_thredfi"
REDIS_URL = "redis://127.0.0.1:6379/9"


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
    seeded = box["bigcapital"].seed_fake(6)  # type: ignore[attr-defined]
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
