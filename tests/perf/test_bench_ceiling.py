"""The bench names the ceiling a first sync met, from the CPU both processes spent in the same run."""

from __future__ import annotations

from typing import Any

import pytest

from bench.ceiling import HTTPX_API_CLIENT, ceilings, sentence


def _bare(name: str, rate: float, *, client_cpu_s: float, sandbox_cpu_s: float, records: int = 1000) -> dict[str, Any]:
    return {"name": name, "records": records, "records_per_s": rate, "wall_s": records / rate,
            "client_cpu_s": client_cpu_s, "sandbox_cpu_s": sandbox_cpu_s,
            "requests": {"total": records + 2}}  # fmt: skip


def _first(*, run_cpu_s: float | None, engine_cpu_s: float, sandbox_cpu_s: float, duration_s: float) -> dict[str, Any]:
    return {"records": 1000, "run_cpu_s": run_cpu_s, "engine_cpu_s": engine_cpu_s, "sandbox_cpu_s": sandbox_cpu_s,
            "duration_s": duration_s, "requests": {"total": 1100}}  # fmt: skip


BARES = [
    _bare("bare aiohttp", 2000.0, client_cpu_s=0.2, sandbox_cpu_s=0.5),
    _bare(HTTPX_API_CLIENT, 1800.0, client_cpu_s=0.4008, sandbox_cpu_s=0.55),
]


def test_given_an_engine_at_one_core_when_ceilings_then_its_own_process_set_the_pace() -> None:
    first = _first(run_cpu_s=1.0, engine_cpu_s=1.3, sandbox_cpu_s=0.4, duration_s=1.0)

    c = ceilings(first, BARES, cores=2)

    assert c["pace_set_by"] == "custsync"
    assert c["best_bare_client"] == "bare aiohttp"
    assert c["engine_ms_per_record"] == pytest.approx(1.0)  # the run's window, not the process's
    assert c["engine_cores"] == pytest.approx(1.0)
    assert c["bounds"]["custsync"]["records_per_s"] == pytest.approx(1000)
    assert c["bounds"]["custsync"]["vs_best_bare"] == pytest.approx(0.5)
    assert c["bounds"]["sandbox"]["records_per_s"] == pytest.approx(2500)
    assert c["bounds"]["cores"]["records_per_s"] == pytest.approx(2 * 1000 / 1.4)
    assert c["best_bare_sandbox_cores"] == pytest.approx(1.0)
    # 0.4 ms a request for the httpx API over aiohttp, 1.1 requests a record: 0.44 ms, the tightest of the
    # client's one core (2,273/s), the sandbox's (2,500/s) and both on the 2 cores (2,381/s).
    api = c["httpx_api"]
    assert api["ms_per_request"] == pytest.approx(0.4)
    assert api["ms_per_record"] == pytest.approx(0.44)
    assert api["records_per_s"] == pytest.approx(1000 / 0.44)
    assert api["vs_best_bare"] == pytest.approx(1000 / 0.44 / 2000)


def test_given_a_sandbox_spending_more_per_record_when_ceilings_then_the_sandbox_set_the_pace() -> None:
    first = _first(run_cpu_s=0.3, engine_cpu_s=0.5, sandbox_cpu_s=1.0, duration_s=1.0)

    c = ceilings(first, BARES[:1], cores=4)

    assert c["pace_set_by"] == "sandbox"
    assert c["bounds"]["sandbox"]["vs_best_bare"] == pytest.approx(0.5)
    assert "httpx_api" not in c  # no bare client on the httpx API ran: no bound claimed for it


def test_given_no_cpu_window_when_ceilings_then_the_whole_process_is_counted() -> None:
    first = _first(run_cpu_s=None, engine_cpu_s=1.25, sandbox_cpu_s=0.4, duration_s=1.0)

    assert ceilings(first, BARES, cores=2)["engine_ms_per_record"] == pytest.approx(1.25)


def test_given_ceilings_when_reported_then_one_line_names_the_pace_setter_and_every_bound() -> None:
    c = ceilings(_first(run_cpu_s=1.0, engine_cpu_s=1.3, sandbox_cpu_s=0.4, duration_s=1.0), BARES, cores=2)

    text = sentence(c, "bare aiohttp")

    assert "\n" not in text
    assert "**custsync's own process**" in text
    assert "at most 1,000/s (0.50 of bare aiohttp)" in text
    assert "at most 2,500/s (1.25), whatever the engine costs" in text
    assert "The 2 cores for both: at most 1,429/s (0.71)" in text
    assert "reaches at most 2,273/s (**1.14**)" in text
