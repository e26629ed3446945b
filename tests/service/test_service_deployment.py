"""The deployment files read against each other: Procfile, docker-compose.yml, Dockerfile, the docs.

No Docker engine runs here, so the compose file is kept right by checking it
says what the Procfile says; the Procfile's processes themselves are run for
real in ``test_service_processes.py``.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _procfile() -> dict[str, str]:
    lines = (REPO / "Procfile").read_text().splitlines()
    return {name.strip(): command.strip() for name, _, command in (line.partition(":") for line in lines if line)}


def _compose_services() -> dict[str, str]:
    """Each service's block of docker-compose.yml (two-space indented under ``services:``)."""
    text = (REPO / "docker-compose.yml").read_text()
    section = text.split("\nservices:\n", 1)[1].split("\nvolumes:\n", 1)[0]
    blocks = re.split(r"^  (?=[a-z][\w-]*:\n)", section, flags=re.M)
    return {block.split(":", 1)[0]: block for block in blocks if block.strip()}


def _command(block: str) -> list[str]:
    match = re.search(r"^    command: (\[.*\])$", block, flags=re.M)
    assert match, block
    return list(json.loads(match.group(1)))


def test_the_procfile_has_a_worker_and_a_beat_of_the_celery_app() -> None:
    processes = _procfile()
    assert sorted(processes) == ["beat", "worker"]
    assert shlex.split(processes["worker"])[:4] == ["celery", "-A", "worker.app", "worker"]
    assert shlex.split(processes["beat"])[:4] == ["celery", "-A", "worker.app", "beat"]


def test_compose_runs_the_procfile_processes_next_to_redis_and_postgres() -> None:
    services = _compose_services()
    assert sorted(services) == ["beat", "postgres", "redis", "worker"]
    for name, command in _procfile().items():
        assert _command(services[name]) == shlex.split(command)
    for name, block in services.items():
        assert "healthcheck:" in block, f"{name} has no health check"
    text = (REPO / "docker-compose.yml").read_text()
    assert "- ./custsync.toml:/config/custsync.toml:ro" in text
    assert "CUSTSYNC_CONFIG: /config/custsync.toml" in text
    assert "CUSTSYNC_STATE_URL: postgresql+psycopg://" in text
    assert "CUSTSYNC_BROKER_URL: redis://redis:6379/0" in text
    assert "condition: service_healthy" in text


def test_the_image_starts_the_procfile_worker_by_default() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    assert dockerfile.startswith("# ") and "FROM python:3.11-slim" in dockerfile
    assert "RUN pip install ." in dockerfile
    (cmd,) = re.findall(r"^CMD (\[.*\])$", dockerfile, flags=re.M)
    assert json.loads(cmd) == shlex.split(_procfile()["worker"])


def test_the_readme_deployment_section_gives_the_procfile_commands_literally() -> None:
    docs = (REPO / "README.md").read_text()
    for command in _procfile().values():
        assert command in docs
    assert "custsync status" in docs
    assert "docker compose up" in docs
