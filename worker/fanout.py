"""A backfill fanned out by page over the Celery workers: one run, one lock, one task per page.

``custsync.backfill`` (``custsync backfill --enqueue``) is the run's
*coordinator*. Under the pipeline's locks, which it holds and renews for
the whole run (:func:`worker.runner.run_exclusive`), it:

1. walks the source's listing once (so the proof that a listing is complete,
   which deletes need, stays in one process), drops repeats, and cuts what
   it reads into pages of :data:`PAGE_SIZE` records;
2. sends each page, its records in the message, as a ``custsync.backfill_page``
   task (:func:`run_page`), with the run id and the lock's value;
3. collects the pages' reports, and runs itself, two at a time, every page
   no live task has claimed (the last ones first, as the workers take the
   first ones), so one worker of concurrency one never waits on itself, and
   a page whose task died is run again here rather than waited for;
4. when every page is in, pushes the creates the pages left waiting on a
   natural-key match, then the end of the run (:meth:`Engine.finish`:
   unanswered creates, vanished records, the write-check report); the run
   is recorded once, with the pages' counts summed.

A page is claimed in Redis (``custsync:fanout:RUN:page:N``): by a task, with
an expiry it renews; by the coordinator; or done, holding the page's report.
A page task runs only while the run's lock holds the value it was sent with
(and is renewed: a lock about to expire counts as lost) and its own claim is
its own; otherwise it stops, cancelled like a run that lost its lock. A page
cut off anywhere leaves at worst pending links, which the page run again (or
the next run) recovers: the engine's writes are the same as in one process
(:meth:`Engine.shared_page` is :meth:`Engine.page`).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import redis
import redis.asyncio as aioredis
import structlog

from connectors.errors import ConnectorError, FatalError, RetriableError
from connectors.model import Customer, FieldProblem, RemoteCustomer
from state.store import Store
from worker.config import AppConfig
from worker.engine import Counts, Engine, EngineOptions
from worker.engine.results import PageShare
from worker.lock import KEY_PREFIX
from worker.ratelimit import RedisRateLimiter
from worker.runner import build_connector

log = structlog.get_logger("custsync.fanout")

#: records per page task: a listing page (Bigcapital serves 1,000) is cut to this size.
PAGE_SIZE = 100
#: how long a done page's report, and the coordinator's claims, stay in Redis.
KEEP_S = 24 * 3600
POLL_S = 0.1
#: pages the coordinator runs at once, over its connections (their ``max_concurrency`` holds for both):
#: a page's writes drain at its end, the other page's keep the connection busy meanwhile.
HERE = 2

# Renew a claim only while it is ours; answer its remaining time before the renewal (-3: not ours).
_RENEW_IF_OURS = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then local t = redis.call('pttl', KEYS[1]); "
    "redis.call('pexpire', KEYS[1], ARGV[2]); return t else return -3 end"
)
# Replace a claim only while it is ours.
_SET_IF_OURS = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then redis.call('set', KEYS[1], ARGV[2], 'EX', ARGV[3]); "
    "return 1 else return 0 end"
)
_DELETE_IF_OURS = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"
_DONE = "done:"
COORDINATOR = "coordinator"


def page_key(run_id: str, page: int) -> str:
    """The Redis key of one page's claim, then its report."""
    return f"custsync:fanout:{run_id}:page:{page}"


def over_key(run_id: str) -> str:
    """Set when the coordinator stopped (done, failed or cancelled): page tasks still queued do nothing."""
    return f"custsync:fanout:{run_id}:over"


# -- what travels ----------------------------------------------------------------


def encode_record(record: RemoteCustomer) -> dict[str, Any]:
    """A listed record as JSON for a task message."""
    return {
        "id": record.id,
        "customer": record.customer.model_dump() if record.customer is not None else None,
        "problem": [record.problem.field, record.problem.reason] if record.problem is not None else None,
        "external_id": record.external_id,
        "updated_at": record.updated_at.isoformat() if record.updated_at is not None else None,
        "created_at": record.created_at.isoformat() if record.created_at is not None else None,
    }


