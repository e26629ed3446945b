"""Issue 5, part 3: fault injection in the sandbox, per test and from the CLI.

500 before or after applying a write (the second is a lost response), 429
with Retry-After, slow responses, dropped connections, tokens that expire
quickly; rules fire with a seeded probability so a fault run is reproducible.
"""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sandbox import bigcapital, thredfi
from sandbox.server import BackgroundServer, Sandbox, free_port, parse_fault
from tests.support.soak import config_text

CUSTSYNC = str(Path(sys.executable).parent / "custsync")
BC_AUTH = {"Authorization": f"Bearer {bigcapital.SANDBOX_API_KEY}"}
BASIC = base64.b64encode(f"{thredfi.SANDBOX_PARTNER_UUID}:{thredfi.SANDBOX_API_KEY}".encode()).decode()
NEW_CUSTOMER = {"customerType": "business", "currencyCode": "USD", "displayName": "Fault Ltd"}


# -- per test, in process --------------------------------------------------------------


async def test_given_error_before_when_a_write_arrives_then_500_and_nothing_applied(sandbox: Sandbox) -> None:
    rule = sandbox["bigcapital"].faults.add("error_before", method="POST")
    async with _client(sandbox) as client:
        response = await client.post("/bigcapital/api/customers", json=NEW_CUSTOMER, headers=BC_AUTH)
    assert (response.status_code, rule.fired) == (500, 1)
    assert not sandbox["bigcapital"].records


async def test_given_error_after_when_a_write_arrives_then_applied_and_answered_500_a_lost_response(
    sandbox: Sandbox,
) -> None:
    sandbox["bigcapital"].faults.add("error_after", method="POST", status=502)
    async with _client(sandbox) as client:
        response = await client.post("/bigcapital/api/customers", json=NEW_CUSTOMER, headers=BC_AUTH)
    assert response.status_code == 502
    assert [r["display_name"] for r in sandbox["bigcapital"].records.values()] == ["Fault Ltd"]


@pytest.mark.parametrize("after", [False, True])
async def test_given_drop_when_a_write_arrives_then_the_connection_breaks_applied_only_with_after(
    sandbox: Sandbox, after: bool
) -> None:
    sandbox["bigcapital"].faults.add("drop", method="POST", after=after)
    async with _client(sandbox) as client:
        with pytest.raises(httpx.TransportError):
            await client.post("/bigcapital/api/customers", json=NEW_CUSTOMER, headers=BC_AUTH)
    assert len(sandbox["bigcapital"].records) == (1 if after else 0)


async def test_given_rate_limit_when_requested_then_429_with_retry_after_and_then_served(sandbox: Sandbox) -> None:
    sandbox["bigcapital"].faults.add("rate_limit", retry_after=7, times=1)
    async with _client(sandbox) as client:
        first = await client.get("/bigcapital/api/customers", headers=BC_AUTH)
        second = await client.get("/bigcapital/api/customers", headers=BC_AUTH)
    assert (first.status_code, first.headers["Retry-After"]) == (429, "7")
    assert second.status_code == 200


async def test_given_rules_with_skip_times_method_and_path_when_requests_arrive_then_only_the_matching_ones_fire(
    sandbox: Sandbox,
) -> None:
    rule = sandbox["bigcapital"].faults.add("error_before", method="POST", path=r"/api/customers$", skip=1, times=2)
    async with _client(sandbox) as client:
        statuses = [
            (await client.post("/bigcapital/api/customers", json=NEW_CUSTOMER, headers=BC_AUTH)).status_code
            for _ in range(4)
        ]
        listed = await client.get("/bigcapital/api/customers", headers=BC_AUTH)
    assert statuses == [201, 500, 500, 201]
    assert listed.status_code == 200
    assert rule.fired == 2
    assert rule.exhausted


