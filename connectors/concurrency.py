"""Adaptive concurrency (AIMD): polite to an API without being told its limit.

Per connection, a limit on requests in flight that follows the API's answers:

- it **halves** on a 429, or when the rate-limit headers
  (``X-RateLimit-Remaining`` / ``RateLimit-Remaining``) show the budget nearly
  spent, once per round: answers to requests sent before the last cut do not
  cut again;
- it **grows additively**, by one per window of as many successes as the
  limit, from 1 at the start (16 in flight after 15 round trips: no
  burst of 16 meets a small quota before the first answer tells of it);
- it stays between ``floor`` (1) and ``ceiling`` (the connection's
  ``max_concurrency``, 16 by default).

What holds or paces the **whole connection** is kept for what proves a quota,
so that an API refusing at random (a 429 now and then, whatever the pace) is
not answered by a crawl:

- only headers that show the budget **spent** (``Remaining: 0``, on a 2xx or
  a 429) hold every request of the connection until their reset;
- a lone 429 with ``Retry-After`` delays only its own request (the caller's
  retry loop waits it out) and halves the limit;
- a **pace** is learnt only from refusals that **repeat**: ``repeat`` (3) 429s
  in a row, no success between them, within ``repeat_s`` (2 s). A success
  sent before the refusal that cut (an older epoch) does not break the run:
  a 429 is answered faster than a create, so the answer of a create the API
  took before refusing often comes after the refusal's; it counts among the
  successes before the run. It is 0.7 of
  the rate of successes before the first of them, over that time and the wait
  it asked for; it grows by 4 % of itself per window of successes (an eighth
  of that past 0.9 of the rate last allowed, so that it probes the limit
  slowly) and is dropped once twice that rate goes unrefused. A lone 429
  while paced stops the fast growth, never cuts the pace. With fewer than
  ``min_learn`` (3) successes to measure, nothing is learnt. A pace is judged
  on every ``probe`` (10) answers: when a fifth or more were still refused,
  pacing did not stop the refusals, so they are not a quota: the pace is
  dropped and none is learnt for ``random_s`` (60 s).

Against an API refusing over 5 requests per second this ends a run of
sixty creates with under 5 % refused (``tests/perf/test_concurrency.py``);
against one refusing 5 % of requests at random it keeps its pace
(``tests/perf/test_concurrency_random.py``).

The arithmetic is pure (:func:`admit`, :func:`settle` on an :class:`AIMDState`);
where the state lives is a :class:`StateStore`: :class:`InProcessState` for
one process (every task of a run shares it), or
``worker.concurrency.RedisState`` for every worker of a service.

Use::

    limiter = AIMDLimiter("thredfi", ceiling=16)
    async with limiter.slot() as permit:
        response = await client.send(request)
        permit.observe(response.status_code, response.headers)
"""

from __future__ import annotations

import asyncio
import math
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import asdict, dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, Literal, Protocol, TypeVar

T = TypeVar("T")
Signal = Literal["ok", "refused", "low", "spent", "neutral"]

#: a lease not released within this many seconds (a crashed worker's) stops counting as in flight.
LEASE_S = 120.0
#: this host, the start of each lease token (``HOST:PID:UUID``): a shared store can tell a dead process's leases.
_HOST = socket.gethostname()
#: remaining-budget and reset headers, in the order they are looked for.
_REMAINING = ("x-ratelimit-remaining", "ratelimit-remaining", "x-rate-limit-remaining")
_RESET = ("x-ratelimit-reset", "ratelimit-reset", "x-rate-limit-reset")
#: a reset this large is a Unix time, not seconds from now.
_EPOCH_FROM = 1_000_000_000