def decode_record(data: dict[str, Any]) -> RemoteCustomer:
    """The record :func:`encode_record` wrote."""
    problem = data.get("problem")
    return RemoteCustomer(
        id=data["id"],
        customer=Customer.model_validate(data["customer"]) if data.get("customer") is not None else None,
        problem=FieldProblem(problem[0], problem[1]) if problem else None,
        external_id=data.get("external_id"),
        updated_at=_time(data.get("updated_at")),
        created_at=_time(data.get("created_at")),
    )


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


@dataclass
class PageReport:
    """What became of one page: the page task's result, and the done claim's value.

    Attributes:
        page: its number in the run (1, 2, ...).
        status: ``synced``, ``failed``, ``taken`` (another claimed it) or ``run_gone``
            (the run's lock no longer holds the value the page was sent with, or the run is over).
        by: who ran it (``task:ID`` or ``coordinator``), or who held it.
        counts: the page's counts (:class:`~worker.engine.Counts` as a dict).
        waiting: source ids of creates left for the coordinator (natural-key matches).
        not_stored: field → records whose value the target did not keep.
        error: why it failed (one line).
        retriable: it failed on an API still failing after its retries.
    """

    page: int
    status: str
    by: str
    counts: dict[str, int] = field(default_factory=dict)
    waiting: list[str] = field(default_factory=list)
    not_stored: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    retriable: bool = False

    @classmethod
    def of(cls, page: int, by: str, share: PageShare) -> PageReport:
        """A synced page's report."""
        return cls(page, "synced", by, asdict(share.counts), list(share.waiting), dict(share.not_stored))

    def share(self) -> PageShare:
        """The page's share of the run, for :meth:`Engine.absorb`."""
        return PageShare(Counts(**self.counts), tuple(self.waiting), dict(self.not_stored))

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> PageReport:
        return cls(**json.loads(text))


def failed_report(page: int, by: str, exc: BaseException) -> PageReport:
    """The report of a page that raised: its message when a connector said why, else the error's type."""
    if isinstance(exc, ConnectorError):
        return PageReport(page, "failed", by, error=str(exc), retriable=isinstance(exc, RetriableError))
    return PageReport(page, "failed", by, error=f"internal error ({type(exc).__name__})")


def chunks(records: Sequence[RemoteCustomer], size: int) -> Iterator[list[RemoteCustomer]]:
    """``records`` cut into pages of at most ``size``."""
    for start in range(0, len(records), size):
        yield list(records[start : start + size])


# -- the coordinator ----------------------------------------------------------------


class PageFailedError(FatalError):
    """A page of the run failed for good; the run fails with its reason (one line, as the page said it)."""


@dataclass
class _Page:
    number: int
    offset: int
    records: list[RemoteCustomer]
    #: when the listing page the records came from was asked for
    listed_at: datetime | None = None
    task_id: str | None = None


Send = Callable[[dict[str, Any]], str]


