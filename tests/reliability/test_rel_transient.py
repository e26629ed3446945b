"""Issue 5, part 2: transient failures.

Timeouts, connection errors and 5xx are retried by stamina with exponential
backoff and jitter, bounded in attempts and time; a 429 waits ``Retry-After``
(≤ 0 or missing: ordinary backoff); ``requests_per_second`` is enforced by a
limiter, shared through Redis as a service; tokens are renewed on expiry and
once on a 401.
"""

from __future__ import annotations

import asyncio
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
import stamina
import stamina.instrumentation

from connectors.auth import TokenAuth, retry_after_seconds
from connectors.ratelimit import LocalRateLimiter
from sandbox._core import FaultKind
from sandbox.server import BackgroundServer, Sandbox
from state.store import Store
from tests.conftest import one_way
from tests.support.parallel import redis_url
from tests.support.soak import config_text, seed_source, verify_async
from worker.config import AppConfig, parse_config
from worker.ratelimit import RedisRateLimiter
from worker.sync import RunResult, run_pipeline


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    """SQLite only: the store plays no part in these tests."""
    return f"sqlite:///{tmp_path / 'state.db'}"


REDIS_URL = redis_url(15, 6)  # a database of its own per xdist worker


def _config(
    store: Store,
    base_url: str = "http://sandbox.test",
    *,
    connections: dict[str, dict[str, Any]] | None = None,
    **pipeline: Any,
) -> AppConfig:
    raw = tomllib.loads(config_text(base_url, store.url, **pipeline))
    for name, options in (connections or {}).items():
        raw["connections"][name].update(options)
    return parse_config(raw, path=Path("transient.toml"), environ={})


async def _run(
    config: AppConfig, pipeline: str, store: Store, transport: httpx.AsyncBaseTransport | None = None, **options: Any
) -> RunResult:
    transports = {name: transport for name in config.connections} if transport else None
    return await run_pipeline(config, pipeline, store=store, transports=transports, **options)


@pytest.fixture
def waits() -> Iterator[list[float]]:
    """Real backoff (stamina's testing mode off), recording each scheduled wait."""
    seen: list[float] = []

    def hook(details: stamina.instrumentation.RetryDetails) -> None:
        seen.append(details.wait_for)

    before = stamina.instrumentation.get_on_retry_hooks()
    stamina.instrumentation.set_on_retry_hooks([*before, hook])
    stamina.set_testing(False)
    try:
        yield seen
    finally:
        stamina.instrumentation.set_on_retry_hooks(before)


# -- 5xx, timeouts, connection errors ---------------------------------------------


async def test_given_5xx_on_reads_when_run_then_retried_and_the_run_succeeds(
    sandbox: Sandbox, transport: httpx.ASGITransport, store: Store
) -> None:
    seed_source(sandbox, "bt", 10)
    listing = sandbox["bigcapital"].faults.add("error_before", method="GET", times=3, status=503)
    token = sandbox["thredfi"].faults.add("error_before", path="oauth2/token", times=2, status=502)

    result = await _run(_config(store), "bigcapital_to_thredfi", store, transport)

    assert (listing.fired, token.fired) == (3, 2)
    assert result.status == "succeeded", result.summary()
    assert result.counts.created == 10, result.summary()


async def test_given_a_connection_refused_before_sending_when_creating_then_even_a_bigcapital_create_is_retried(
    sandbox: Sandbox, transport: httpx.ASGITransport, store: Store
) -> None:
    """A create that provably never reached the server is safe to resend."""
    seed_source(sandbox, "tb", 4)
    refused = _Refusing(transport, path="/bigcapital/api/customers", method="POST", times=2)

    result = await _run(_config(store), "thredfi_to_bigcapital", store, refused)

    assert refused.refused == 2
    assert result.status == "succeeded", result.summary()
    assert result.counts.created == 4, result.summary()
    assert len(sandbox["bigcapital"].records) == 4


class _Refusing(httpx.AsyncBaseTransport):
    """Raises ``ConnectError`` (nothing sent) for the first ``times`` matching requests."""

    def __init__(self, inner: httpx.AsyncBaseTransport, *, path: str, method: str, times: int) -> None:
        self.inner, self.path, self.method, self.left, self.refused = inner, path, method, times, 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.left and request.method == self.method and request.url.path == self.path:
            self.left -= 1
            self.refused += 1
            raise httpx.ConnectError("connection refused", request=request)
        return await self.inner.handle_async_request(request)


