"""Issue 12.4: adaptive concurrency (AIMD), in process and shared through real Redis, and polite end to end."""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
import redis.asyncio as aioredis

from connectors.concurrency import (
    LEASE_S,
    AIMDLimiter,
    AIMDState,
    Bounds,
    InProcessState,
    admit,
    read_signal,
    settle,
)
from connectors.transport import default_transport
from sandbox.server import BackgroundServer
from sandbox.thredfi import SANDBOX_API_KEY, SANDBOX_BUSINESS_ID, SANDBOX_PARTNER_UUID, ThredfiEmulator
from worker.concurrency import RedisState

REDIS_URL = "redis://127.0.0.1:6379/5"  # a DB no other test flushes (keys are per test anyway)
CUSTOMERS = f"/v1/platform/businesses/{SANDBOX_BUSINESS_ID}/customers/"


def _grow(state: AIMDState, bounds: Bounds, successes: int, now: float = 100.0) -> None:
    for i in range(successes):
        token = f"t{i}"
        wait, epoch = admit(state, bounds, now, token)
        assert wait == 0.0
        settle(state, bounds, now, token, epoch, "ok", None)


def test_given_a_fresh_limit_when_answers_succeed_then_it_grows_by_one_per_window_up_to_the_ceiling() -> None:
    state, bounds = AIMDState(), Bounds(ceiling=16)
    seen = []
    for _ in range(17):
        _grow(state, bounds, max(1, int(state.limit)))
        seen.append(state.limit)

    assert seen == [*range(2, 17), 16, 16]


def test_given_several_429s_of_one_round_when_settled_then_halved_once_and_later_ones_halve_again() -> None:
    state, bounds = AIMDState(limit=16), Bounds(ceiling=16)
    first = [admit(state, bounds, 10.0, f"a{i}") for i in range(3)]
    for i, (_, epoch) in enumerate(first):
        settle(state, bounds, 10.0, f"a{i}", epoch, "refused", None)
    assert state.limit == 8, "the answers to requests sent before the cut do not cut again"
    assert state.leases == {}

    _, epoch = admit(state, bounds, 11.0, "b")
    settle(state, bounds, 11.0, "b", epoch, "refused", None)
    assert state.limit == 4


def test_given_refusals_forever_when_settled_then_the_limit_stays_at_the_floor() -> None:
    state, bounds = AIMDState(limit=16), Bounds(ceiling=16)
    for i in range(10):
        _, epoch = admit(state, bounds, 10.0 + i * 100, f"r{i}")
        settle(state, bounds, 10.0 + i * 100, f"r{i}", epoch, "refused", None)

    assert state.limit == 1


def test_given_a_cut_when_a_window_of_successes_follows_then_it_grows_by_one() -> None:
    state, bounds = AIMDState(limit=8), Bounds(ceiling=16)
    _, epoch = admit(state, bounds, 10.0, "x")
    settle(state, bounds, 10.0, "x", epoch, "spent", None)
    assert state.limit == 4

    _grow(state, bounds, 4)
    assert state.limit == 5
    _grow(state, bounds, 5)
    assert state.limit == 6


def test_given_a_ceiling_when_configured_then_never_exceeded_and_bad_bounds_refused() -> None:
    state, bounds = AIMDState(), Bounds(ceiling=3)
    _grow(state, bounds, 50)
    assert state.limit == 3
    with pytest.raises(ValueError, match="floor <= ceiling"):
        Bounds(ceiling=2, floor=3)


def test_given_a_full_window_when_admitting_then_refused_until_a_release() -> None:
    state, bounds = AIMDState(limit=2), Bounds()
    assert admit(state, bounds, 1.0, "a")[0] == 0.0
    assert admit(state, bounds, 1.0, "b")[0] == 0.0
    assert admit(state, bounds, 1.0, "c")[0] > 0, "two in flight at a limit of two"
    settle(state, bounds, 1.0, "a", 0, "ok", None)
    assert admit(state, bounds, 1.0, "c")[0] == 0.0


def test_given_a_lease_never_released_when_it_expires_then_it_stops_counting() -> None:
    state, bounds = AIMDState(limit=1), Bounds()
    admit(state, bounds, 1.0, "crashed")
    assert admit(state, bounds, 2.0, "next")[0] > 0
    assert admit(state, bounds, 1.0 + LEASE_S + 1, "next")[0] == 0.0