def test_given_the_same_fault_seed_when_two_runs_draw_then_the_same_requests_fail() -> None:
    def pattern(seed: int) -> list[bool]:
        box = Sandbox()
        faults = box["thredfi"].faults
        faults._rng.seed(seed)  # what Emulator(fault_seed=...) does
        faults.add("error_after", probability=0.3, times=None)
        return [faults.pick("POST", "/v1/x") is not None for _ in range(200)]

    assert pattern(5) == pattern(5)
    assert pattern(5) != pattern(6)
    assert 30 <= sum(pattern(5)) <= 90


def test_given_a_slow_rule_on_loopback_when_requested_then_the_answer_comes_late_but_complete() -> None:
    box = Sandbox()
    box["bigcapital"].faults.add("slow", delay_s=0.4, method="GET")
    with BackgroundServer(box.app) as server:
        started = time.monotonic()
        response = httpx.get(f"{server.url}/bigcapital/api/customers", headers=BC_AUTH)
        slow = time.monotonic() - started
        box["bigcapital"].faults.add("slow", delay_s=1.0, method="GET")
        with pytest.raises(httpx.ReadTimeout):
            httpx.get(f"{server.url}/bigcapital/api/customers", headers=BC_AUTH, timeout=0.2)
    assert response.status_code == 200
    assert slow >= 0.4


async def test_given_a_late_rule_when_a_listing_is_asked_then_it_shows_the_records_as_they_stood_when_asked(
    sandbox: Sandbox,
) -> None:
    sandbox["bigcapital"].faults.add("late", delay_s=0.5, method="GET", path=r"customers/?$", times=1)
    async with _client(sandbox) as client:
        started = time.monotonic()
        listing = asyncio.ensure_future(client.get("/bigcapital/api/customers", headers=BC_AUTH))
        while not sandbox["bigcapital"].requests:  # the listing was asked for and answered, not delivered yet
            await asyncio.sleep(0.01)
        created = await client.post("/bigcapital/api/customers", json=NEW_CUSTOMER, headers=BC_AUTH)
        late = await listing
        took = time.monotonic() - started
        again = await client.get("/bigcapital/api/customers", headers=BC_AUTH)
    assert created.status_code == 201, created.text
    assert late.status_code == 200
    assert late.json()["customers"] == [], "the late answer holds what was created after it was asked for"
    assert took >= 0.5
    assert [c["display_name"] for c in again.json()["customers"]] == ["Fault Ltd"]


async def test_given_a_short_token_lifetime_when_time_passes_then_the_token_is_refused(sandbox: Sandbox) -> None:
    now = [0.0]
    sandbox["thredfi"].clock = lambda: now[0]  # type: ignore[attr-defined]
    sandbox["thredfi"].token_ttl_s = 2  # type: ignore[attr-defined]
    async with _client(sandbox) as client:
        token = (
            await client.post(
                "/thredfi/v1/platform/oauth2/token/",
                headers={"Authorization": f"Basic {BASIC}"},
                data={"grant_type": "client_credentials"},
            )
        ).json()
        path = f"/thredfi/v1/platform/businesses/{thredfi.SANDBOX_BUSINESS_ID}/customers/"
        # Customer routes take a business token (the sandbox's strict reading of the auth guide).
        business = (
            await client.post(
                f"/thredfi/v1/platform/{thredfi.SANDBOX_BUSINESS_ID}/oauth2/token/",
                headers={"Authorization": f"Bearer {token['access_token']}"},
            )
        ).json()
        bearer = {"Authorization": f"Bearer {business['access_token']}"}
        fresh = await client.get(path, headers=bearer)
        now[0] = 2.5
        stale = await client.get(path, headers=bearer)
    assert token["expires_in"] == 2
    assert (fresh.status_code, stale.status_code) == (200, 401)


async def test_given_the_admin_surface_when_faults_are_posted_over_http_then_they_apply_and_can_be_cleared(
    sandbox: Sandbox,
) -> None:
    async with _client(sandbox) as client:
        added = await client.post("/bigcapital/_admin/faults", json=[{"kind": "error_before", "method": "GET"}])
        failing = await client.get("/bigcapital/api/customers", headers=BC_AUTH)
        await client.delete("/bigcapital/_admin/faults")
        healed = await client.get("/bigcapital/api/customers", headers=BC_AUTH)
    assert added.json()[0]["kind"] == "error_before"
    assert (failing.status_code, healed.status_code) == (500, 200)