async def test_given_a_lost_create_answer_when_bigcapital_then_never_resent_blindly_but_looked_up(
    sandbox: Sandbox, transport: httpx.ASGITransport, store: Store
) -> None:
    seed_source(sandbox, "tb", 6)
    sandbox["bigcapital"].faults.add("error_after", method="POST", path="/api/customers$", times=2)

    result = await _run(_config(store), "thredfi_to_bigcapital", store, transport)

    posts = [r for r in sandbox["bigcapital"].requests if r.method == "POST" and r.path.endswith("/customers")]
    assert len(posts) == 6, "one POST per customer: the two lost answers were found, not resent"
    assert result.status == "succeeded", result.summary()
    check = await verify_async(sandbox, _config(store), "thredfi_to_bigcapital")
    assert check.clean, check
    assert check.found == 6, check


@pytest.mark.parametrize("kind", ["slow", "drop"])
async def test_given_a_timeout_or_dropped_connection_on_loopback_when_run_then_retried_and_lands_once(
    kind: FaultKind, store: Store
) -> None:
    """Real sockets: a response slower than ``timeout_s``, or a connection cut mid-answer."""
    box = Sandbox()
    seed_source(box, "bt", 6)
    options = {"delay_s": 1.0} if kind == "slow" else {"after": True}
    rule = box["thredfi"].faults.add(kind, method="POST", path="/customers/$", times=2, **options)
    with BackgroundServer(box.app) as server:
        config = _config(store, server.url, connections={"thredfi": {"timeout_s": 0.3}})
        result = await _run(config, "bigcapital_to_thredfi", store)

    assert rule.fired == 2
    assert result.status == "succeeded", result.summary()
    check = await verify_async(box, config, "bigcapital_to_thredfi")
    assert check.clean, check
    assert check.found == 6, check


# -- bounded in attempts and in time ------------------------------------------------


async def test_given_a_source_failing_for_good_when_run_then_gives_up_after_the_attempt_budget(
    sandbox: Sandbox, transport: httpx.ASGITransport, store: Store
) -> None:
    seed_source(sandbox, "bt", 3)
    rule = sandbox["bigcapital"].faults.add("error_before", method="GET", times=None)
    config = _config(store, connections={"bigcapital": {"retry_attempts": 3}})

    result = await _run(config, "bigcapital_to_thredfi", store, transport)

    assert result.status == "failed"
    assert result.exit_code == 3
    assert rule.fired == 3, "exactly retry_attempts tries"
    assert "server error" in (result.error or "")


async def test_given_a_retry_time_budget_when_failing_for_good_then_stops_within_it_long_before_the_attempts(
    sandbox: Sandbox, transport: httpx.ASGITransport, store: Store, waits: list[float]
) -> None:
    seed_source(sandbox, "bt", 3)
    rule = sandbox["bigcapital"].faults.add("error_before", method="GET", times=None)
    config = _config(store, connections={"bigcapital": {"retry_attempts": 50, "retry_timeout_s": 0.5}})

    result = await _run(config, "bigcapital_to_thredfi", store, transport)

    assert result.status == "failed"
    assert rule.fired < 10, "the time budget, not the 50 attempts, ended it"
    assert sum(waits[:-1]) <= 0.5, "no retry is scheduled once the budget is spent"
    assert all(w > 0 for w in waits), "exponential backoff with jitter between tries"


# -- 429 and Retry-After -----------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("2", 2.0),
        ("0.25", 0.25),
        ("0", None),
        ("-3", None),
        ("", None),
        ("soon", None),
        ("Wed, 21 Oct 2026 07:28:00 GMT", None),
    ],
)
def test_given_a_retry_after_header_when_read_then_only_a_positive_number_of_seconds_counts(
    header: str, seconds: float | None
) -> None:
    response = httpx.Response(429, headers={"Retry-After": header})
    assert retry_after_seconds(response) == seconds
    assert retry_after_seconds(httpx.Response(429)) is None


async def test_given_429_with_retry_after_when_creating_then_waits_exactly_that_long_then_creates_once(
    sandbox: Sandbox, transport: httpx.ASGITransport, store: Store, waits: list[float]
) -> None:
    """Also for Bigcapital's non-idempotent create: a 429 was not applied."""
    seed_source(sandbox, "tb", 3)
    rule = sandbox["bigcapital"].faults.add("rate_limit", method="POST", times=2, retry_after=0.05)

    result = await _run(_config(store), "thredfi_to_bigcapital", store, transport)

    assert rule.fired == 2
    assert waits == [0.05, 0.05]
    assert result.status == "succeeded"
    assert len(sandbox["bigcapital"].records) == 3