def test_given_budget_headers_when_read_then_only_a_spent_one_holds_everyone_until_the_reset() -> None:
    assert read_signal(200, {"X-RateLimit-Remaining": "40", "X-RateLimit-Reset": "3"}, 2) == ("ok", None)
    assert read_signal(200, {"X-RateLimit-Remaining": "1", "X-RateLimit-Reset": "3"}, 0) == ("low", None)
    assert read_signal(429, {"Retry-After": "2"}, 0) == ("refused", 2.0)
    assert read_signal(429, {"Retry-After": "2", "X-RateLimit-Remaining": "0"}, 0) == ("spent", 2.0)
    assert read_signal(503, {}, 0) == ("neutral", None)
    signal, pause = read_signal(200, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "3"}, 0)
    assert (signal, pause) == ("spent", 3.0)

    state, bounds = AIMDState(limit=8), Bounds()
    _, epoch = admit(state, bounds, 10.0, "a")
    settle(state, bounds, 10.0, "a", epoch, signal, pause)

    assert state.limit == 4
    assert admit(state, bounds, 11.0, "b")[0] == pytest.approx(2.0)
    assert admit(state, bounds, 13.0, "b")[0] == 0.0


def test_given_a_nearly_spent_budget_when_settled_then_halved_and_nobody_held() -> None:
    state, bounds = AIMDState(limit=8), Bounds()
    _, epoch = admit(state, bounds, 10.0, "a")
    settle(state, bounds, 10.0, "a", epoch, "low", None)

    assert state.limit == 4
    assert admit(state, bounds, 10.0, "b")[0] == 0.0


def test_given_a_lone_429_with_retry_after_when_settled_then_halved_but_no_hold_and_no_pace() -> None:
    state, bounds = AIMDState(limit=8), Bounds()
    _grow(state, bounds, 20, now=100.0)
    limit = state.limit
    _, epoch = admit(state, bounds, 100.5, "refused")
    settle(state, bounds, 100.5, "refused", epoch, "refused", 30.0)

    assert state.limit == limit / 2
    assert state.rate is None, "one refusal teaches no pace"
    assert admit(state, bounds, 100.5, "next")[0] == 0.0, "the other requests go on: only the refused one waits"


def _refuse(state: AIMDState, bounds: Bounds, now: float, token: str, pause: float | None = 1.0) -> None:
    _, epoch = admit(state, bounds, now, token)
    settle(state, bounds, now, token, epoch, "refused", pause)


def test_given_429s_at_random_among_successes_when_settled_then_no_pace_is_ever_learnt() -> None:
    # One in four answers refused, never three in a row: a faulty API, not a quota.
    state, bounds = AIMDState(), Bounds()
    now = 100.0
    for i in range(400):
        now += 0.01
        if i % 4 == 3:
            _refuse(state, bounds, now, f"r{i}")
        else:
            _grow(state, bounds, 1, now=now)

    assert state.rate is None
    assert state.hold_until == 0.0
    assert admit(state, bounds, now, "a")[0] == 0.0


def test_given_three_429s_in_a_row_after_a_burst_when_settled_then_a_pace_below_what_was_allowed() -> None:
    state, bounds = AIMDState(limit=4), Bounds()
    state.cut_at = 90.0  # ten idle seconds before the first answer: not counted against the API
    for at in (100.0, 100.05, 100.1, 100.15, 100.2):  # five answers, then refusals with a 1 s wait: 5 per second
        _grow(state, bounds, 1, now=at)
    _refuse(state, bounds, 100.2, "one")
    _refuse(state, bounds, 100.21, "two")
    assert state.rate is None, "two refusals in a row are not yet a repeat"
    _refuse(state, bounds, 100.22, "three")

    assert state.rate == pytest.approx(0.7 * 5 / 1.2, rel=0.01)
    assert admit(state, bounds, 100.5, "early")[0] > 0, "the paced stream starts after the wait asked"
    assert admit(state, bounds, 101.3, "a")[0] == 0.0
    settle(state, bounds, 101.3, "a", state.epoch, "ok", None)
    assert state.rate is not None
    assert admit(state, bounds, 101.3, "b")[0] == pytest.approx(1 / state.rate, rel=0.01), "then paced"