def _client(sandbox: Sandbox) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=sandbox.app), base_url="http://sandbox.test")


# -- parsing the CLI's --fault -------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            "thredfi:error_after:method=POST,probability=0.1,times=",
            ("thredfi", "error_after", {"times": None, "method": "POST", "probability": 0.1}),
        ),
        (
            "bigcapital:rate_limit:retry_after=2.5,times=3",
            ("bigcapital", "rate_limit", {"times": 3, "retry_after": 2.5}),
        ),
        (
            "piriod:drop:after=true,path=/customers/$",
            ("piriod", "drop", {"times": None, "after": True, "path": "/customers/$"}),
        ),
        (
            "timbrix:slow:delay_s=0.5,skip=2,status=503",
            ("timbrix", "slow", {"times": None, "delay_s": 0.5, "skip": 2, "status": 503}),
        ),
        ("timbrix:error_before", ("timbrix", "error_before", {"times": None})),
        ("thredfi:drop_field:field=phone,times=1", ("thredfi", "drop_field", {"times": 1, "field": "phone"})),
        ("thredfi:kill:skip=4", ("thredfi", "kill", {"times": None, "skip": 4})),
    ],
)
def test_given_a_fault_spec_when_parsed_then_system_kind_and_options(spec: str, expected: tuple[object, ...]) -> None:
    assert parse_fault(spec) == expected


@pytest.mark.parametrize(
    ("spec", "names"),
    [
        ("quickbooks:error_before", "quickbooks"),
        ("thredfi:explode", "explode"),
        ("thredfi:slow:colour=red", "colour"),
        ("thredfi:drop_field", "field=NAME"),
    ],
)
def test_given_a_bad_fault_spec_when_parsed_then_the_error_names_the_bad_part(spec: str, names: str) -> None:
    with pytest.raises(ValueError, match=names):
        parse_fault(spec)