@dataclass
class AIMDState:
    """What one connection's limiter knows; plain numbers, so that it can live in Redis as JSON.

    Times are Unix seconds (``time.time()``), comparable across processes.
    """

    limit: float = 1.0
    #: bumped on every cut; a permit remembers the epoch it was admitted in.
    epoch: int = 0
    #: successes in the current growth window (of the limit and of the pace).
    window: int = 0
    pace_window: int = 0
    #: requests per second, once a 429 taught one; ``None``: unpaced.
    rate: float | None = None
    rate_step: float = 0.0
    #: the rate the API allowed at the last refusal: the pace creeps, not strides, near it.
    rate_max: float = 0.0
    next_at: float = 0.0
    #: nothing is admitted before this time (Retry-After, a spent budget's reset).
    hold_until: float = 0.0
    #: successes since the measure began (the start, or the first refusal of the last run of them),
    #: and when the first of them came (what the API allowed is measured from there, not from idle time).
    ok_since_cut: int = 0
    cut_at: float = 0.0
    #: the current run of 429s with no success between: how many, since when, and what came before it.
    streak: int = 0
    streak_at: float = 0.0
    streak_ok: int = 0
    streak_span: float = 0.0
    streak_pause: float = 0.0
    #: a pace is judged from ``probe_from`` on, every ``Bounds.probe`` answers, while it lasts.
    probe_from: float | None = None
    probe_ok: int = 0
    probe_refused: int = 0
    #: refusals here proved random (a pace did not stop them): none is learnt before this time.
    random_until: float = 0.0
    #: token → lease expiry: the requests in flight.
    leases: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> AIMDState:
        known = {k: raw[k] for k in cls.__dataclass_fields__ if k in raw}
        return cls(**known)


@dataclass(frozen=True)
class Bounds:
    """The limits of the adaptation."""

    ceiling: int = 16
    floor: int = 1
    #: the multiplicative cut of the limit, and of the pace.
    cut: float = 0.5
    pace_cut: float = 0.7
    #: the pace grows by this share of what it was cut to, per window of successes.
    pace_growth: float = 0.04
    #: past this share of the rate last allowed, the pace grows eight times slower.
    near: float = 0.9
    #: paces below this are not taken (a request every 10 s).
    min_rate: float = 0.1
    #: a pace is learnt from this many 429s in a row, no success between, within ``repeat_s``.
    repeat: int = 3
    repeat_s: float = 2.0
    #: and only with at least this many successes before them to measure a rate from.
    min_learn: int = 3
    #: a pace is judged on every this many answers: this share refused or more, and it is dropped
    #: (refusals a pace does not stop are not a quota) and none is learnt for ``random_s``.
    probe: int = 10
    probe_share: float = 0.2
    random_s: float = 60.0

    def __post_init__(self) -> None:
        if not 1 <= self.floor <= self.ceiling:
            raise ValueError(f"concurrency bounds need 1 <= floor <= ceiling (got {self.floor}, {self.ceiling})")


def lease_process(token: str) -> tuple[str, int] | None:
    """The ``(host, pid)`` that took a lease, from its token; ``None`` for a token of another shape."""
    parts = token.split(":")
    if len(parts) < 3 or not parts[-2].isdigit():
        return None
    return ":".join(parts[:-2]), int(parts[-2])


def admit(state: AIMDState, bounds: Bounds, now: float, token: str) -> tuple[float, int]:
    """Admit one request if the state allows it now.

    Returns:
        ``(0, epoch)`` when admitted (a lease for ``token`` is taken), else
        ``(seconds to wait at least, epoch)``; 0 seconds is never returned
        for a refusal: a full window waits for a release (a small poll).
    """
    if state.cut_at == 0.0:
        state.cut_at = now
    state.leases = {t: until for t, until in state.leases.items() if until > now}
    if now < state.hold_until:
        return state.hold_until - now, state.epoch
    if len(state.leases) >= max(bounds.floor, math.floor(state.limit)):
        return 0.01, state.epoch
    if state.rate is not None:
        if now < state.next_at:
            return state.next_at - now, state.epoch
        state.next_at = max(state.next_at, now) + 1 / state.rate
    state.leases[token] = now + LEASE_S
    return 0.0, state.epoch


