"""Kill soak: SIGKILL real ``custsync run`` processes at chosen points, then check the target.

What one kill point does is told in :mod:`tests.support.soak`, whose parts this
command line runs over many points.

Usage (the CI test ``tests/reliability/test_rel_kill.py`` runs a smaller matrix)::

    python scripts/kill_soak.py --points 1000 --count 30 --pairs bt,tb,tp,tx --workers 2

Exit status: 0 when every kill point ended clean; 1 on any duplicate, loss,
stale record or failed recovery run; 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a plain script from anywhere
    sys.path.insert(0, str(ROOT))

from tests.support.soak import PAIRS, plan, soak, summarise  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--points", type=int, default=1000, help="kill points to try (default 1000)")
    parser.add_argument("--count", type=int, default=30, help="customers seeded per scenario (default 30)")
    parser.add_argument(
        "--pairs",
        default="bt,tb,tp,tx",
        help=f"comma-separated pairs among {', '.join(f'{k}={s}->{t}' for k, (s, t) in PAIRS.items())}",
    )
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2)), help="parallel harnesses")
    parser.add_argument("--seed", type=int, default=1, help="RNG seed of the kill-point plan")
    parser.add_argument("--verbose", "-v", action="store_true", help="print every kill point")
    parser.add_argument(
        "--recover-in-process",
        action="store_true",
        help="run each recovery run in this process instead of as a second custsync process",
    )
    args = parser.parse_args(argv)
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    pairs = [p.strip() for p in args.pairs.split(",") if p.strip()]
    unknown = [p for p in pairs if p not in PAIRS]
    if unknown or args.points < 1 or args.count < 1 or args.workers < 1:
        parser.error(f"bad arguments (unknown pairs: {unknown})" if unknown else "counts must be positive")
    points = plan(args.points, pairs, random.Random(args.seed), count=args.count)  # noqa: S311 - a test plan
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="custsync-soak-") as tmp:
        results = soak(
            points,
            count=args.count,
            workers=args.workers,
            workdir=Path(tmp),
            verbose=args.verbose,
            recover_in_process=args.recover_in_process,
        )
    print(summarise(results))
    print(f"elapsed: {time.monotonic() - started:.0f}s")
    failed = [r for r in results if not r.ok]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
