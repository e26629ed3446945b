"""The garbage collector, set for a process that runs pipelines: its start-up heap frozen, once.

A run keeps pages of records alive while it works on them, so most of what it
allocates survives the youngest generation, and each full collection walks
the whole heap: the modules, the config and the store's engine included. On a
first sync of 5,000 customers the collector took about a sixth of the run's
CPU, most of it in ten full collections (``docs/benchmarks.md``).

:func:`settle` runs at the start of a process's first run (:mod:`worker.runner`):
it collects once, moves every object then alive into the permanent generation
(:func:`gc.freeze`: never walked again, never freed, as start-up objects are
not) and makes the youngest generation larger, so collections come less often.
Objects made later, a run's own, are collected as before. It runs once per
process: freezing again would keep whatever a finished run left for the
collector (a long-lived Celery worker would grow). A forked child (a Celery
prefork worker) settles again in its first run.
"""

from __future__ import annotations

import gc
import os

#: the youngest generation's threshold (CPython's default is 700); the older two keep their defaults.
YOUNG_THRESHOLD = 5000

_settled_in: int | None = None


def settle() -> bool:
    """Freeze the heap and widen the youngest generation, once per process.

    Returns:
        Whether this call did it (``False``: this process had already settled).
    """
    global _settled_in
    if _settled_in == os.getpid():
        return False
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, oldest)
    _settled_in = os.getpid()
    return True


__all__ = ["YOUNG_THRESHOLD", "settle"]