def test_given_a_success_sent_before_the_cut_answered_after_a_refusal_when_settled_then_the_run_goes_on() -> None:
    # A fixed window of 5: two answers, then two creates in flight; the server took the first and refused
    # the second, whose 429 came back first. The create's late success must not break the run of refusals
    # (else each request of the page is sent once and refused, none teaching a pace).
    state, bounds = AIMDState(limit=2), Bounds()
    _grow(state, bounds, 2, now=100.0)
    _, taken_epoch = admit(state, bounds, 100.01, "taken")
    _refuse(state, bounds, 100.012, "refused first")
    settle(state, bounds, 100.02, "taken", taken_epoch, "ok", None)
    assert state.streak == 1, "sent before the cut: the run goes on"
    _refuse(state, bounds, 100.022, "two")
    _refuse(state, bounds, 100.024, "three")

    assert state.rate == pytest.approx(0.7 * 3 / (0.012 + 1.0), rel=0.01), "three successes before the run"


def test_given_a_success_sent_after_the_cut_when_settled_then_the_run_is_broken() -> None:
    state, bounds = AIMDState(limit=2), Bounds()
    _grow(state, bounds, 3, now=100.0)
    _refuse(state, bounds, 100.01, "one")
    _grow(state, bounds, 1, now=100.02)  # admitted after the cut: the API took it after refusing
    _refuse(state, bounds, 100.03, "two")
    _refuse(state, bounds, 100.04, "three")

    assert state.rate is None


def test_given_refusals_with_a_success_between_or_far_apart_when_settled_then_no_pace() -> None:
    state, bounds = AIMDState(), Bounds()
    _grow(state, bounds, 10, now=100.0)
    _refuse(state, bounds, 100.1, "a")
    _refuse(state, bounds, 100.2, "b")
    _grow(state, bounds, 1, now=100.3)
    _refuse(state, bounds, 100.4, "c")
    _refuse(state, bounds, 100.5, "d")
    assert state.rate is None, "a success broke the run"

    _refuse(state, bounds, 103.0, "e")
    assert state.rate is None, "past repeat_s: a new run of one"


def test_given_repeated_refusals_with_nothing_to_measure_when_settled_then_no_pace() -> None:
    # Refused from the first request on (a quota another client spent, or an API failing every call):
    # there is no rate of successes to learn from, so nothing slows the retries of the caller.
    state, bounds = AIMDState(), Bounds()
    for i in range(8):
        _refuse(state, bounds, 100.0 + i * 0.01, f"r{i}")

    assert state.rate is None
    assert admit(state, bounds, 100.1, "next")[0] == 0.0


def _learnt(now: float = 100.0) -> tuple[AIMDState, Bounds]:
    state, bounds = AIMDState(limit=4), Bounds()
    state.cut_at = now
    for at in (0.0, 0.05, 0.1, 0.15, 0.2):
        _grow(state, bounds, 1, now=now + at)
    for i, at in enumerate((0.2, 0.21, 0.22)):
        _refuse(state, bounds, now + at, f"learn{i}")
    assert state.rate is not None
    return state, bounds


@pytest.mark.parametrize(("refused", "kept"), [(0, True), (1, True), (3, False)])
def test_given_a_new_pace_when_its_first_answers_are_judged_then_dropped_only_if_refusals_go_on(
    refused: int, kept: bool
) -> None:
    state, bounds = _learnt()
    now = 102.0  # past the wait asked: the probation counts
    for i in range(bounds.probe):
        now += 0.5
        if i % 2 == 0 and i < 2 * refused:
            _refuse(state, bounds, now, f"p{i}")  # lone refusals, a success between
        else:
            _grow(state, bounds, 1, now=now)

    assert (state.rate is not None) is kept
    assert (state.probe_ok, state.probe_refused) == (0, 0), "judged"
    if not kept:
        _refuse(state, bounds, now + 1, "x")
        _refuse(state, bounds, now + 1.01, "y")
        _refuse(state, bounds, now + 1.02, "z")
        assert state.rate is None, "refusals proved random: no pace is learnt for a while"


def test_given_a_pace_when_a_lone_429_comes_then_the_pace_is_kept_and_grows_slowly() -> None:
    state, bounds = AIMDState(limit=4, rate=4.0, rate_step=0.2, rate_max=6.0), Bounds()
    _refuse(state, bounds, 100.0, "lone")

    assert state.rate == 4.0, "a lone refusal never cuts the pace"
    assert state.rate_max == 4.0, "but the pace creeps from here"


def test_given_a_pace_when_twice_the_allowed_rate_goes_unrefused_then_pacing_stops() -> None:
    state, bounds = AIMDState(limit=16, rate=2.0, rate_step=1.0, rate_max=1.0), Bounds()
    now = 100.0
    for i in range(20):
        now += 1.0
        wait, epoch = admit(state, bounds, now, f"t{i}")
        assert wait == 0.0
        settle(state, bounds, now, f"t{i}", epoch, "ok", None)
        if state.rate is None:
            break

    assert state.rate is None
    assert admit(state, bounds, now, "free")[0] == 0.0
    assert admit(state, bounds, now, "free too")[0] == 0.0, "no spacing any more"