@pytest.mark.parametrize("retry_after", [None, 0, -1])
async def test_given_429_without_a_usable_retry_after_when_reading_then_ordinary_backoff(
    retry_after: float | None, sandbox: Sandbox, transport: httpx.ASGITransport, store: Store, waits: list[float]
) -> None:
    seed_source(sandbox, "bt", 2)
    sandbox["bigcapital"].faults.add("rate_limit", method="GET", times=1, retry_after=retry_after)

    result = await _run(_config(store), "bigcapital_to_thredfi", store, transport)

    assert result.status == "succeeded"
    (wait,) = waits
    assert 0.2 <= wait <= 1.2 + 1e-6, "wait_initial plus up to a second of jitter, not the header"


async def test_given_429_on_the_token_endpoint_when_run_then_retry_after_is_honoured(
    sandbox: Sandbox, transport: httpx.ASGITransport, store: Store, waits: list[float]
) -> None:
    seed_source(sandbox, "bt", 2)
    sandbox["thredfi"].faults.add("rate_limit", path="oauth2/token", times=1, retry_after=0.05)

    result = await _run(_config(store), "bigcapital_to_thredfi", store, transport)

    assert result.status == "succeeded"
    assert waits == [0.05]


# -- requests per second ------------------------------------------------------------


async def test_given_requests_per_second_when_run_then_every_request_passes_the_connections_limiter(
    sandbox: Sandbox, transport: httpx.ASGITransport, store: Store
) -> None:
    seed_source(sandbox, "bt", 5)
    config = _config(
        store, connections={"thredfi": {"requests_per_second": 50}, "bigcapital": {"requests_per_second": 40}}
    )
    made: dict[str, tuple[float, _Counting]] = {}

    def factory(key: str, rate: float) -> _Counting:
        made[key] = (rate, _Counting())
        return made[key][1]

    result = await _run(config, "bigcapital_to_thredfi", store, transport, limiter_factory=factory)

    assert result.status == "succeeded"
    assert {k: rate for k, (rate, _) in made.items()} == {"bigcapital": 40, "thredfi": 50}
    thredfi_api = [r for r in sandbox["thredfi"].requests if "oauth2" not in r.path]
    assert made["thredfi"][1].calls >= len(thredfi_api) >= 5
    assert made["bigcapital"][1].calls == len(sandbox["bigcapital"].requests)


class _Counting:
    def __init__(self) -> None:
        self.calls = 0

    async def acquire(self) -> None:
        self.calls += 1


async def test_given_a_local_limiter_when_a_burst_arrives_then_requests_are_spaced_at_the_rate() -> None:
    now = [0.0]
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    limiter = LocalRateLimiter(4, burst=1, clock=lambda: now[0])
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("connectors.ratelimit.asyncio.sleep", fake_sleep)
        for _ in range(9):
            await limiter.acquire()

    assert now[0] == pytest.approx(2.0), "9 requests at 4/s, the first free: 8 intervals of 0.25 s"


@pytest.fixture
async def redis15() -> Any:
    """Redis DB 15, flushed before and after."""
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except Exception as exc:  # pragma: no cover - the CI has Redis
        pytest.skip(f"no Redis at {REDIS_URL}: {exc}")
    await client.flushdb()
    yield client
    await client.flushdb()
    await client.aclose()


@pytest.mark.redis
async def test_given_two_workers_sharing_a_redis_limiter_when_both_burst_then_together_they_keep_the_rate(
    redis15: aioredis.Redis,
) -> None:
    """Two workers (two clients, two limiter objects) on one connection's key."""
    other = aioredis.Redis.from_url(REDIS_URL)
    workers = [RedisRateLimiter(redis15, "thredfi", 10), RedisRateLimiter(other, "thredfi", 10)]
    stamps: list[float] = []

    async def call(limiter: RedisRateLimiter) -> None:
        await limiter.acquire()
        stamps.append(time.monotonic())

    started = time.monotonic()
    await asyncio.gather(*(call(workers[n % 2]) for n in range(21)))
    await other.aclose()

    stamps.sort()
    # The k-th request of the pair goes out no earlier than k intervals after the first could:
    # never more than 10 in a second, whoever sends them (a late wake-up only delays one).
    early = [k for k, stamp in enumerate(stamps) if stamp - started < k * 0.1 - 0.02]
    assert not early, f"requests sent ahead of their slot: {early}"
    assert stamps[-1] - started >= 2.0 - 0.02
    assert await redis15.exists("custsync:rate:thredfi")


