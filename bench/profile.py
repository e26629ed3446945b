"""Where the engine's CPU goes per record, HTTP aside: cProfile over one first sync.

    python -m bench.profile                  # 500 customers, bigcapital_to_thredfi
    python -m bench.profile --records 2000 --top 40

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
import tempfile
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


def profile(records: int, top: int, out: Path | None) -> None:
    from worker.cli import app

    with SandboxProcess(seed={SOURCE: records}) as box, tempfile.TemporaryDirectory() as tmp:
        config = write_config(box, Path(tmp))
        profiler = cProfile.Profile()
        profiler.enable()
        try:
            app(["run", PIPELINE, "--config", str(config), "--json"], standalone_mode=False)
        finally:
            profiler.disable()
            asyncio.set_event_loop(None)
        stats = pstats.Stats(profiler)
        if out is not None:
            stats.dump_stats(str(out))
        total = sum(areas(stats).values())
        print(f"\n{records} records, {total:.2f} s of CPU profiled\n")
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
    args = parser.parse_args(argv)
    profile(args.records, args.top, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
