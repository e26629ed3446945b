"""The bench's results as lines while it runs, and as the markdown table ``docs/benchmarks.md`` shows."""

from __future__ import annotations

from collections import Counter
from typing import Any

from bench.ceiling import sentence
from bench.measure import TARGET, Requests


def line(row: dict[str, Any]) -> str:
    """One result as it is printed while the bench runs."""
    text = f"  {row['name']}: {row['records']:,} in {row['wall_s']:.2f} s = {row['records_per_s']:,.0f}/s"
    if "peak_rss_mb" in row:
        text += (f"; run {row['duration_s']:.2f} s = {row['records_per_s_run']:,.0f}/s"
                 f", engine CPU {row['engine_cpu_s']:.1f} s, sandbox CPU {row['sandbox_cpu_s']:.1f} s"
                 f", peak RSS {row['peak_rss_mb']:.0f} MB, exit {row['exit_code']}")  # fmt: skip
    elif "client_cpu_s" in row:
        text += f", client CPU {row['client_cpu_s']:.1f} s, sandbox CPU {row['sandbox_cpu_s']:.1f} s"
    return text


def _rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    rows = [*result.get("bare_clients", []), *result.get("custsync", []),
            *result.get("custsync_httpx_transport", []), *result.get("two_way", [])]  # fmt: skip
    if "latency" in result:
        rows += [result["latency"]["sequential"], result["latency"]["custsync"]]
    if "rate_limited" in result:
        rate = result["rate_limited"]
        rows += [rate["custsync"], rate["custsync_paced"], rate["aimd_driver"]]
    return rows


def table(result: dict[str, Any]) -> str:
    """The results as a markdown table and the targets below it."""
    host = result["machine"]
    lines = [
        f"Machine: {host['cpu_count']} CPUs, {host['cpu_model']}; {host['python']}; {host['platform']}; "
        f"load {host['load_average']} at start, {result.get('load_average_at_end')} at the end. {result['date']}. "
        f"{result['customers']:,} customers, {result['concurrency']} in flight.",
        "",
        "| run | records | wall (s) | records/s (wall) | run (s) | records/s (run) | engine/client CPU (s) "
        "| CPU ms/record | sandbox CPU (s) | peak RSS (MB) | requests by kind |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in _rows(result):
        cpu = r.get("engine_cpu_s", r.get("client_cpu_s"))
        run_s = f"{r['duration_s']:.2f}" if "duration_s" in r else ""
        run_rate = f"{r['records_per_s_run']:,.0f}" if "records_per_s_run" in r else ""
        per = f"{r['cpu_ms_per_record']:.2f}" if "cpu_ms_per_record" in r else ""
        rss = f"{r['peak_rss_mb']:.0f}" if "peak_rss_mb" in r else ""
        kinds = Requests(by_kind={s: Counter(k) for s, k in r["requests"]["by_kind"].items()}).short()
        lines.append(
            f"| {r['name']} | {r['records']:,} | {r['wall_s']:.2f} | {r['records_per_s']:,.0f} | {run_s} "
            f"| {run_rate} | {'' if cpu is None else f'{cpu:.1f}'} | {per} "
            f"| {r.get('sandbox_cpu_s', 0):.1f} | {rss} | {kinds} |"
        )
    lines += ["", *_verdict(result)]
    for r in [*result.get("custsync", []), *result.get("two_way", [])]:
        per = ", ".join(f"{k} {n:.3g}" for k, n in r.get("per_record", {}).items())
        sizes = "; ".join(f"{s} {v}" for s, v in r["requests"]["list_page_sizes"].items())
        lines.append(f"- {r['name']}: requests per record: {per}; list page sizes: {sizes}.")
    return "\n".join(lines) + "\n"


def _verdict(result: dict[str, Any]) -> list[str]:
    v = result["verdict"]
    out = []
    if "first_sync_vs_best_bare" in v:
        engine, bare = v["cpu_ms_per_record_engine_vs_best_bare"]
        out.append(
            f"- First sync / best bare client ({v['best_bare_client']}), by the run's duration: "
            f"**{v['first_sync_vs_best_bare']:.2f}** (by wall: {v['first_sync_vs_best_bare_by_wall']:.2f}); "
            f"CPU per record: engine {engine:.2f} ms, bare client {bare:.2f} ms; the sandbox's share of the CPU "
            f"during the first sync: {v['first_sync_sandbox_cpu_share']:.0%}."
        )
    if "first_sync_ceilings" in v:
        out.append(sentence(v["first_sync_ceilings"], v["best_bare_client"]))
    if "no_op_outside_listing_share" in v:
        out.append(
            f"- No-op re-sync after the first sync (every page planned): **{v['no_op_outside_listing_share']:.0%}** "
            "of its duration outside HTTP listing; the next no-op (pages listed as that quiet run listed them, "
            f"not planned again): **{v.get('steady_no_op_outside_listing_share', float('nan')):.0%}**; "
            f"first sync peak RSS {v['first_sync_peak_rss_mb']:.0f} MB."
        )
    if "no_op_beyond_steady_share" in v:
        out.append(
            f"- The no-op that plans every page spent **{v['no_op_beyond_steady_share']:.0%}** of its duration beyond "
            "its listing alone, counting as the listing's own time the duration of the no-op after it (which "
            "lists every page and plans none): planning is CPU-bound, and a page's answer waits in the socket "
            "while the loop plans, so its listing looks in flight for longer than it takes."
        )
    if "latency_ratio" in v:
        flight = result["latency"]["custsync"].get("in_flight", {})
        extra = (
            f"; {TARGET} requests in flight while any: {flight['mean_when_busy']:.1f} on average, "
            f"{flight['at_ceiling_share']:.0%} of that time at 16"
            if flight
            else ""
        )
        out.append(
            f"- At {result['latency']['latency_ms']:g} ms latency, {result['latency']['records']:,} records: "
            f"custsync is **{v['latency_ratio']:.1f}x** the sequential baseline by the run's duration "
            f"({v['latency_ratio_by_wall']:.1f}x by wall){extra}."
        )
    if "rate_limited_refused_share" in v:
        limit = result["rate_limited"]["limit_per_s"]
        out.append(
            f"- {TARGET} limited to {limit} req/s, no `requests_per_second`: "
            f"**{v['rate_limited_refused_share']:.1%}** of custsync's requests refused with 429; "
            f"through the AIMD driver: **{v['aimd_refused_share']:.1%}**."
        )
        out.append(
            f"- With `requests_per_second = {limit}`: **{v['paced_rate_used_share']:.0%}** of the rate used, "
            f"**{v['paced_refused_share']:.1%}** refused."
        )
    return out
