"""Which side set the first sync's pace: custsync's process, the sandbox's, or the machine's cores.

Each of the three is a bound on records per second, from CPU measured in the
same run:

- **custsync's process** runs Python on one core at a time (the GIL): its CPU
  per record during the run (``run_cpu_s``, from its first request to its
  exit) allows at most ``1 / that`` records a second;
- **the sandbox's process** likewise: its CPU per custsync record (the
  creates, the archives, the listing) allows at most ``1 / that``;
- **the machine's cores**, shared by the two: ``cores / (both added)``.

The lowest is the ceiling the run met. Beside them, the ceiling of a client
whose only cost is **the httpx API over aiohttp** (the bare
``httpx+aiohttp transport`` client's CPU per request, times custsync's
requests per record): what the first sync could reach with an engine that
cost nothing beyond its HTTP.
"""

from __future__ import annotations

from typing import Any

#: the bare client on the httpx API over custsync's default transport (:mod:`bench.clients`).
HTTPX_API_CLIENT = "bare httpx+aiohttp transport"


def _bound(rate: float, best: float) -> dict[str, float]:
    return {"records_per_s": rate, "vs_best_bare": rate / best}


def ceilings(first: dict[str, Any], bare_clients: list[dict[str, Any]], cores: int) -> dict[str, Any]:
    """The bounds above for the first sync ``first``, against the fastest of ``bare_clients``."""
    best = max(bare_clients, key=lambda r: r["records_per_s"])
    records = max(first["records"], 1)
    run_cpu = first.get("run_cpu_s") or first["engine_cpu_s"]  # the whole process when the window is unknown
    engine_ms = 1000 * run_cpu / records
    sandbox_ms = 1000 * first["sandbox_cpu_s"] / records
    bounds = {
        "custsync": _bound(1000 / engine_ms, best["records_per_s"]),
        "sandbox": _bound(1000 / sandbox_ms, best["records_per_s"]),
        "cores": _bound(cores * 1000 / (engine_ms + sandbox_ms), best["records_per_s"]),
    }
    out: dict[str, Any] = {
        "best_bare_client": best["name"],
        "engine_ms_per_record": engine_ms,
        "engine_cores": run_cpu / max(first["duration_s"], 1e-9),
        "sandbox_ms_per_record": sandbox_ms,
        "cores": cores,
        "bounds": bounds,
        "pace_set_by": min(bounds, key=lambda name: bounds[name]["records_per_s"]),
        "best_bare_sandbox_cores": best["sandbox_cpu_s"] / max(best["wall_s"], 1e-9),
    }
    httpx_api = next((r for r in bare_clients if r["name"] == HTTPX_API_CLIENT), None)
    if httpx_api is not None:
        per_request_ms = 1000 * httpx_api["client_cpu_s"] / max(httpx_api["requests"]["total"], 1)
        per_record = first["requests"]["total"] / records
        http_ms = per_request_ms * per_record
        rate = min(1000 / http_ms, 1000 / sandbox_ms, cores * 1000 / (http_ms + sandbox_ms))
        out["httpx_api"] = {
            "ms_per_request": per_request_ms,
            "requests_per_record": per_record,
            "ms_per_record": http_ms,
            **_bound(rate, best["records_per_s"]),
        }
    return out


_NAMES = {"custsync": "custsync's own process", "sandbox": "the sandbox's process", "cores": "the machine's cores"}


def sentence(c: dict[str, Any], best_name: str) -> str:
    """The ceilings as one line of the report."""
    b = c["bounds"]
    text = (
        f"- What set the first sync's pace: **{_NAMES[c['pace_set_by']]}**. custsync ran at "
        f"{c['engine_cores']:.2f} of a core through the run, {c['engine_ms_per_record']:.2f} ms of CPU per record: "
        f"at most {b['custsync']['records_per_s']:,.0f}/s ({b['custsync']['vs_best_bare']:.2f} of {best_name}). "
        f"The sandbox spent {c['sandbox_ms_per_record']:.2f} ms per custsync record: at most "
        f"{b['sandbox']['records_per_s']:,.0f}/s ({b['sandbox']['vs_best_bare']:.2f}), whatever the engine costs. "
        f"The {c['cores']} cores for both: at most {b['cores']['records_per_s']:,.0f}/s "
        f"({b['cores']['vs_best_bare']:.2f})."
    )
    api = c.get("httpx_api")
    if api is not None:
        text += (
            f" A client whose only cost is the httpx API over aiohttp ({api['ms_per_request']:.2f} ms a request, "
            f"{api['requests_per_record']:.2f} requests a record) reaches at most {api['records_per_s']:,.0f}/s "
            f"(**{api['vs_best_bare']:.2f}**)."
        )
    return text + f" {best_name} kept the sandbox at {c['best_bare_sandbox_cores']:.2f} of a core."


__all__ = ["HTTPX_API_CLIENT", "ceilings", "sentence"]