class Coordinator:
    """Walks the source, sends the pages, runs those nobody took, and ends the run (a :data:`~worker.runner.Drive`).

    Args:
        client: Redis (the broker's), for the claims and the lock's value.
        send: sends one page message as a ``custsync.backfill_page`` task; returns its id.
        ttl_s: the run lock's TTL (a page task's claim lives as long, renewed).
        page_size: records per page task.
    """

    def __init__(self, client: redis.Redis, send: Send, *, ttl_s: float, page_size: int = PAGE_SIZE) -> None:
        self.client, self.send, self.ttl_s, self.page_size = client, send, ttl_s, page_size
        self.pages: dict[int, _Page] = {}
        self.reports: dict[int, PageReport] = {}
        self._waiting: list[RemoteCustomer] = []
        self._absorbed = 0

    async def __call__(self, engine: Engine) -> None:
        """Run the whole run's pages through the workers (and here), then end the run."""
        raw = self.client.get(KEY_PREFIX + engine.name)
        if raw is None:
            raise FatalError(f"{engine.name}: the run lock is not held; the backfill cannot fan out")
        token = raw.decode() if isinstance(raw, bytes) else str(raw)
        started = time.monotonic()
        try:
            async for listed in engine.source.listed():
                offset = engine.pulled
                for chunk in chunks(engine.fresh(listed.read(engine.source)), self.page_size):
                    self._dispatch(engine, token, chunk, offset, listed.listed_at)
                    offset += len(chunk)
                await self._collect(engine, help_out=False)
            log.info("fanout_listed", pages=len(self.pages), records=engine.pulled)
            while len(self.reports) < len(self.pages):
                if not await self._collect(engine, help_out=True):
                    await asyncio.sleep(POLL_S)
        except BaseException:
            self._stop(engine.run_id)
            self._drain(engine.run_id)
            raise
        self._stop(engine.run_id)
        by_task = sum(1 for r in self.reports.values() if r.by != COORDINATOR)
        log.info(
            "fanout_pages_done",
            pages=len(self.pages),
            by_tasks=by_task,
            by_coordinator=len(self.pages) - by_task,
            waiting=len(self._waiting),
            duration_s=round(time.monotonic() - started, 3),
        )
        await engine.again(self._waiting)
        await engine.finish()

    def _dispatch(
        self, engine: Engine, token: str, records: list[RemoteCustomer], offset: int, listed_at: datetime | None
    ) -> None:
        number = len(self.pages) + 1
        page = _Page(number, offset, records, listed_at)
        self.pages[number] = page
        message = {
            "pipeline": engine.name,
            "run_id": engine.run_id,
            "lock": token,
            "ttl_s": self.ttl_s,
            "page": number,
            "offset": offset,
            "listed_at": listed_at.isoformat() if listed_at is not None else None,
            "records": [encode_record(r) for r in records],
        }
        page.task_id = self.send(message)
        log.info("page_sent", page=number, records=len(records), page_task_id=page.task_id)

    async def _collect(self, engine: Engine, *, help_out: bool) -> bool:
        """Take the reports that came in; with ``help_out``, run one unclaimed page here. True if any moved."""
        open_pages = [n for n in self.pages if n not in self.reports]
        if not open_pages:
            return False
        values = self.client.mget([page_key(engine.run_id, n) for n in open_pages])
        moved = False
        free: list[int] = []
        for number, raw in zip(open_pages, values, strict=True):
            text = raw.decode() if isinstance(raw, bytes) else raw
            if text is None:
                free.append(number)
            elif text.startswith(_DONE):
                self._take(engine, PageReport.from_json(text[len(_DONE) :]))
                moved = True
        if help_out and free:
            # The last free pages: the workers take the queue from its front.
            mine = [n for n in reversed(free[-HERE:]) if self._claim(engine.run_id, n)]
            if mine:
                try:
                    async with asyncio.TaskGroup() as group:  # one failing cancels the other
                        runs = [group.create_task(self._run_here(engine, self.pages[n])) for n in mine]
                except BaseExceptionGroup as failed:
                    raise failed.exceptions[0] from None  # as one page in one process would raise it
                for number, run in zip(mine, runs, strict=True):
                    report = run.result()
                    self.client.set(page_key(engine.run_id, number), _DONE + report.to_json(), ex=KEEP_S)
                    self._take(engine, report)
                moved = True
        return moved

    def _claim(self, run_id: str, number: int) -> bool:
        return bool(self.client.set(page_key(run_id, number), COORDINATOR, nx=True, ex=KEEP_S))

    async def _run_here(self, engine: Engine, page: _Page) -> PageReport:
        structlog.contextvars.bind_contextvars(page=page.number)
        try:
            here = Engine(
                name=engine.name,
                pipeline=engine.pipeline,
                source=engine.source,
                target=engine.target,
                store=engine.store,
                run_id=engine.run_id,
                options=EngineOptions(),
            )
            share = await here.shared_page(page.records, offset=page.offset, listed_at=page.listed_at)
        finally:
            structlog.contextvars.unbind_contextvars("page")
        log.info("page_synced_here", page=page.number, records=len(page.records))
        return PageReport.of(page.number, COORDINATOR, share)

    def _take(self, engine: Engine, report: PageReport) -> None:
        page = self.pages[report.page]
        if report.status != "synced":
            log.error("page_failed", page=report.page, by=report.by, status=report.status, error=report.error)
            why = f"page {report.page} of the run {report.status} ({report.by}): {report.error or report.status}"
            raise RetriableError(why) if report.retriable else PageFailedError(why)
        self.reports[report.page] = report
        engine.absorb(report.share())
        waiting = set(report.waiting)
        self._waiting.extend(r for r in page.records if r.id in waiting)
        page.records = []  # what is in the store now; the rest of the page is done with
        self._absorbed += report.counts.get("pulled", 0)
        if engine.options.progress is not None:
            engine.options.progress(self._absorbed)

    def _drain(self, run_id: str) -> None:
        """Wait (at most a TTL) for the page tasks still running to stop, so the lock outlives them."""
        deadline = time.monotonic() + self.ttl_s + 1.0
        open_pages = [n for n in self.pages if n not in self.reports]
        while open_pages and time.monotonic() < deadline:
            try:
                values = self.client.mget([page_key(run_id, n) for n in open_pages])
            except (redis.RedisError, OSError):
                return
            if not any((v.decode() if isinstance(v, bytes) else v or "").startswith("task:") for v in values):
                return
            time.sleep(POLL_S)

    def _stop(self, run_id: str) -> None:
        """No page task still queued may start (best effort: the lock's value stops them anyway)."""
        try:
            self.client.set(over_key(run_id), "1", ex=KEEP_S)
        except (redis.RedisError, OSError) as exc:
            log.warning("fanout_stop_failed", error=str(exc))


