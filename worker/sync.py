"""The engine's old module path, kept for the callers that still import it.

The engine is :mod:`worker.engine`; a run is composed by :mod:`worker.runner`.
``Sync`` is the engine class (the crash-safety tests break its page commit, ``_record``).
"""

from __future__ import annotations

from worker.engine import Counts, PlannedChange, Progress, RunHooks, RunResult
from worker.engine import Engine as Sync
from worker.runner import run_pipeline

__all__ = ["Counts", "PlannedChange", "Progress", "RunHooks", "RunResult", "Sync", "run_pipeline"]
