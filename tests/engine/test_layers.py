"""The engine's layering, checked in a fresh interpreter: what importing a layer loads."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def loaded_by(*modules: str) -> set[str]:
    """The top-level packages loaded by importing ``modules`` in a fresh interpreter."""
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in modules)
        + "print('\\n'.join(sorted({name.split('.')[0] for name in sys.modules})))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return set(done.stdout.split())


def test_given_the_engine_and_the_runner_when_imported_then_no_celery_is_loaded() -> None:
    loaded = loaded_by("worker.engine", "worker.runner")

    assert "worker" in loaded
    assert "celery" not in loaded
    assert "kombu" not in loaded


@pytest.mark.parametrize("module", ["connectors", "connectors.ratelimit", "connectors.base"])
def test_given_a_connector_module_when_imported_then_neither_the_worker_nor_the_store_nor_redis_is_loaded(
    module: str,
) -> None:
    loaded = loaded_by(module)

    assert "connectors" in loaded
    assert not loaded & {"worker", "state", "redis"}