# -- a page task ----------------------------------------------------------------------


class Fence:
    """Keeps a page task inside its run: the run's lock still holds the value it was sent with, and
    the page's claim is this task's. Checked every eighth of the TTL; the claim is renewed each time.

    A lock or claim with less than a quarter of its TTL left counts as lost (its holder missed a
    renewal): the page is cancelled before another run or another page task could take over.
    """

    def __init__(
        self, client: redis.Redis, *, pipeline: str, run_id: str, token: str, key: str, owner: str, ttl_s: float
    ) -> None:
        self.client, self.lock_key, self.token, self.key, self.owner = client, KEY_PREFIX + pipeline, token, key, owner
        self.over = over_key(run_id)
        self.ttl_ms = int(ttl_s * 1000)
        self.lost: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def holds(self) -> bool:
        """Whether the page may run now (``lost`` says why not)."""
        raw = self.client.get(self.lock_key)
        held = raw.decode() if isinstance(raw, bytes) else raw
        if held != self.token:
            self.lost = "the run's lock is gone or taken"
        elif self.client.exists(self.over):
            self.lost = "the run is over"
        elif int(self.client.pttl(self.lock_key)) < self.ttl_ms // 4:
            self.lost = "the run's lock is about to expire (its holder stopped renewing)"
        else:
            left = int(self.client.eval(_RENEW_IF_OURS, 1, self.key, self.owner, self.ttl_ms))
            if left == -3:
                self.lost = "the page's claim was taken"
            elif 0 <= left < self.ttl_ms // 4:
                self.lost = "the page's claim was about to expire"
        return self.lost is None

    def start(self, on_lost: Callable[[], object]) -> None:
        """Check in a thread until :meth:`stop`; call ``on_lost`` once when the run or the claim is lost."""
        interval = self.ttl_ms / 8000

        def watch() -> None:
            while not self._stop.wait(interval):
                try:
                    ok = self.holds()
                except (redis.RedisError, OSError) as exc:
                    log.warning("page_fence_check_failed", error=str(exc))
                    continue
                if not ok:
                    log.error("page_fence_lost", reason=self.lost)
                    on_lost()
                    return

        self._thread = threading.Thread(target=watch, name="custsync-page-fence", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)