async def test_given_many_tasks_when_sent_through_slots_then_in_flight_never_exceeds_the_limit() -> None:
    limiter = AIMDLimiter("x", ceiling=3)
    running, most = 0, 0

    async def one() -> None:
        nonlocal running, most
        async with limiter.slot() as permit:
            running += 1
            most = max(most, running)
            await asyncio.sleep(0.001)
            running -= 1
            permit.observe(200, {})

    await asyncio.gather(*(one() for _ in range(40)))

    assert most == 3
    assert (await limiter.state()).limit == 3
    assert limiter.in_flight == 0


async def test_given_a_request_that_raised_when_its_slot_is_left_then_released_and_nothing_learnt() -> None:
    store = InProcessState()
    limiter = AIMDLimiter("x", store=store)
    with pytest.raises(httpx.ReadError):
        async with limiter.slot():
            raise httpx.ReadError("dropped")

    state = await limiter.state()
    assert state.leases == {}
    assert state.limit == 1
    assert state.ok_since_cut == 0


async def test_given_requests_cancelled_in_their_slots_when_left_then_every_slot_is_free_again() -> None:
    """A cancel (a run stopping, a deadline) inside a slot, or waiting for one, still gives it back, at once."""
    limiter = AIMDLimiter("x", ceiling=2)  # a fresh limit is 1: one task in its slot, one waiting for it
    entered = asyncio.Event()

    async def stuck() -> None:
        async with limiter.slot():
            entered.set()
            await asyncio.sleep(60)

    tasks = [asyncio.create_task(stuck()) for _ in range(2)]
    await asyncio.wait_for(entered.wait(), 5)
    await asyncio.sleep(0)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)

    assert limiter.in_flight == 0
    assert (await limiter.state()).leases == {}
    async with asyncio.timeout(2), limiter.slot():  # free: taken again without waiting for a lease to expire
        assert limiter.in_flight == 1


# -- shared through Redis -------------------------------------------------------------


@pytest.fixture
async def redis_client() -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(REDIS_URL, socket_timeout=10)
    yield client
    await client.aclose()


@pytest.fixture
def prefix() -> str:
    return f"custsync:test:aimd:{uuid.uuid4().hex}:"


@pytest.mark.redis
async def test_given_two_workers_when_one_is_refused_then_the_other_sees_the_halved_limit(
    redis_client: aioredis.Redis, prefix: str
) -> None:
    other = aioredis.Redis.from_url(REDIS_URL, socket_timeout=10)
    try:
        one = AIMDLimiter("thredfi", ceiling=16, store=RedisState(redis_client, prefix=prefix))
        two = AIMDLimiter("thredfi", ceiling=16, store=RedisState(other, prefix=prefix))
        for _ in range(sum(range(1, 16))):  # grown to 16, through worker one
            async with one.slot() as permit:
                permit.observe(200, {})
        assert (await two.state()).limit == 16

        async with two.slot() as permit:
            permit.observe(429, {})

        assert (await one.state()).limit == 8
        assert await redis_client.ttl(f"{prefix}thredfi") > 0, "the key expires once idle"
    finally:
        await other.aclose()


@pytest.mark.redis
async def test_given_slots_held_by_one_worker_when_another_acquires_then_it_waits_for_a_release(
    redis_client: aioredis.Redis, prefix: str
) -> None:
    store = RedisState(redis_client, prefix=prefix)
    await store.apply("piriod", lambda s, now: setattr(s, "limit", 2.0))
    one = AIMDLimiter("piriod", ceiling=2, store=store)
    two = AIMDLimiter("piriod", ceiling=2, store=RedisState(redis_client, prefix=prefix), poll_s=0.01)
    held = [await one.acquire(), await one.acquire()]

    waiting = asyncio.create_task(two.acquire())
    await asyncio.sleep(0.3)
    assert not waiting.done(), f"two slots held at a limit of two: {await two.state()}"
    held[0].observe(200, {})
    await one.release(held[0])
    permit = await asyncio.wait_for(waiting, 5)

    assert len((await two.state()).leases) == 2
    await two.release(permit)
    await one.release(held[1])
    assert (await one.state()).leases == {}