def settle(
    state: AIMDState, bounds: Bounds, now: float, token: str, epoch: int, signal: Signal, pause: float | None
) -> None:
    """Release a lease and learn from the answer.

    Args:
        signal: ``ok`` (an answer that is not a refusal), ``refused`` (429),
            ``low`` (answered, the headers say the budget is nearly gone),
            ``spent`` (the headers say it is gone: ``Remaining: 0``),
            ``neutral`` (no answer, or a server error: nothing learnt).
        pause: seconds the server asked to wait (``Retry-After``, a reset).
    """
    state.leases.pop(token, None)
    if signal == "spent" and pause is not None and pause > 0:
        state.hold_until = max(state.hold_until, now + pause)  # the one connection-wide hold: a proven quota
    if signal in ("refused", "low", "spent"):
        if epoch == state.epoch:  # the first word of this round: later ones were sent before the cut
            _cut(state, bounds)
        if signal == "refused":
            _probe(state, bounds, now, refused=True)
            _refused(state, bounds, now, pause)
        return
    if signal != "ok":
        return
    _probe(state, bounds, now, refused=False)
    if state.streak and epoch != state.epoch:
        # Sent before the refusal that cut: its answer (a create is slower to answer than a 429)
        # comes after the refusal's but says nothing of after it. The run goes on; what the API
        # allowed before it counts one more success.
        state.streak_ok += 1
    else:
        state.streak = 0
        if state.ok_since_cut == 0:
            state.cut_at = now
        state.ok_since_cut += 1
    state.window += 1
    if state.window >= max(1, math.floor(state.limit)):
        state.window = 0
        state.limit = float(min(bounds.ceiling, state.limit + 1))
    if state.rate is not None:
        state.pace_window += 1
        if state.pace_window >= max(1, math.ceil(state.rate)):
            state.pace_window = 0
            near = state.rate >= bounds.near * state.rate_max
            state.rate += state.rate_step / 8 if near else state.rate_step
            if state.rate > 2 * state.rate_max:  # twice what was allowed, unrefused: the quota is gone
                state.rate = None


def _cut(state: AIMDState, bounds: Bounds) -> None:
    state.epoch += 1
    state.window = state.pace_window = 0
    state.limit = max(float(bounds.floor), state.limit * bounds.cut)


def _refused(state: AIMDState, bounds: Bounds, now: float, pause: float | None) -> None:
    """Count a 429 into the current run of them; the ``repeat``-th of a run teaches a pace."""
    if state.streak == 0 or now - state.streak_at > bounds.repeat_s:
        # The first of a run: what came before it is the measure, should the run repeat.
        state.streak, state.streak_at = 0, now
        state.streak_ok, state.streak_span = state.ok_since_cut, max(now - state.cut_at, 1e-3)
        state.streak_pause = pause or 0.0
        state.ok_since_cut, state.cut_at = 0, now
        if state.rate is not None:
            state.rate_max = min(state.rate_max, state.rate)  # a lone 429 while paced: probe slowly from here
    state.streak += 1
    if state.streak != bounds.repeat or state.streak_ok < bounds.min_learn:
        return
    if now < state.random_until:
        return  # refusals here proved random: nothing to learn from them
    # The successes before the run, over that time and the wait asked: the rate the API allowed.
    allowed = state.streak_ok / (state.streak_span + state.streak_pause)
    current = min(state.rate, allowed) if state.rate is not None else allowed
    state.rate_max = current
    state.rate = max(bounds.min_rate, current * bounds.pace_cut)
    state.rate_step = state.rate * bounds.pace_growth
    state.pace_window = 0
    state.next_at = max(state.next_at, state.streak_at + state.streak_pause)
    state.probe_from, state.probe_ok, state.probe_refused = state.next_at, 0, 0


