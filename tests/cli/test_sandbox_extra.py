"""Without the ``sandbox`` extra: the emulators' commands say how to install it, the rest works.

The extra's packages are made missing for a real ``custsync`` process by a
directory first on its ``PYTHONPATH`` whose ``starlette`` and ``uvicorn``
fail to import the way absent packages do (a seam of the test, not of custsync).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CUSTSYNC = str(Path(sys.executable).parent / "custsync")
REPO = Path(__file__).resolve().parents[2]
INSTALL = "pip install 'custsync[sandbox]'"


@pytest.fixture
def without_extra(tmp_path: Path) -> dict[str, str]:
    """An environment in which ``import starlette`` and ``import uvicorn`` fail as for absent packages."""
    shim = tmp_path / "shim"
    for name in ("starlette", "uvicorn"):
        (shim / name).mkdir(parents=True)
        (shim / name / "__init__.py").write_text(
            f"raise ModuleNotFoundError(\"No module named '{name}'\", name={name!r})\n"
        )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUSTSYNC_")}
    env["PYTHONPATH"] = os.pathsep.join([str(shim), str(REPO)])
    return env


def _custsync(env: dict[str, str], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CUSTSYNC, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=60, check=False)


@pytest.mark.parametrize("command", [["demo"], ["sandbox"], ["sandbox", "--port", "0", "--seed", "3"]])
def test_given_no_sandbox_extra_when_an_emulator_command_runs_then_one_line_says_how_to_install_it_exit_2(
    without_extra: dict[str, str], tmp_path: Path, command: list[str]
) -> None:
    result = _custsync(without_extra, *command, cwd=tmp_path)

    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ")
    assert "starlette" in line
    assert INSTALL in line
    assert not (tmp_path / "custsync-demo").exists(), "the demo stopped before it wrote anything"


def test_given_no_sandbox_extra_then_the_production_commands_and_the_celery_app_still_load(
    without_extra: dict[str, str], tmp_path: Path
) -> None:
    version = _custsync(without_extra, "--version", cwd=tmp_path)
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip()
    imported = subprocess.run(
        [sys.executable, "-c", "import worker.app, worker.tasks, worker.cli; import starlette"],
        capture_output=True,
        text=True,
        env=without_extra,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    # Everything production needs imports; only the last line, the extra itself, fails.
    assert imported.returncode == 1
    assert imported.stderr.strip().splitlines()[-1] == "ModuleNotFoundError: No module named 'starlette'"
    assert "worker" not in imported.stderr.split("import starlette", 1)[-1].split("starlette/__init__.py")[0]


def test_given_the_sandbox_extra_when_the_sandbox_command_is_asked_for_help_then_it_answers(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUSTSYNC_")}
    result = _custsync(env, "sandbox", "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "--seed" in result.stdout
