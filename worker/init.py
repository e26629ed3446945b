"""``custsync init``: a commented config for the systems a user has, to fill in.

Each connection block, declared by the system's plug-in
(:attr:`connectors.plugin.System.init_block`), says where each setting is
found in that system (docs/accounts.md has the long version) and names its secrets as ``${NAME}``
environment variables, so the file itself holds none.
"""

from __future__ import annotations

from collections.abc import Sequence

from connectors.registry import systems

_HEADER = """\
# custsync config, written by `custsync init`. Fill in the values marked TODO, export the
# ${NAME} variables (secrets never go in this file), then run `custsync check`.
# Where each setting comes from: docs/accounts.md.

[state]
url = "sqlite:///custsync.db"            # postgresql+psycopg://user:pass@host/db in production ($CUSTSYNC_STATE_URL)

[broker]
url = "redis://localhost:6379/0"         # only the service (worker, beat) needs it ($CUSTSYNC_BROKER_URL)
"""


def _bare_block(name: str) -> str:
    """A connection table for a plug-in that declares no ``init_block``."""
    return f'[connections.{name}]\nsystem = "{name}"\nbase_url = "TODO"\n'


class InitError(ValueError):
    """The systems asked for cannot make a config."""


def init_config(names: Sequence[str]) -> str:
    """The commented config text for the systems ``names`` (each once).

    Raises:
        InitError: none given, or one is not a system custsync knows.
    """
    known = systems()
    chosen = list(dict.fromkeys(names))
    if not chosen:
        raise InitError(f"--systems: name at least one of {', '.join(known)}")
    unknown = [s for s in chosen if s not in known]
    if unknown:
        raise InitError(f"--systems: unknown system {unknown[0]!r} (one of {', '.join(known)})")
    parts = [_HEADER, *(known[s].init_block or _bare_block(s) for s in chosen)]
    for source in chosen:
        for target in chosen:
            if source == target:
                continue
            lines = [
                f"[pipelines.{source}_to_{target}]",
                f'source = "{source}"',
                f'target = "{target}"',
                '# schedule = "*/15 * * * *"            # cron, UTC; leave out to run on demand only',
            ]
            note = known[target].init_pipeline_note
            if note:
                lines.append(note)
            parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)


__all__ = ["InitError", "init_config"]
