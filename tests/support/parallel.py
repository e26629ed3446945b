"""What keeps the tests of parallel pytest processes (xdist workers ``gw0``, ``gw1``...) apart.

The tests that empty a Redis database, or run Celery workers and beats on one,
each get a database of their own per worker, so ``-n 2`` never lets one test
flush, consume or lock another's queue, lock or schedule.
"""

from __future__ import annotations

import os

REDIS = "redis://127.0.0.1:6379"

# The databases each module takes (one per xdist worker), so a new module picks a free pair:
# 12/14 ``tests/service/test_service_processes.py``, 15/6 ``tests/reliability/test_rel_transient.py``,
# 9/8 ``tests/service/test_metrics.py``, 3/4 ``tests/service/test_fanout.py``, 0/1 the configs of
# ``tests/support/soak.py`` (CLI runs take their locks there). Fixed ones: 7 (URLs in configs),
# 2 (soak lock), 5 (perf), 10 (cli), 11 (lock), 13 (backfill). The bench takes its locks in 14 too
# (``bench/measure.py::BENCH_REDIS``): it is not run beside the suite.


def worker_index() -> int:
    """This process's xdist worker number (``gw1`` → 1); 0 when the tests are not distributed."""
    name = os.environ.get("PYTEST_XDIST_WORKER", "")
    return int(name[2:]) if name.startswith("gw") and name[2:].isdigit() else 0


def redis_url(*databases: int) -> str:
    """The Redis URL of this worker's database among ``databases`` (one per worker, used by no other test)."""
    index = worker_index()
    if index >= len(databases):
        raise RuntimeError(f"xdist worker gw{index} has no Redis database of its own among {databases}: run fewer")
    return f"{REDIS}/{databases[index]}"