def _probe(state: AIMDState, bounds: Bounds, now: float, *, refused: bool) -> None:
    """Judge a new pace on its first answers: one that does not stop the refusals is dropped."""
    if state.probe_from is None or now < state.probe_from:
        return
    if state.rate is None:
        state.probe_from = None
        return
    state.probe_refused += refused
    state.probe_ok += not refused
    answers = state.probe_ok + state.probe_refused
    if answers < bounds.probe:
        return
    if state.probe_refused / answers >= bounds.probe_share:
        state.rate, state.probe_from = None, None
        state.random_until = now + bounds.random_s
    state.probe_ok = state.probe_refused = 0  # and judged again on the next answers, while it lasts


class StateStore(Protocol):
    """Where the limiters keep their :class:`AIMDState`, one per key (a connection)."""

    async def apply(self, key: str, change: Callable[[AIMDState, float], T]) -> T:
        """Run ``change(state, now)`` on the key's state atomically, keep what it did, return its result.

        ``now`` is the store's clock in Unix seconds (Redis's own for a shared
        state, so that workers whose clocks disagree share one schedule).
        """
        ...


class InProcessState:
    """The states in this process's memory: shared by every task of a run.

    Args:
        clock: Unix seconds (a seam for tests).
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.states: dict[str, AIMDState] = {}
        self._clock = clock

    async def apply(self, key: str, change: Callable[[AIMDState, float], T]) -> T:
        return self.apply_now(key, change)

    def apply_now(self, key: str, change: Callable[[AIMDState, float], T]) -> T:
        """:meth:`apply` without awaiting: one event loop, no await inside ``change``: atomic."""
        state = self.states.get(key)
        if state is None:
            state = self.states[key] = AIMDState()
        return change(state, self._clock())


def read_signal(status: int, headers: Mapping[str, str], in_flight: int) -> tuple[Signal, float | None]:
    """What an answer says: refused / spent / low / ok / neutral, and the pause it asks for (seconds).

    ``spent`` is a budget the headers show gone (``Remaining`` 0, on a 2xx or a
    429): its pause holds the whole connection. A 429 without them is
    ``refused``: its ``Retry-After`` is for that request only.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    reset = _first_number(lowered, _RESET)
    if reset is not None and reset >= _EPOCH_FROM:
        reset -= time.time()
    until_reset = reset if reset is not None and reset > 0 else None
    remaining = _first_number(lowered, _REMAINING)
    if status == 429:
        retry_after = _retry_after(lowered.get("retry-after"))
        if remaining is not None and remaining <= 0:
            return "spent", retry_after or until_reset
        return "refused", retry_after or until_reset
    if status >= 500:
        return "neutral", None
    if remaining is not None and remaining <= 0:
        return "spent", until_reset
    if remaining is not None and remaining <= max(1, in_flight):
        return "low", None
    return "ok", None


def _first_number(headers: Mapping[str, str], names: tuple[str, ...]) -> float | None:
    for name in names:
        raw = headers.get(name)
        if raw is None:
            continue
        try:
            value = float(raw.split(",")[0].strip())
        except ValueError:
            continue
        if math.isfinite(value) and value >= 0:
            return value
    return None


