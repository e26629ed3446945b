"""The beat schedule built from the config, and the Celery settings around it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from celery.schedules import crontab

from sandbox.server import sandbox_config
from worker.app import celery_settings, make_app, retry_backoff_max, time_limits
from worker.config import AppConfig, ConfigError, load_config
from worker.schedule import beat_schedule, parse_cron, scheduled_runs
from worker.settings import Settings


def _config(tmp_path: Path, schedules: dict[str, str]) -> AppConfig:
    text = sandbox_config("http://127.0.0.1:1", state_url=f"sqlite:///{tmp_path}/s.db")
    for pipeline, cron in schedules.items():
        text = text.replace(f"[pipelines.{pipeline}]\n", f'[pipelines.{pipeline}]\nschedule = "{cron}"\n')
    path = tmp_path / "custsync.toml"
    path.write_text(text)
    return load_config(path, environ={})


def test_given_scheduled_pipelines_when_built_then_one_entry_each(tmp_path: Path) -> None:
    config = _config(tmp_path, {"bigcapital_to_thredfi": "*/15 * * * *", "piriod_to_timbrix": "@hourly"})
    schedule = beat_schedule(config)
    assert sorted(schedule) == ["custsync.sync:bigcapital_to_thredfi", "custsync.sync:piriod_to_timbrix"]
    entry = schedule["custsync.sync:bigcapital_to_thredfi"]
    assert entry["task"] == "custsync.sync_pipeline"
    assert entry["args"] == ("bigcapital_to_thredfi",)
    assert entry["schedule"] == crontab(minute="*/15")
    assert entry["options"] == {"expires": 900}  # a run not started before the next is due is dropped
    assert schedule["custsync.sync:piriod_to_timbrix"]["schedule"] == crontab(minute="0")


def test_given_no_schedule_when_built_then_the_pipeline_is_on_demand_only(tmp_path: Path) -> None:
    assert beat_schedule(_config(tmp_path, {})) == {}


@pytest.mark.parametrize(
    ("cron", "fields"),
    [
        ("* * * * *", ("*", "*", "*", "*", "*")),
        ("0 9 * * 1-5", ("0", "9", "*", "*", "1-5")),
        ("0 9 * * 7", ("0", "9", "*", "*", "0")),
        ("0 9 * * 5-7", ("0", "9", "*", "*", "5-6,0")),
        ("30 2 1 * *", ("30", "2", "1", "*", "*")),
        ("@daily", ("0", "0", "*", "*", "*")),
    ],
)
def test_given_a_cron_when_parsed_then_celery_gets_the_same_times(cron: str, fields: tuple[str, ...]) -> None:
    assert parse_cron(cron, where="pipelines.p.schedule") == fields


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        ("* * * * * */5", "five cron fields"),
        ("0 0 1 * 1", "not both"),
        ("0 0 L * *", "not a cron schedule beat can run"),
    ],
)
def test_given_a_cron_beat_cannot_run_when_parsed_then_the_error_names_the_key(cron: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        parse_cron(cron, where="custsync.toml: pipelines.p.schedule")
    assert "pipelines.p.schedule" in str(info.value)


def test_given_an_irregular_cron_when_built_then_it_expires_at_the_shortest_gap(tmp_path: Path) -> None:
    config = _config(tmp_path, {"bigcapital_to_thredfi": "0 9,17 * * *"})
    (run,) = scheduled_runs(config)
    assert run.expires_s == 8 * 3600


def test_given_the_settings_when_built_then_delivery_is_at_least_once_and_safe(tmp_path: Path) -> None:
    config = _config(tmp_path, {"bigcapital_to_thredfi": "*/5 * * * *"})
    conf = celery_settings(config, Settings(visibility_timeout_s=3600, task_time_limit_s=3000))
    assert conf["broker_url"] == conf["result_backend"] == "redis://127.0.0.1:6379/0"
    assert conf["task_acks_late"] is True
    assert conf["task_reject_on_worker_lost"] is True
    assert conf["worker_prefetch_multiplier"] == 1
    assert (
        conf["task_soft_time_limit"] < conf["task_time_limit"] < conf["broker_transport_options"]["visibility_timeout"]
    )
    assert conf["beat_scheduler"] == "redbeat.RedBeatScheduler"
    assert conf["redbeat_redis_url"] == conf["broker_url"]
    assert conf["redbeat_lock_timeout"] > conf["beat_max_loop_interval"]
    assert list(conf["beat_schedule"]) == ["custsync.sync:bigcapital_to_thredfi"]
    assert retry_backoff_max(Settings(visibility_timeout_s=3600)) == 600
    assert retry_backoff_max(Settings(visibility_timeout_s=60, task_time_limit_s=50)) == 30


def test_given_a_time_limit_past_the_visibility_timeout_when_built_then_it_is_refused() -> None:
    with pytest.raises(ConfigError, match="CUSTSYNC_TASK_TIME_LIMIT_S"):
        time_limits(Settings(visibility_timeout_s=600, task_time_limit_s=600))
    assert time_limits(Settings(visibility_timeout_s=600, task_time_limit_s=500)) == (450.0, 500.0)


def test_given_a_result_backend_in_the_config_when_built_then_it_is_used(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        sandbox_config("http://127.0.0.1:1").replace(
            '[broker]\nurl = "redis://127.0.0.1:6379/0"',
            '[broker]\nurl = "redis://r:6379/0"\nresult_backend = "redis://r:6379/1"',
        )
    )
    app = make_app(load_config(path, environ={}))
    assert app.conf.broker_url == "redis://r:6379/0"
    assert app.conf.result_backend == "redis://r:6379/1"
    assert app.conf.task_default_queue == "custsync"


def _celery(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "celery", "-A", "worker.app", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=60,
        check=False,
    )


def test_given_no_config_when_celery_starts_then_help_works_and_worker_and_beat_refuse(tmp_path: Path) -> None:
    import os

    env = {
        **os.environ,
        "CUSTSYNC_CONFIG": str(tmp_path / "missing.toml"),
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
    }
    env.pop("CUSTSYNC_BROKER_URL", None)
    assert _celery(["worker", "--help"], env, tmp_path).returncode == 0
    for command in ("worker", "beat"):
        done = _celery([command], env, tmp_path)
        assert done.returncode != 0
        assert f"custsync: cannot start: {tmp_path / 'missing.toml'}: no such config file" in done.stderr