def run_page(config: AppConfig, message: dict[str, Any], *, store: Store, redis_url: str, owner: str) -> PageReport:
    """Run one page of a fanned-out backfill (the ``custsync.backfill_page`` task).

    Args:
        config: the loaded config.
        message: what the coordinator sent (:meth:`Coordinator._dispatch`).
        store: the state store.
        redis_url: the broker's Redis (claims, the run's lock, the rate limiter).
        owner: ``task:TASK_ID``.

    Returns:
        The page's report; also left in the page's claim for the coordinator.
    """
    pipeline, run_id, number = message["pipeline"], message["run_id"], int(message["page"])
    client = redis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5)
    key = page_key(run_id, number)
    ttl_ms = int(float(message["ttl_s"]) * 1000)
    try:
        if not client.set(key, owner, nx=True, px=ttl_ms):
            raw = client.get(key)
            held = (raw.decode() if isinstance(raw, bytes) else raw) or ""
            if held != owner:  # the same task delivered again (its worker died) goes on with its own claim
                by = PageReport.from_json(held[len(_DONE) :]).by if held.startswith(_DONE) else held
                log.info("page_taken", page=number, by=by)
                return PageReport(number, "taken", by)
        fence = Fence(
            client, pipeline=pipeline, run_id=run_id, token=message["lock"], key=key, owner=owner, ttl_s=ttl_ms / 1000
        )
        if not fence.holds():
            log.warning("page_run_gone", page=number, reason=fence.lost)
            client.eval(_DELETE_IF_OURS, 1, key, owner)
            return PageReport(number, "run_gone", owner, error=fence.lost)
        records = [decode_record(r) for r in message["records"]]
        report = asyncio.run(_page(config, message, records, store=store, redis_url=redis_url, fence=fence))
        report.by = owner
        if report.status == "run_gone":  # cancelled mid-page: the claim is freed, for the coordinator if it lives
            client.eval(_DELETE_IF_OURS, 1, key, owner)
            return report
        if not client.eval(_SET_IF_OURS, 1, key, owner, _DONE + report.to_json(), KEEP_S):
            log.warning("page_claim_lost", page=number)
            return PageReport(number, "taken", owner)
        return report
    finally:
        client.close()


async def _page(
    config: AppConfig,
    message: dict[str, Any],
    records: list[RemoteCustomer],
    *,
    store: Store,
    redis_url: str,
    fence: Fence,
) -> PageReport:
    number, pipeline_name = int(message["page"]), message["pipeline"]
    pipeline = config.pipeline(pipeline_name)
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    assert main is not None
    fence.start(on_lost=lambda: loop.call_soon_threadsafe(main.cancel))
    limiter_client = aioredis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5)

    def limiter(key: str, rate: float) -> RedisRateLimiter:
        return RedisRateLimiter(limiter_client, key, rate)

    structlog.contextvars.bind_contextvars(run_id=message["run_id"], pipeline=pipeline_name, page=number)
    started = time.monotonic()
    try:
        source = build_connector(config, pipeline.source, limiter_factory=limiter)
        target = build_connector(config, pipeline.target, limiter_factory=limiter)
        engine = Engine(
            name=pipeline_name,
            pipeline=pipeline,
            source=source,
            target=target,
            store=store,
            run_id=message["run_id"],
            options=EngineOptions(),
        )
        async with source, target:
            listed_at = _time(message.get("listed_at"))
            share = await engine.shared_page(records, offset=int(message["offset"]), listed_at=listed_at)
        log.info(
            "page_synced",
            page=number,
            records=len(records),
            duration_s=round(time.monotonic() - started, 3),
            **{k: v for k, v in asdict(share.counts).items() if k != "pulled"},
        )
        return PageReport.of(number, "", share)
    except asyncio.CancelledError:
        log.error("page_cancelled", page=number, reason=fence.lost)  # noqa: TRY400 - no traceback to show
        return PageReport(number, "run_gone", "", error=fence.lost)
    except Exception as exc:
        if isinstance(exc, ConnectorError):
            log.error("page_failed", page=number, error=str(exc))  # noqa: TRY400 - the message says why
        else:
            log.exception("page_crashed", page=number)
        return failed_report(number, "", exc)
    finally:
        fence.stop()
        await limiter_client.aclose()
        structlog.contextvars.unbind_contextvars("run_id", "pipeline", "page")


__all__ = [
    "COORDINATOR",
    "PAGE_SIZE",
    "Coordinator",
    "Fence",
    "PageFailedError",
    "PageReport",
    "chunks",
    "decode_record",
    "encode_record",
    "over_key",
    "page_key",
    "run_page",
]
