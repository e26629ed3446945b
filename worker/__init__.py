"""custsync's worker: the CLI, the engine, the runner and the Celery service.

Importing it installs the secret scrubber into the state store, which may
import nothing of ours: no secret ever reaches a row or a store error.
"""

from connectors.secrets import scrub as _scrub
from state import redaction as _redaction

_redaction.install(_scrub)
