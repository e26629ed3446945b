"""The deployment files read against each other: Procfile, docker-compose.yml, Dockerfile, the docs.

No Docker engine runs here, so the compose file is kept right by checking it
says what the Procfile says; the Procfile's processes themselves are run for
real in ``test_service_processes.py``.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]


def _procfile() -> dict[str, str]:
    lines = (REPO / "Procfile").read_text().splitlines()
    return {name.strip(): command.strip() for name, _, command in (line.partition(":") for line in lines if line)}


def _compose() -> dict[str, Any]:
    """docker-compose.yml as Compose reads it (YAML, with its ``<<`` merge keys resolved)."""
    loaded = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_the_procfile_has_a_worker_and_a_beat_of_the_celery_app() -> None:
    processes = _procfile()
    assert sorted(processes) == ["beat", "worker"]
    assert shlex.split(processes["worker"])[:4] == ["celery", "-A", "worker.app", "worker"]
    assert shlex.split(processes["beat"])[:4] == ["celery", "-A", "worker.app", "beat"]


def test_compose_runs_the_procfile_processes_next_to_redis_and_postgres() -> None:
    services = _compose()["services"]
    assert sorted(services) == ["beat", "postgres", "redis", "sandbox", "worker"]
    for name, command in _procfile().items():
        assert services[name]["command"] == shlex.split(command)
    for name, service in services.items():
        assert "healthcheck" in service, f"{name} has no health check"
    for name in ("worker", "beat"):
        env = services[name]["environment"]
        assert env["CUSTSYNC_CONFIG"] == "/config/custsync.toml"
        assert env["CUSTSYNC_STATE_URL"].startswith("postgresql+psycopg://")
        assert env["CUSTSYNC_BROKER_URL"] == "redis://redis:6379/0"
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy"
        assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_compose_refuses_a_missing_config_instead_of_mounting_a_directory() -> None:
    for name in ("worker", "beat"):
        (mount,) = [v for v in _compose()["services"][name]["volumes"] if isinstance(v, dict)]
        assert mount == {
            "type": "bind",
            "source": "./custsync.toml",
            "target": "/config/custsync.toml",
            "read_only": True,
            "bind": {"create_host_path": False},
        }


def test_compose_requires_the_postgres_password_and_keeps_it_out_of_the_url() -> None:
    services = _compose()["services"]
    required = re.compile(r"^\$\{POSTGRES_PASSWORD:\?[^}]+\}$")
    assert required.match(services["postgres"]["environment"]["POSTGRES_PASSWORD"])
    for name in ("worker", "beat"):
        env = services[name]["environment"]
        # The password reaches libpq as PGPASSWORD: no character of it needs escaping in a URL.
        assert required.match(env["PGPASSWORD"])
        assert "POSTGRES_PASSWORD" not in env["CUSTSYNC_STATE_URL"]
        assert ":" not in env["CUSTSYNC_STATE_URL"].split("//", 1)[1].split("@", 1)[0], "no password in the URL"
    text = (REPO / "docker-compose.yml").read_text()
    assert ":-custsync}" not in text, "no silent default password"


def test_compose_builds_each_image_once_and_the_workers_without_the_sandbox() -> None:
    services = _compose()["services"]
    building = {name: service["build"] for name, service in services.items() if "build" in service}
    assert building == {
        "worker": {"context": ".", "target": "production"},
        "sandbox": {"context": ".", "target": "sandbox"},
    }
    assert services["beat"]["image"] == services["worker"]["image"]
    assert services["beat"]["pull_policy"] == "never"
    # The sandbox image is another one (with the sandbox extra), built here and never pulled.
    assert services["sandbox"]["image"] != services["worker"]["image"]
    assert services["sandbox"]["pull_policy"] == "build"


def _stages(dockerfile: str) -> dict[str, list[str]]:
    """The Dockerfile's instructions by stage name, in order."""
    stages: dict[str, list[str]] = {}
    current: list[str] = []
    for line in dockerfile.splitlines():
        if line.startswith("FROM "):
            current = stages.setdefault(line.split(" AS ", 1)[1].strip(), [])
        if line and not line.startswith(("#", " ")):
            current.append(line)
    return stages


def test_the_production_image_installs_the_package_without_the_sandbox_extra() -> None:
    stages = _stages((REPO / "Dockerfile").read_text())
    assert list(stages)[-1] == "production", "production is the default (last) target"
    assert "RUN pip install ." in stages["production"]
    assert not [line for line in stages["production"] if "sandbox]" in line]
    assert "RUN pip install '.[sandbox]'" in stages["sandbox"]
    for name in ("sandbox", "production"):
        assert stages[name][0] == "FROM base AS " + name
        assert "USER custsync" in stages[name]


def _duration_s(text: str) -> float:
    units = {"h": 3600, "m": 60, "s": 1}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)([hms])", text))


def test_compose_stop_grace_period_lets_a_run_reach_its_time_limit() -> None:
    from worker.app import time_limits
    from worker.settings import Settings

    worker = _compose()["services"]["worker"]
    env = worker["environment"]
    settings = Settings(
        task_time_limit_s=int(env["CUSTSYNC_TASK_TIME_LIMIT_S"]),
        visibility_timeout_s=int(env["CUSTSYNC_VISIBILITY_TIMEOUT_S"]),
    )
    _soft, hard = time_limits(settings)
    assert _duration_s(worker["stop_grace_period"]) >= hard


def test_compose_demo_profile_runs_the_sandbox_for_the_checked_in_demo_config() -> None:
    from sandbox.server import sandbox_config

    sandbox = _compose()["services"]["sandbox"]
    assert sandbox["profiles"] == ["demo"]
    assert sandbox["command"][:2] == ["custsync", "sandbox"]
    assert "--allow-remote" in sandbox["command"]  # 0.0.0.0 inside the compose network only
    assert "ports" not in sandbox, "the sandbox is not published on the host"
    port = sandbox["command"][sandbox["command"].index("--port") + 1]
    demo = (REPO / "deploy" / "sandbox.toml").read_text()
    body = demo.split("\n[state]", 1)[1]
    expected = sandbox_config(
        f"http://sandbox:{port}", state_url="sqlite:////tmp/custsync.db", broker_url="redis://redis:6379/0"
    ).split("\n[state]", 1)[1]
    assert body.replace('schedule = "* * * * *"\n', "", 1) == expected, "deploy/sandbox.toml drifted"
    assert tomllib.loads(demo)["pipelines"]["bigcapital_to_thredfi"]["schedule"] == "* * * * *"
    assert _compose()["services"]["worker"]["depends_on"]["sandbox"] == {
        "condition": "service_healthy",
        "required": False,
    }


def test_the_image_starts_the_procfile_worker_by_default() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    assert dockerfile.startswith("# ")
    assert "FROM python:3.11-slim" in dockerfile
    assert "RUN pip install ." in dockerfile
    (cmd,) = re.findall(r"^CMD (\[.*\])$", dockerfile, flags=re.M)
    assert json.loads(cmd) == shlex.split(_procfile()["worker"])


def test_the_readme_deployment_section_gives_the_procfile_commands_literally() -> None:
    docs = (REPO / "README.md").read_text()
    for command in _procfile().values():
        assert command in docs
    assert "custsync status" in docs
    assert "docker compose up" in docs
    assert "honcho -f ../Procfile start" in docs, "honcho started in service-demo needs the Procfile's path"
    assert "docs/operations.md" in docs
    assert "docs/accounts.md" in docs
