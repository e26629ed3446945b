"""The collector is settled once per process: start-up heap frozen, youngest generation widened."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from sandbox.server import Sandbox
from tests.conftest import SyncFn
from worker import heap

PROBE = textwrap.dedent(
    """
    import gc, os, sys
    from worker.heap import YOUNG_THRESHOLD, settle

    before = gc.get_freeze_count()
    assert settle() is True
    frozen = gc.get_freeze_count()
    assert before == 0 and frozen > 1000, (before, frozen)
    assert gc.get_threshold()[0] == YOUNG_THRESHOLD
    assert settle() is False, "settled twice"
    assert gc.get_freeze_count() == frozen, "a second call froze again"
    pid = os.fork()
    if pid == 0:
        os._exit(0 if settle() is True else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "a forked child did not settle"
    print("ok", frozen)
    """
)


def test_given_a_fresh_process_when_settled_then_frozen_once_and_again_in_a_forked_child() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, cwd=os.getcwd(), check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok ")


async def test_given_a_run_when_it_starts_then_the_process_has_settled(sandbox: Sandbox, sync: SyncFn) -> None:
    sandbox["bigcapital"].seed_fake(3)
    result = await sync("bigcapital_to_thredfi")
    assert result.counts.created == 3
    assert heap.settle() is False, "run_pipeline did not settle this process"
