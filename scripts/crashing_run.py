"""``custsync`` with the engine SIGKILLing its own process at a chosen point (kill tests only).

The kill is not part of custsync: it is injected here, through the engine's
:class:`~worker.engine.RunHooks`, into an otherwise unchanged command line run
(lock, store, logging and all)::

    python scripts/crashing_run.py write:N  run PIPELINE -c CONFIG --json
    python scripts/crashing_run.py commit:N backfill PIPELINE -c CONFIG

``write:N`` kills right after the Nth remote write, before the state commit
that records it; ``commit:N`` right after the Nth state commit.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a plain script from anywhere
    sys.path.insert(0, str(ROOT))

from worker import runner  # noqa: E402
from worker.engine import RunHooks, RunResult  # noqa: E402


def crash_hooks(spec: str) -> RunHooks:
    """Hooks that SIGKILL this process at ``write:N`` or ``commit:N``."""
    kind, _, count = spec.partition(":")
    if kind not in ("write", "commit") or not count.isdigit():
        raise SystemExit(f"crash point {spec!r} is not write:N or commit:N")
    at, seen = int(count), [0]

    def tick() -> None:
        seen[0] += 1
        if seen[0] == at:
            os.kill(os.getpid(), signal.SIGKILL)

    return RunHooks(on_write=tick) if kind == "write" else RunHooks(on_commit=tick)


def main(argv: list[str]) -> None:
    """Run the CLI on ``argv[1:]`` with the crash point ``argv[0]`` injected into every engine run."""
    if not argv:
        raise SystemExit(__doc__)
    hooks, args = crash_hooks(argv[0]), argv[1:]
    original = runner.run_pipeline

    async def crashing(*positional: Any, **options: Any) -> RunResult:
        if options.get("hooks") is None:  # run_exclusive passes ``hooks=None`` along
            options["hooks"] = hooks
        return await original(*positional, **options)

    # The one name every run reaches the engine by (directly for a dry run, through run_exclusive otherwise).
    runner.run_pipeline = crashing
    from worker.cli import app

    app(args=args, prog_name="custsync")


if __name__ == "__main__":
    main(sys.argv[1:])
