"""The ``state`` package's public names: each resolves to its defining module, loaded on first use."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import state
import state.store

ROOT = Path(__file__).parents[2]


@pytest.mark.parametrize("name", state.__all__)
def test_given_a_public_name_when_read_from_the_package_then_it_is_the_defining_modules(name: str) -> None:
    value = getattr(state, name)

    assert getattr(importlib.import_module(value.__module__), name) is value
    assert value.__module__.startswith("state.")


def test_given_the_names_of_state_store_when_imported_from_it_then_each_is_the_packages() -> None:
    names = ["LinkWrite", "QuarantineWrite", "Store", "StoreError", "StoreUnreachableError"]
    names += ["mask_url", "normalise_url", "sqlite_file"]

    assert sorted(state.store.__all__) == sorted(names)
    assert [getattr(state.store, n) for n in names] == [getattr(state, n) for n in names]


def test_given_an_unknown_name_when_read_from_the_package_then_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = state.Nope


def test_given_a_fresh_process_when_state_redaction_is_imported_then_no_database_library_is_loaded() -> None:
    code = (
        "import sys\n"
        "from state import redaction\n"
        "print(sorted({n.split('.')[0] for n in sys.modules} & {'sqlalchemy', 'sqlmodel', 'alembic'}))\n"
        "from state import Store\n"
        "print('sqlalchemy' in sys.modules, Store.__module__)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False)

    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == ["[]", "True state.store"]