@pytest.mark.redis
async def test_given_a_process_killed_holding_every_slot_when_another_acquires_then_its_leases_are_gone(
    redis_client: aioredis.Redis, prefix: str
) -> None:
    # A killed prefork child or CLI run held the whole window: its leases must not block the
    # redelivered run until they expire (LEASE_S), only until the next change sees it dead.
    holder = (
        "import asyncio, os, sys, redis.asyncio as r\n"
        "from connectors.concurrency import AIMDLimiter\n"
        "from worker.concurrency import RedisState\n"
        "async def main():\n"
        f"    store = RedisState(r.Redis.from_url({REDIS_URL!r}), prefix={prefix!r})\n"
        "    limiter = AIMDLimiter('thredfi', ceiling=1, store=store)\n"
        "    await limiter.acquire()\n"
        "    print('held', flush=True)\n"
        "    os.kill(os.getpid(), 9)\n"
        "asyncio.run(main())\n"
    )
    child = await asyncio.create_subprocess_exec(sys.executable, "-c", holder, stdout=asyncio.subprocess.PIPE)
    out, _ = await asyncio.wait_for(child.communicate(), 30)
    assert out.strip() == b"held"
    assert child.returncode == -9
    store = RedisState(redis_client, prefix=prefix)
    assert len((await AIMDLimiter("thredfi", ceiling=1, store=store).state()).leases) == 0, "dropped on read"
    limiter = AIMDLimiter("thredfi", ceiling=1, store=store)

    permit = await asyncio.wait_for(limiter.acquire(), 2)

    await limiter.release(permit)


@pytest.mark.redis
async def test_given_many_concurrent_changes_from_two_workers_when_applied_then_none_is_lost(
    redis_client: aioredis.Redis, prefix: str
) -> None:
    other = aioredis.Redis.from_url(REDIS_URL, socket_timeout=10)
    try:
        stores = [RedisState(redis_client, prefix=prefix), RedisState(other, prefix=prefix)]
        limiters = [AIMDLimiter("bc", ceiling=16, store=s) for s in stores]

        async def one(i: int) -> None:
            async with limiters[i % 2].slot() as permit:
                await asyncio.sleep(0)
                permit.observe(200, {})

        await asyncio.gather(*(one(i) for i in range(60)))

        state = await limiters[0].state()
        assert state.ok_since_cut == 60, "every success counted: no change overwrote another"
        assert state.leases == {}
        assert state.limit == 11, "1 + 2 + ... + 10 = 55 successes make ten windows, five more are in the next"
    finally:
        await other.aclose()


# -- end to end: an API refusing over 5 requests per second ------------------------------


async def test_given_api_limited_to_5_per_second_when_driven_through_the_limiter_then_under_5_percent_refused() -> None:
    emulator = ThredfiEmulator()
    emulator.limit_rate(5)
    limiter = AIMDLimiter("thredfi", ceiling=16)
    with BackgroundServer(emulator.app) as server:
        async with httpx.AsyncClient(base_url=server.url, transport=default_transport(), timeout=30) as http:
            grant = {"grant_type": "client_credentials"}
            partner = await http.post(
                "/v1/platform/oauth2/token/", auth=(SANDBOX_PARTNER_UUID, SANDBOX_API_KEY), data=grant
            )
            await asyncio.sleep(1)  # a fresh window for the customers
            business = await http.post(
                f"/v1/platform/{SANDBOX_BUSINESS_ID}/oauth2/token/",
                headers={"Authorization": f"Bearer {partner.json()['access_token']}"},
            )
            http.headers["Authorization"] = f"Bearer {business.json()['access_token']}"
            names = [f"Customer {i}" for i in range(60)]

            async def worker() -> None:
                while names:
                    name = names.pop()
                    while True:
                        async with limiter.slot() as permit:
                            answer = await http.post(CUSTOMERS, json={"company_name": name})
                            permit.observe(answer.status_code, answer.headers)
                        if answer.status_code != 429:
                            assert answer.status_code == 201
                            break
                        await asyncio.sleep(float(answer.headers["Retry-After"]))

            await asyncio.gather(*(worker() for _ in range(16)))
            await asyncio.sleep(0.2)  # the server logs a request after it answered it

    statuses = [r.status for r in emulator.requests if r.path.endswith(CUSTOMERS)]
    assert len(emulator.records) == 60
    refused = statuses.count(429)
    assert refused / len(statuses) < 0.05, f"{refused} of {len(statuses)} refused: {statuses}"