def _retry_after(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(raw).timestamp() - time.time()
        except (TypeError, ValueError, IndexError):
            return None
    return seconds if math.isfinite(seconds) and seconds > 0 else None


class Permit:
    """One admitted request; :meth:`observe` its answer before the slot is left."""

    def __init__(self, token: str, epoch: int) -> None:
        self.token = token
        self.epoch = epoch
        self.status: int | None = None
        self.headers: Mapping[str, str] = {}

    def observe(self, status: int, headers: Mapping[str, str]) -> None:
        """Record the answer (its status and headers); the limiter learns from it on release."""
        self.status, self.headers = status, headers


class AIMDLimiter:
    """The in-flight limit of one connection (see the module docstring).

    Args:
        key: the connection's name (one state per key in the store).
        ceiling: the most requests in flight (the connection's ``max_concurrency``).
        floor: the fewest (1).
        store: where the state lives; a new :class:`InProcessState` by default.
        poll_s: how often a full window looks again when the state is shared
            (releases in other processes wake nobody here).
    """

    def __init__(
        self,
        key: str = "default",
        *,
        ceiling: int = 16,
        floor: int = 1,
        store: StateStore | None = None,
        poll_s: float = 0.02,
    ) -> None:
        self.key = key
        self.bounds = Bounds(ceiling=ceiling, floor=floor)
        self.store: StateStore = store if store is not None else InProcessState()
        self._poll_s = poll_s
        self._local = isinstance(self.store, InProcessState)
        self._released = asyncio.Event()
        self._turn = asyncio.Lock()
        self.in_flight = 0

    async def acquire(self) -> Permit:
        """Wait until a request may go; the permit to release with :meth:`release`."""
        token = f"{_HOST}:{os.getpid()}:{uuid.uuid4().hex}"  # the pid now: a forked worker child has its own
        # One contender at a time (a fair lock): a release wakes the one at the front, not every
        # waiting task of a page (which made each release cost as many admissions as there were waiters).
        async with self._turn:
            while True:
                self._released.clear()  # before looking: a release while we look is never missed
                wait, epoch = await self.store.apply(self.key, lambda s, now: admit(s, self.bounds, now, token))
                if wait == 0.0:
                    self.in_flight += 1
                    return Permit(token, epoch)
                # Full: a release here wakes us, others' are polled for. Held or paced: look again then.
                full = 1.0 if self._local else self._poll_s
                timeout = full if wait <= 0.01 else min(wait, 1.0)
                with suppress(TimeoutError):  # asyncio.timeout, not wait_for: a cancel from outside is never lost
                    async with asyncio.timeout(timeout):
                        await self._released.wait()

    async def release(self, permit: Permit) -> None:
        """Give the slot back and learn from what :meth:`Permit.observe` recorded."""
        if isinstance(self.store, InProcessState):
            self._release_now(self.store, permit)
            return
        await self.store.apply(self.key, self._settling(permit))
        self._released.set()

    def _release_now(self, store: InProcessState, permit: Permit) -> None:
        """:meth:`release` in this process's state: it never awaits, so no cancel can cut it short."""
        store.apply_now(self.key, self._settling(permit))
        self._released.set()

    def _settling(self, permit: Permit) -> Callable[[AIMDState, float], None]:
        """Count the slot as left; the change to the state that its answer makes."""
        self.in_flight -= 1
        if permit.status is None:
            signal: Signal = "neutral"
            pause: float | None = None
        else:
            signal, pause = read_signal(permit.status, permit.headers, self.in_flight)
        return lambda s, now: settle(s, self.bounds, now, permit.token, permit.epoch, signal, pause)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[Permit]:
        """``async with limiter.slot() as permit:`` send, then ``permit.observe(status, headers)``."""
        permit = await self.acquire()
        try:
            yield permit
        finally:
            if isinstance(self.store, InProcessState):
                self._release_now(self.store, permit)  # never awaits: no task needed to shield it
            else:
                await asyncio.shield(self.release(permit))

    async def observe(self, status: int, headers: Mapping[str, str]) -> None:
        """Learn from an answer to a request not sent through a slot (an auth flow's token request)."""
        signal, pause = read_signal(status, headers, self.in_flight)
        await self.store.apply(self.key, lambda s, now: settle(s, self.bounds, now, "", s.epoch, signal, pause))

    async def state(self) -> AIMDState:
        """A copy of the current state (for reports and tests)."""
        return await self.store.apply(self.key, lambda s, now: AIMDState.from_json(s.to_json()))


__all__ = [
    "LEASE_S",
    "AIMDLimiter",
    "AIMDState",
    "Bounds",
    "InProcessState",
    "Permit",
    "StateStore",
    "admit",
    "lease_process",
    "read_signal",
    "settle",
]