@pytest.mark.redis
async def test_given_a_rate_below_one_per_second_when_shared_through_redis_then_it_is_not_rounded_up(
    redis15: aioredis.Redis,
) -> None:
    limiter = RedisRateLimiter(redis15, "slow-api", 4)  # a 0.25 s interval: short enough for a test
    half = RedisRateLimiter(redis15, "half-api", 0.5)
    started = time.monotonic()
    for _ in range(3):
        await limiter.acquire()
    await half.acquire()  # the first is free
    assert time.monotonic() - started >= 0.5 - 0.05
    ttl = await redis15.pttl("custsync:rate:half-api")
    assert 2000 <= ttl <= 3100, "the next slot of a 0.5/s limiter is 2 s away"


# -- tokens ------------------------------------------------------------------------


async def test_given_thredfi_tokens_expire_within_the_run_when_synced_then_renewed_and_nothing_fails(
    store: Store,
) -> None:
    box = Sandbox()
    now = [0.0]
    box["thredfi"].clock = lambda: now[0]  # type: ignore[attr-defined]
    box["thredfi"].token_ttl_s = 1  # type: ignore[attr-defined]
    seed_source(box, "bt", 30)
    transport = _Ticking(httpx.ASGITransport(app=box.app), now, step=0.3)  # every request: 0.3 s later

    result = await _run(_config(store), "bigcapital_to_thredfi", store, transport)

    assert result.status == "succeeded", result.summary()
    tokens = [r for r in box["thredfi"].requests if "oauth2/token" in r.path]
    refused = [r for r in box["thredfi"].requests if r.status == 401]
    assert len(tokens) >= 5, "renewed as the tokens expired"
    assert len(refused) <= len(tokens), "each 401 costs one renewal, never a failure"
    check = await verify_async(box, _config(store), "bigcapital_to_thredfi")
    assert check.clean, check


class _Ticking(httpx.AsyncBaseTransport):
    """Advances a fake clock on every request (the emulator's token clock)."""

    def __init__(self, inner: httpx.AsyncBaseTransport, now: list[float], *, step: float) -> None:
        self.inner, self.now, self.step = inner, now, step

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.now[0] += self.step
        return await self.inner.handle_async_request(request)


async def test_given_the_server_forgets_every_token_mid_run_when_synced_then_renewed_once_per_401(
    sandbox: Sandbox, transport: httpx.ASGITransport, store: Store
) -> None:
    seed_source(sandbox, "bt", 12)
    forgetting = _Forgetting(transport, sandbox, after=6)

    result = await _run(_config(store), "bigcapital_to_thredfi", store, forgetting)

    assert result.status == "succeeded", result.summary()
    tokens = [r for r in sandbox["thredfi"].requests if "oauth2/token" in r.path]
    # A business token (the default) rides on a partner token: both were forgotten, and each is
    # renewed exactly once (the business token's renewal is refused until the partner's is).
    kinds = ["partner" if r.path.endswith("/platform/oauth2/token/") else "business" for r in tokens]
    assert kinds == ["partner", "business", "business", "partner", "business"], kinds
    assert [r.status for r in tokens] == [200, 200, 401, 200, 200]
    assert any(r.status == 401 for r in sandbox["thredfi"].requests if "/customers/" in r.path)
    check = await verify_async(sandbox, _config(store), "bigcapital_to_thredfi")
    assert check.clean, check
    assert check.found == 12, check


class _Forgetting(httpx.AsyncBaseTransport):
    """Makes the Thredfi emulator forget its tokens once, after ``after`` requests."""

    def __init__(self, inner: httpx.AsyncBaseTransport, box: Sandbox, *, after: int) -> None:
        self.inner, self.box, self.left = inner, box, after

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.left -= 1
        if self.left == 0:
            self.box["thredfi"].tokens.clear()  # type: ignore[attr-defined]
        return await self.inner.handle_async_request(request)


class _Tokens(TokenAuth):
    def token_request(self) -> httpx.Request:
        return httpx.Request("POST", "https://api.test/token")