# -- from the CLI: custsync sandbox --faults ---------------------------------------------------


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """``custsync sandbox`` as a process with faults, a quick token lifetime and a seed."""
    port = free_port()
    config = tmp_path / "sandbox.toml"
    args = [
        CUSTSYNC,
        "sandbox",
        "--port",
        str(port),
        "--seed",
        "3",
        "--token-ttl",
        "1",
        "--faults",
        "bigcapital:error_after:method=POST,path=/api/customers$,times=1",
        "--fault",
        "thredfi:rate_limit:method=GET,retry_after=4,times=1",
        "--fault",
        "piriod:error_before:method=GET,status=503,times=1",
        "--write-config",
        str(config),
    ]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_for(port, process)
        yield f"http://127.0.0.1:{port}", config
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_for(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"custsync sandbox exited: {process.stderr.read() if process.stderr else ''!r}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError("custsync sandbox did not start")


@pytest.mark.slow
def test_given_custsync_sandbox_with_faults_when_called_then_each_fault_fires_as_configured(
    served: tuple[str, Path],
) -> None:
    url, config = served
    with httpx.Client(base_url=url) as client:
        lost = client.post("/bigcapital/api/customers", json=NEW_CUSTOMER, headers=BC_AUTH)
        applied = client.get("/bigcapital/_admin/customers").json()
        token = client.post(
            "/thredfi/v1/platform/oauth2/token/",
            headers={"Authorization": f"Basic {BASIC}"},
            data={"grant_type": "client_credentials"},
        ).json()
        path = f"/thredfi/v1/platform/businesses/{thredfi.SANDBOX_BUSINESS_ID}/customers/"
        # Customer routes take a business token (the sandbox's strict reading of the auth guide).
        token = client.post(
            f"/thredfi/v1/platform/{thredfi.SANDBOX_BUSINESS_ID}/oauth2/token/",
            headers={"Authorization": f"Bearer {token['access_token']}"},
        ).json()
        limited = client.get(path, headers={"Authorization": f"Bearer {token['access_token']}"})
        unavailable = client.get(
            "/piriod/customers/",
            headers={"Authorization": "Token sk_test_piriod_sandbox", "x-simple-workspace": "acc_01H8XYZ123ABC"},
        )
        time.sleep(1.2)
        expired = client.get(path, headers={"Authorization": f"Bearer {token['access_token']}"})
    assert lost.status_code == 500
    assert any(r["display_name"] == "Fault Ltd" for r in applied)
    assert token["expires_in"] == 1
    assert (limited.status_code, limited.headers.get("Retry-After")) == (429, "4")
    assert unavailable.status_code == 503
    assert expired.status_code == 401
    assert "[pipelines.bigcapital_to_thredfi]" in config.read_text()


@pytest.mark.slow
def test_given_a_run_against_the_faulty_sandbox_when_synced_then_it_rides_out_the_faults(
    served: tuple[str, Path], tmp_path: Path
) -> None:
    url, _ = served
    config = tmp_path / "run.toml"
    config.write_text(config_text(url, f"sqlite:///{tmp_path / 'state.db'}"), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUSTSYNC_")}
    runs = [
        subprocess.run(
            [CUSTSYNC, "run", "thredfi_to_bigcapital", "-c", str(config), "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        for _ in range(2)
    ]
    assert runs[-1].returncode == 0, runs[-1].stderr[-2000:]
    with httpx.Client(base_url=url) as client:
        emails = [r["email"] for r in client.get("/bigcapital/_admin/customers").json()]
    assert sorted(emails) == sorted(set(emails)), "each customer once, the lost create included"


def test_given_an_unknown_fault_when_custsync_sandbox_starts_then_exit_2_naming_it() -> None:
    done = subprocess.run(
        [CUSTSYNC, "sandbox", "--port", str(free_port()), "--fault", "thredfi:meltdown"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "meltdown" in done.stderr


@pytest.mark.slow
def test_given_the_sandbox_process_dies_after_n_writes_when_a_run_is_cut_off_then_it_never_reports_success(
    tmp_path: Path,
) -> None:
    """The emulator-side kill (``--fault thredfi:kill:skip=4``: the sandbox dies on its fifth
    Thredfi write, before answering it): the API vanishes mid-run. The run must end failed or
    partial (exit 3 or 1), never 0, never a traceback."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUSTSYNC_")}
    server = subprocess.Popen(
        [CUSTSYNC, "sandbox", "--port", str(port), "--seed", "40", "--fault", "thredfi:kill:skip=4"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(port, server)
        config = tmp_path / "run.toml"
        quick = {"retry_attempts": 3, "retry_timeout_s": 5}
        text = config_text(
            f"http://127.0.0.1:{port}",
            f"sqlite:///{tmp_path / 'state.db'}",
            connections={"thredfi": quick, "bigcapital": quick},
        )
        # One way (only this pipeline): in a pair, the customers the sandbox seeds in both systems
        # would be linked by e-mail, with no write for the kill to cut off.
        config.write_text(_only_pipeline(text, "bigcapital_to_thredfi"))
        done = subprocess.run(
            [CUSTSYNC, "run", "bigcapital_to_thredfi", "-c", str(config), "--json"],
            env={**env, "CUSTSYNC_LOG_LEVEL": "warning"},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert server.wait(timeout=30) == -signal.SIGKILL
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert done.returncode in (1, 3), (done.returncode, done.stdout, done.stderr[-2000:])
    assert "Traceback" not in done.stderr
    assert '"status": "succeeded"' not in done.stdout


def _only_pipeline(text: str, name: str) -> str:
    """A config's text without its other ``[pipelines.*]`` tables."""
    kept: list[str] = []
    keep = True
    for line in text.splitlines():
        if line.startswith("["):
            keep = not line.startswith("[pipelines.") or line == f"[pipelines.{name}]"
        if keep:
            kept.append(line)
    return "\n".join(kept) + "\n"
