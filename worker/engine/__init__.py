"""The sync engine, as stages with typed outcomes.

- :mod:`~worker.engine.plan`: the pure step, a page and a state snapshot → one outcome per record;
- :mod:`~worker.engine.identity`: recovery and adoption of target records;
- :mod:`~worker.engine.execute`: one record's writes → ``Written | Refused | Deferred``;
- :mod:`~worker.engine.commit`: the state-store writes of a page, and counts derived from the outcomes;
- :mod:`~worker.engine.deletes`: vanished source records and the guard;
- :mod:`~worker.engine.memo`: the no-op fast path (pages listed as a quiet run listed them);
- :mod:`~worker.engine.dry`: a dry run's page;
- :mod:`~worker.engine.results`: the result and outcome types;
- :mod:`~worker.engine.run`: the page loop over connectors already built.

It imports no Celery and builds no connector: :mod:`worker.runner` composes a run.
"""

from __future__ import annotations

from worker.engine.results import Counts, EngineOptions, PlannedChange, Progress, RunHooks, RunResult
from worker.engine.run import Engine

__all__ = ["Counts", "Engine", "EngineOptions", "PlannedChange", "Progress", "RunHooks", "RunResult"]