def _token_server(lifetime: int, refuse: set[str]) -> tuple[httpx.MockTransport, list[str]]:
    issued: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            issued.append(f"t{len(issued) + 1}")
            return httpx.Response(200, json={"access_token": issued[-1], "expires_in": lifetime})
        token = request.headers["Authorization"].removeprefix("Bearer ")
        return httpx.Response(401 if token in refuse or "*" in refuse else 200, json={})

    return httpx.MockTransport(handle), issued


async def test_given_a_token_when_its_lifetime_runs_out_then_renewed_a_margin_before_expiry() -> None:
    now = [0.0]
    transport, issued = _token_server(100, set())
    auth = _Tokens(renew_margin_s=60, clock=lambda: now[0])
    async with httpx.AsyncClient(transport=transport, auth=auth) as client:
        await client.get("https://api.test/x")
        now[0] = 74.0  # margin = min(60, 100 / 4) = 25: renew at 75
        await client.get("https://api.test/x")
        assert issued == ["t1"]
        now[0] = 75.0
        await client.get("https://api.test/x")
    assert issued == ["t1", "t2"]
    assert auth.renewals == 2


async def test_given_a_401_when_the_renewed_token_is_refused_too_then_it_stops_after_one_renewal() -> None:
    transport, issued = _token_server(3600, {"*"})
    async with httpx.AsyncClient(transport=transport, auth=_Tokens()) as client:
        response = await client.get("https://api.test/x")
    assert response.status_code == 401
    assert issued == ["t1", "t2"], "one renewal on the 401, not a loop"


async def test_given_credentials_refused_when_run_then_fatal_with_exit_3_not_retried_forever(
    store: Store,
) -> None:
    box = Sandbox()
    box["thredfi"].api_key = "rotated"  # type: ignore[attr-defined]
    seed_source(box, "bt", 2)

    result = await _run(_config(store), "bigcapital_to_thredfi", store, httpx.ASGITransport(app=box.app))

    assert result.status == "failed"
    assert result.exit_code == 3
    tokens = [r for r in box["thredfi"].requests if "oauth2/token" in r.path]
    assert len(tokens) == 1, "a refusal is remembered: concurrent requests do not all ask again"
    assert "refused" in (result.error or "")


@pytest.mark.redis
async def test_given_two_pipelines_into_one_connection_when_run_at_once_then_the_shared_limiter_spaces_all_calls(
    redis15: aioredis.Redis, sandbox: Sandbox, store: Store, tmp_path: Path
) -> None:
    """What the service does (``worker.lock``): every run builds its limiters on one Redis."""
    seed_source(sandbox, "bt", 12)
    sandbox["piriod"].seed_fake(12)
    # One way: in pairs the same people seeded in Bigcapital and Piriod would be refused as second
    # identities of one another (this test is about the shared limiter, not identity).
    config = one_way(
        _config(store, connections={"thredfi": {"requests_per_second": 25}}),
        "bigcapital_to_thredfi",
        "piriod_to_thredfi",
    )
    stamps: list[float] = []
    timed = _Timed(httpx.ASGITransport(app=sandbox.app), stamps, host_path="/thredfi/")
    other = Store(f"sqlite:///{tmp_path / 'other.db'}")

    def limiter(key: str, rate: float) -> RedisRateLimiter:
        return RedisRateLimiter(redis15, key, rate)

    started = time.monotonic()
    results = await asyncio.gather(
        _run(config, "bigcapital_to_thredfi", store, timed, limiter_factory=limiter),
        _run(config, "piriod_to_thredfi", other, timed, limiter_factory=limiter),
    )
    other.close()

    assert [r.status for r in results] == ["succeeded", "succeeded"], [r.summary() for r in results]
    stamps.sort()
    early = [k for k, stamp in enumerate(stamps) if stamp - started < k * 0.04 - 0.02]
    assert not early, f"{len(stamps)} Thredfi calls, ahead of the shared schedule: {early}"
    assert len(stamps) >= 26


class _Timed(httpx.AsyncBaseTransport):
    """Records when each request to one system leaves (after the limiter let it go)."""

    def __init__(self, inner: httpx.AsyncBaseTransport, stamps: list[float], *, host_path: str) -> None:
        self.inner, self.stamps, self.host_path = inner, stamps, host_path

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith(self.host_path) and "oauth2" not in request.url.path:
            self.stamps.append(time.monotonic())
        return await self.inner.handle_async_request(request)
