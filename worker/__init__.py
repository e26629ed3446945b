"""custsync's worker: the CLI, the engine, the runner and the Celery service.

The public surface, by module: :mod:`worker.runner` (``run_pipeline``,
``run_exclusive``, ``build_connector``: the one composition root),
:mod:`worker.engine` (the stages and their result types), :mod:`worker.config`
(the config file), :mod:`worker.cli` (``custsync``), :mod:`worker.app` and
:mod:`worker.tasks` (the Celery service), :mod:`worker.testing` (the contract
suite for plug-ins). The others are their parts.

Importing it installs the secret scrubber into the state store, which may
import nothing of ours: no secret ever reaches a row or a store error.
"""

from connectors.secrets import scrub as _scrub
from state import redaction as _redaction

_redaction.install(_scrub)

__all__ = ["app", "cli", "config", "engine", "runner", "tasks", "testing"]
