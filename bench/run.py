"""Benchmark: custsync against the sandbox, beside the bare clients that set the ceiling.

    python -m bench.run                 # quick: 500 customers, a few minutes
    python -m bench.run --size 10k      # 1k, 10k, 100k (100k: custsync's runs only, unless --sections)
    python -m bench.run --sections custsync latency   # some sections only

One run measures, on this machine, with the sandbox served by uvicorn in its
own process on loopback (sections, in order):

1. ``bare``: N Thredfi creates at 16 in flight with httpx, aiohttp and httpx
   over httpx-aiohttp's transport (each that is installed): the ceiling.
2. ``custsync``: ``custsync run bigcapital_to_thredfi`` (SQLite state, the
   default transport), the pipeline **one way** (the config holds it alone):
   the first sync of N Bigcapital customers, a no-op re-sync, and a re-sync
   after 1 % of the source was edited.
3. ``transport``: the first sync and the no-op again over httpx's own
   transport (``CUSTSYNC_HTTP_TRANSPORT=httpx``).
4. ``two-way``: the same pipeline with its partner ``thredfi_to_bigcapital``
   in the config (a two-way pair): its first sync and a 1 % re-sync.
5. ``latency``: 50 ms on every API answer (a second sandbox process), 1,000
   records by default: the sequential baseline (one create at a time, httpx)
   and custsync's first sync.
6. ``rate``: Thredfi refusing over 5 requests per second (a third sandbox
   process): custsync with no ``requests_per_second``, with
   ``requests_per_second = 5``, and a bare driver through the AIMD limiter.

Each custsync row gives records per second by wall (process start included)
and by the run's own ``duration_s``, requests by kind (the sandbox's request
log), peak RSS, the CPU of the engine and of the sandbox, the time spent in
HTTP by kind (:mod:`bench.timed_cli`) and the pages' timeline (its events).
The ratios to the bare clients and to the sequential baseline use the run's
duration: a bare client's wall holds no process start either.
It prints a table and writes ``bench/results/SIZE.json``, naming the machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import clients
from bench.ceiling import ceilings
from bench.measure import PARTNER, PIPELINE, RESULTS, ROOT, SOURCE, TARGET, SandboxProcess, machine, write_config
from bench.report import line, table
from bench.runs import (
    CONCURRENCY,
    aimd_driver,
    bare_client,
    custsync,
    edit_source,
    http_share,
    in_flight,
    per_record,
    sequential,
)

SIZES = {"quick": 500, "1k": 1_000, "10k": 10_000, "100k": 100_000}
SECTIONS = ("bare", "custsync", "transport", "two-way", "latency", "rate")
#: at 100k the bare clients (httpx's alone takes half an hour), the second transport and the pair
#: would take most of an hour: by default only custsync's own runs.
BIG = ("custsync",)
LATENCY_MS = 50.0
RATE_LIMIT = 5
#: the largest page each API serves (``docs/api-assumptions.md``); Bigcapital sets no maximum.
LARGEST_PAGE = {"bigcapital": 1000, "thredfi": 100, "piriod": 100}

__all__ = ["LATENCY_MS", "PIPELINE", "RESULTS", "ROOT", "SOURCE", "TARGET", "SandboxProcess", "write_config"]


def _syncs(box: SandboxProcess, workdir: Path, count: int, *, pair: bool, log: Any) -> list[dict[str, Any]]:
    """First sync, two no-op re-syncs (one way only: planned, then skipped), re-sync after 1 % edited."""
    box.reset(TARGET)
    box.take_requests()
    pipelines = (PIPELINE, PARTNER) if pair else (PIPELINE,)
    config = write_config(box, workdir, pipelines=pipelines)
    tag = "two-way pair " if pair else ""
    rows = [custsync(box, f"{tag}first sync", config, count)]
    log(line(rows[-1]))
    rows[-1]["per_record"] = per_record(rows[-1], count)
    if not pair:
        # The first no-op plans every page and proves it quiet; the next skips planning them (worker/engine/memo.py).
        for name in ("no-op re-sync", "no-op re-sync again, pages unchanged"):
            rows.append(custsync(box, name, config, count))
            rows[-1]["per_record"] = per_record(rows[-1], count)
            rows[-1]["outside_listing"] = http_share(rows[-1])
            share = rows[-1]["outside_listing"]["outside_share"]
            log(line(rows[-1]) + f", {share:.0%} of its duration outside listing")
    changed = edit_source(box, 0.01)
    box.take_requests()
    rows.append(custsync(box, f"{tag}re-sync, 1 % changed", config, count))
    rows[-1]["changed"] = changed
    rows[-1]["per_record"] = per_record(rows[-1], changed)
    log(line(rows[-1]))
    return rows


def _main_box(result: dict[str, Any], tmp: Path, count: int, sections: tuple[str, ...], log: Any) -> None:
    with SandboxProcess(seed={SOURCE: count}) as box:
        box.take_requests()
        if "bare" in sections:
            ceiling = []
            for name in clients.CLIENTS:
                if not clients.available(name):
                    log(f"  {name}: not installed, skipped")
                    continue
                ceiling.append(bare_client(box, name, count, CONCURRENCY))
                log(line(ceiling[-1]))
            result["bare_clients"] = ceiling
        if "custsync" in sections:
            result["custsync"] = _syncs(box, tmp / "one_way", count, pair=False, log=log)
        if "transport" in sections:
            box.reset(TARGET)
            box.take_requests()
            config = write_config(box, tmp / "httpx")
            rows = [custsync(box, "first sync, httpx transport", config, count, transport="httpx")]
            log(line(rows[-1]))
            rows.append(custsync(box, "no-op re-sync, httpx transport", config, count, transport="httpx"))
            log(line(rows[-1]))
            result["custsync_httpx_transport"] = rows
        if "two-way" in sections:
            result["two_way"] = _syncs(box, tmp / "pair", count, pair=True, log=log)


def _latency(result: dict[str, Any], tmp: Path, records: int, log: Any) -> None:
    with SandboxProcess(seed={SOURCE: records}, latency_ms=LATENCY_MS) as box:
        box.take_requests()
        base = sequential(box, records)
        log(line(base))
        box.reset(TARGET)
        box.take_requests()
        fast = custsync(box, f"first sync at {LATENCY_MS:g} ms", config=write_config(box, tmp / "latency"),
                        records=records)  # fmt: skip
        fast["in_flight"] = in_flight(fast)
        log(line(fast))
        result["latency"] = {"latency_ms": LATENCY_MS, "records": records, "sequential": base, "custsync": fast,
                             "ratio": fast["records_per_s_run"] / base["records_per_s"],
                             "ratio_by_wall": fast["records_per_s"] / base["records_per_s"]}  # fmt: skip
        log(f"  ratio at {LATENCY_MS:g} ms: {result['latency']['ratio']:.1f}x the sequential baseline (run's duration)")


def _rate(result: dict[str, Any], tmp: Path, records: int, log: Any) -> None:
    with SandboxProcess(seed={SOURCE: records}, rate={TARGET: RATE_LIMIT}) as box:
        box.take_requests()
        limited = custsync(box, f"first sync, {TARGET} at {RATE_LIMIT} req/s", write_config(box, tmp / "rate"),
                           records)  # fmt: skip
        limited["refused_share"] = limited["requests"]["refused_429"] / max(limited["requests"]["total"], 1)
        log(line(limited) + f", {limited['refused_share']:.1%} refused")
        box.reset(TARGET)
        box.take_requests()
        paced_at = {TARGET: {"requests_per_second": str(RATE_LIMIT)}}
        config = write_config(box, tmp / "rate_rps", connection=paced_at)
        paced = custsync(box, f"first sync, {TARGET} at {RATE_LIMIT} req/s, requests_per_second = {RATE_LIMIT}",
                         config, records)  # fmt: skip
        target_kinds = paced["requests"]["by_kind"].get(TARGET, {})
        refused = target_kinds.get("refused (429)", 0)
        admitted = sum(target_kinds.values()) - 2 * refused  # a refused request is counted by its kind too
        # Over the run's own duration (without the process start): a lower bound of the share.
        paced["refused_share"] = paced["requests"]["refused_429"] / max(paced["requests"]["total"], 1)
        paced["rate_used_share"] = admitted / RATE_LIMIT / max(paced["duration_s"], 1e-9)
        log(line(paced) + f", {paced['refused_share']:.1%} refused, {paced['rate_used_share']:.0%} of the rate")
        driver = aimd_driver(box, records)
        log(line(driver) + f", {driver['refused_share']:.1%} refused")
        result["rate_limited"] = {"limit_per_s": RATE_LIMIT, "custsync": limited, "custsync_paced": paced,
                                  "aimd_driver": driver}  # fmt: skip


def run(
    size: str, *, latency_records: int, rate_records: int, sections: tuple[str, ...], log: Any = print
) -> dict[str, Any]:
    count = SIZES[size]
    date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    result: dict[str, Any] = {"size": size, "customers": count, "concurrency": CONCURRENCY, "date": date,
                              "sections": list(sections), "machine": machine()}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="custsync-bench-") as tmp:
        if {"bare", "custsync", "transport", "two-way"} & set(sections):
            _main_box(result, Path(tmp), count, sections, log)
        if "latency" in sections:
            _latency(result, Path(tmp), latency_records, log)
        if "rate" in sections:
            _rate(result, Path(tmp), rate_records, log)
    result["load_average_at_end"] = machine()["load_average"]
    result["verdict"] = verdict(result)
    return result


def verdict(result: dict[str, Any]) -> dict[str, Any]:
    """The targets of issue 12 from whichever sections ran."""
    out: dict[str, Any] = {}
    first = result["custsync"][0] if result.get("custsync") else None
    if result.get("bare_clients") and first is not None:
        best = max(result["bare_clients"], key=lambda r: r["records_per_s"])
        out["best_bare_client"] = best["name"]
        out["first_sync_vs_best_bare"] = first["records_per_s_run"] / best["records_per_s"]
        out["first_sync_vs_best_bare_by_wall"] = first["records_per_s"] / best["records_per_s"]
        out["cpu_ms_per_record_engine_vs_best_bare"] = [first["cpu_ms_per_record"], best["cpu_ms_per_record"]]
        out["first_sync_ceilings"] = ceilings(first, result["bare_clients"], result["machine"]["cpu_count"] or 1)
    if first is not None:
        out["first_sync_sandbox_cpu_share"] = first["sandbox_cpu_share"]
        out["first_sync_peak_rss_mb"] = first["peak_rss_mb"]
        out["no_op_outside_listing_share"] = result["custsync"][1]["outside_listing"]["outside_share"]
        out["steady_no_op_outside_listing_share"] = result["custsync"][2]["outside_listing"]["outside_share"]
        # A no-op that plans every page is CPU-bound: a page's answer waits in the socket while the loop plans,
        # so its listing looks in flight for longer than the listing takes. The no-op after it only lists
        # (and hashes each page): its duration is what listing costs, and the rest is planning.
        planned, listed = result["custsync"][1]["duration_s"], result["custsync"][2]["duration_s"]
        out["no_op_beyond_steady_share"] = max(planned - listed, 0.0) / planned
    if "latency" in result:
        out["latency_ratio"] = result["latency"]["ratio"]
        out["latency_ratio_by_wall"] = result["latency"]["ratio_by_wall"]
    if "rate_limited" in result:
        rate = result["rate_limited"]
        out["rate_limited_refused_share"] = rate["custsync"]["refused_share"]
        out["aimd_refused_share"] = rate["aimd_driver"]["refused_share"]
        out["paced_refused_share"] = rate["custsync_paced"]["refused_share"]
        out["paced_rate_used_share"] = rate["custsync_paced"]["rate_used_share"]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="quick", help="customers to seed (default quick: 500)")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=None,
                        help=f"what to measure (default all; at 100k: {' '.join(BIG)})")  # fmt: skip
    parser.add_argument("--latency-records", type=int, default=1000, help="creates in the 50 ms runs (default 1000)")
    parser.add_argument("--rate-records", type=int, default=60, help="creates in the 5 req/s runs (default 60)")
    parser.add_argument("--output", type=Path, default=None, help="JSON file (default bench/results/SIZE.json)")
    args = parser.parse_args(argv)
    sections = tuple(args.sections) if args.sections else (BIG if args.size == "100k" else SECTIONS)
    print(f"custsync bench, size {args.size} ({SIZES[args.size]:,} customers): {', '.join(sections)}", flush=True)
    result = run(args.size, latency_records=args.latency_records, rate_records=args.rate_records, sections=sections,
                 log=lambda text: print(text, flush=True))  # fmt: skip
    output = args.output or RESULTS / f"{args.size}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=1, default=str) + "\n", encoding="utf-8")
    print()
    print(table(result))
    print(f"written: {output.relative_to(ROOT) if output.is_relative_to(ROOT) else output}")
    rows = [*result.get("custsync", []), *result.get("two_way", []), *result.get("custsync_httpx_transport", [])]
    return 0 if all(r["exit_code"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
