"""Where the engine's CPU goes per record, HTTP aside: cProfile over one first sync.

    python -m bench.profile                  # 500 customers, bigcapital_to_thredfi, its two-way pair config
    python -m bench.profile --records 2000 --top 40
    python -m bench.profile --one-way        # a config holding only bigcapital_to_thredfi and its connections
    python -m bench.profile --noop --records 10000   # a no-op re-sync: the first sync runs unprofiled
    python -m bench.profile --steady --records 10000 # the no-op after a no-op: its pages are not planned again
    python -m bench.profile --cpu-only       # the run's process CPU without the profiler's own cost per call

The sandbox runs in its own process (as in :mod:`bench.run`), so the profile
holds custsync alone. It prints the functions with the most cumulative and
own time, and the share of the run's CPU spent in each area of custsync
(connectors, worker.engine, worker.verify, state, logging) against httpx,
httpcore, aiohttp and the rest (asyncio, sqlalchemy...), by own time.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import re
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench.measure import PIPELINE, SOURCE, SandboxProcess, write_config

#: areas by the path of a function's file, first match wins.
AREAS = (
    ("httpx/httpcore/h11", ("/httpx/", "/httpcore/", "/h11/", "/anyio/")),
    ("aiohttp", ("/aiohttp/", "/httpx_aiohttp/", "/multidict/", "/yarl/")),
    ("logging (structlog)", ("/structlog/", "/logging/")),
    ("pydantic", ("/pydantic/", "/pydantic_core/")),
    ("sqlalchemy/sqlite", ("/sqlalchemy/", "/sqlmodel/", "sqlite3")),
    ("stamina/tenacity", ("/stamina/", "/tenacity/")),
    ("custsync connectors", ("/connectors/",)),
    ("custsync worker.engine", ("/worker/engine/",)),
    ("custsync worker.verify", ("/worker/verify.py",)),
    ("custsync worker (other)", ("/worker/",)),
    ("custsync state", ("/state/",)),
    ("asyncio", ("/asyncio/",)),
    ("json", ("/json/",)),
)


def area_of(filename: str) -> str:
    """The area a function's file belongs to (see :data:`AREAS`)."""
    for name, marks in AREAS:
        if any(mark in filename for mark in marks):
            return name
    return "other"


def areas(stats: pstats.Stats) -> Counter[str]:
    """Own (total) time by area."""
    spent: Counter[str] = Counter()
    for (filename, _line, _name), (_cc, _nc, tottime, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        spent[area_of(filename)] += tottime
    return spent


def one_way(text: str) -> str:
    """The sandbox's config with only :data:`PIPELINE` and its two connections (no pair, no ring)."""
    keep = {"connections.bigcapital", "connections.thredfi", f"pipelines.{PIPELINE}"}
    blocks = re.split(r"(?m)^(?=\[)", text)
    return "".join(
        b for b in blocks if not b.startswith(("[connections.", "[pipelines.")) or b[1 : b.index("]")] in keep
    )


def profile(
    records: int,
    top: int,
    out: Path | None,
    *,
    single: bool = False,
    noop: bool = False,
    cpu_only: bool = False,
    steady: bool = False,
) -> None:
    from worker.cli import app
    from worker.runner import run_pipeline  # noqa: F401 - imported now, so its import is not measured in the run

    with SandboxProcess(seed={SOURCE: records}) as box, tempfile.TemporaryDirectory() as tmp:
        config = write_config(box, Path(tmp))
        text = config.read_text(encoding="utf-8")
        config.write_text(one_way(text) if single else text, encoding="utf-8")
        command = ["run", PIPELINE, "--config", str(config), "--json"]
        for _ in range(2 if steady else 1 if noop else 0):  # unprofiled: the first sync, the no-op that proves it
            app(command, standalone_mode=False)
            asyncio.set_event_loop(None)
        kind = "no-op after a no-op" if steady else "no-op re-sync" if noop else "first sync"
        what = f"{kind}, {'one-way' if single else 'pair'} config"
        if cpu_only:
            # cProfile adds a cost per Python call: code of many small calls looks dearer under it than it is.
            started = time.process_time()
            try:
                app(command, standalone_mode=False)
            finally:
                asyncio.set_event_loop(None)
            print(f"\n{records} records ({what}), {time.process_time() - started:.2f} s process CPU, no profiler")
            return
        profiler = cProfile.Profile()
        started = time.process_time()
        profiler.enable()
        try:
            app(command, standalone_mode=False)
        finally:
            profiler.disable()
            asyncio.set_event_loop(None)
        cpu = time.process_time() - started
        stats = pstats.Stats(profiler)
        if out is not None:
            stats.dump_stats(str(out))
        total = sum(areas(stats).values())
        print(f"\n{records} records ({what}), {total:.2f} s of CPU profiled ({cpu:.2f} s process CPU)\n")
        for name, seconds in areas(stats).most_common():
            print(f"  {name:28s} {seconds:7.2f} s  {seconds / total:5.1%}")
        print()
        stats.sort_stats("cumulative").print_stats(top)
        stats.sort_stats("tottime").print_stats(top)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--records", type=int, default=500)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--out", type=Path, default=None, help="write the raw profile here (pstats)")
    parser.add_argument("--one-way", action="store_true", help="only the pipeline and its connections in the config")
    parser.add_argument("--noop", action="store_true", help="profile a no-op re-sync (after an unprofiled first sync)")
    parser.add_argument("--steady", action="store_true", help="profile the no-op after a no-op (pages not planned)")
    parser.add_argument("--cpu-only", action="store_true", help="no profiler: the run's process CPU alone")
    args = parser.parse_args(argv)
    profile(args.records, args.top, args.out, single=args.one_way, noop=args.noop, cpu_only=args.cpu_only,
            steady=args.steady)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
