"""One run of a pipeline at a time, on one worker or many: a Redis lock, and the state store's.

The lock is the key ``custsync:lock:PIPELINE``, set with ``NX`` and an
expiry (redis-py's :class:`redis.lock.Lock`). Its value names the holder,
``OWNER@HOST:PID#NONCE``, so a refused run can say who holds it. While the
run is alive a thread renews the expiry every third of the TTL; a holder
that dies (SIGKILL, OOM, a lost host) stops renewing, and its lock frees
itself within one TTL. If renewal finds the lock gone or taken (the process
stalled longer than the TTL, Redis lost the key), the run is cancelled
rather than left to overlap another one.

A run that finds the lock held ends at once, recorded as ``skipped``, with
two exceptions where waiting for the expiry is the right thing:

- the holder is an earlier delivery of the *same* Celery task (its worker
  died and the broker delivered the message again): :func:`same_owner`;
- the holder is a process of this host that no longer exists (an inline
  backfill killed with SIGKILL and started again): :func:`dead_local_process`.

Either way the wait is bounded by the holder's remaining TTL: a holder that
is in fact alive keeps renewing, and the waiter gives up and is skipped.

Every run also takes the state store's own lock (:mod:`state.lock`: an
advisory lock on PostgreSQL, a lease row on SQLite), after the Redis one
when there is a broker and alone when there is none, so two runs on one
state store never overlap even with no Redis answering either.

This module only locks: :func:`worker.runner.run_exclusive` takes both
locks and runs the engine under them.
"""

from __future__ import annotations

import contextvars
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import redis
import structlog
from redis.exceptions import LockError, LockNotOwnedError, RedisError
from redis.lock import Lock

log = structlog.get_logger("custsync.lock")

KEY_PREFIX = "custsync:lock:"
_TOKEN = re.compile(r"^(?P<owner>.*)@(?P<host>[^@:]*):(?P<pid>\d+)#[0-9a-f]+$")


# Compare-and-delete: free a key only while it still holds the value we read.
_DELETE_IF_HELD_BY = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"


class LockLostError(RuntimeError):
    """The lock expired or was taken while the run held it; the run was cancelled."""


@dataclass(frozen=True)
class Holder:
    """Who holds a pipeline's lock, as read from its value.

    Attributes:
        owner: ``task:TASK_ID`` for a Celery task, ``cli`` for the command line.
        host: the holder's host name.
        pid: the holder's process id.
        token: the raw lock value.
    """

    owner: str
    host: str
    pid: int | None
    token: str

    @classmethod
    def parse(cls, token: str) -> Holder:
        """Read a lock value; unknown shapes keep only the raw token."""
        match = _TOKEN.match(token)
        if match is None:
            return cls(owner=token, host="", pid=None, token=token)
        return cls(owner=match["owner"], host=match["host"], pid=int(match["pid"]), token=token)

    def describe(self) -> str:
        """A short human description, for messages and the skipped run's reason."""
        where = f" on {self.host} (pid {self.pid})" if self.host else ""
        return f"{self.owner}{where}"


def same_owner(owner: str) -> Callable[[Holder], bool]:
    """Wait for a lock held by an earlier delivery of the same task."""
    return lambda holder: holder.owner == owner


def dead_local_process(holder: Holder) -> bool:
    """Wait for a lock whose holder was a process of this host that is gone."""
    if holder.pid is None or holder.host != socket.gethostname():
        return False
    try:
        os.kill(holder.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # it exists, as another user
    return False


def redis_client(url: str, *, timeout_s: float = 5.0) -> redis.Redis:
    """A Redis client with bounded timeouts (a dead Redis must not hang a run)."""
    return redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)


def reachable(url: str, *, timeout_s: float = 1.0) -> bool:
    """Tell whether Redis answers at ``url`` (the inline backfill's check)."""
    if not url.startswith(("redis://", "rediss://", "unix://")):
        return False
    client = redis_client(url, timeout_s=timeout_s)
    try:
        return bool(client.ping())
    except (RedisError, OSError):
        return False
    finally:
        client.close()


class PipelineLock:
    """The run lock of one pipeline.

    Args:
        client: a Redis client.
        pipeline: the pipeline's name.
        ttl_s: expiry; renewed every ``ttl_s / 3`` while held.
        owner: who asks (``task:TASK_ID`` or ``cli``), written into the value.
    """

    def __init__(self, client: redis.Redis, pipeline: str, *, ttl_s: float, owner: str) -> None:
        self.pipeline = pipeline
        self.key = KEY_PREFIX + pipeline
        self.ttl_s = ttl_s
        self.token = holder_token(owner)
        self.held_by: Holder | None = None
        self.lost = False
        self._client = client
        # thread_local=False: the renewal thread must see the token the run's thread set.
        self._lock = Lock(client, self.key, timeout=ttl_s, thread_local=False)
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def holder(self) -> Holder | None:
        """Who holds the lock now, or ``None`` when it is free."""
        raw = self._client.get(self.key)
        if raw is None:
            return None
        return Holder.parse(raw.decode() if isinstance(raw, bytes) else str(raw))

    def acquire(
        self,
        *,
        wait_if: Callable[[Holder], bool] | None = None,
        take_over_if: Callable[[Holder], bool] | None = None,
        poll_s: float = 0.2,
    ) -> bool:
        """Take the lock without queueing behind a live holder.

        Args:
            wait_if: when the lock is held, whether this holder is one to wait
                for (it is gone and its lock will expire). The wait lasts at
                most the holder's remaining TTL plus a second.
            take_over_if: whether this holder is known to be gone for sure (a
                dead process of this host): its lock is freed at once, atomically,
                only if it still holds it.
            poll_s: how often to try again while waiting.

        Returns:
            True when taken; False when held (``held_by`` says by whom).
        """
        deadline: float | None = None
        while True:
            if self._lock.acquire(blocking=False, token=self.token):
                self.held_by = None
                return True
            holder = self.holder()
            if holder is None:
                continue  # released between our two calls: try again at once
            self.held_by = holder
            if take_over_if is not None and take_over_if(holder):
                freed = self._client.eval(_DELETE_IF_HELD_BY, 1, self.key, holder.token)
                log.warning("lock_taken_over", pipeline=self.pipeline, holder=holder.token, freed=bool(freed))
                take_over_if = None  # once: a live holder that took it meanwhile is waited for or skipped
                continue
            if wait_if is None or not wait_if(holder):
                return False
            now = time.monotonic()
            if deadline is None:
                remaining_ms = self._client.pttl(self.key)
                deadline = now + max(0, int(remaining_ms)) / 1000 + 1.0
                log.info("lock_wait", pipeline=self.pipeline, holder=holder.token, wait_s=round(deadline - now, 1))
            elif now > deadline:
                return False  # it kept renewing: alive after all
            time.sleep(poll_s)

    def start_renewal(self, on_lost: Callable[[], object] | None = None) -> None:
        """Renew the expiry every third of the TTL until :meth:`release`.

        Args:
            on_lost: called (from the renewal thread) if the lock is found
                expired or taken; the run should stop.
        """
        interval = self.ttl_s / 3
        context = contextvars.copy_context()  # keep task_id and pipeline on its log events

        def renew() -> None:
            while not self._stop.wait(interval):
                try:
                    self._lock.reacquire()
                except LockNotOwnedError:
                    self.lost = True
                    log.error("lock_lost", pipeline=self.pipeline, ttl_s=self.ttl_s)  # noqa: TRY400 - no traceback to show
                    if on_lost is not None:
                        on_lost()
                    return
                except (RedisError, OSError) as exc:
                    # Two more chances before the TTL runs out; Redis may be back by then.
                    log.warning("lock_renewal_failed", pipeline=self.pipeline, error=str(exc))

        self._stop.clear()
        self._renewer = threading.Thread(target=context.run, args=(renew,), name="custsync-lock-renewal", daemon=True)
        self._renewer.start()

    def release(self) -> None:
        """Stop renewing and free the lock if it is still ours."""
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=10)
            self._renewer = None
        try:
            self._lock.release()
        except LockNotOwnedError:
            log.warning("lock_expired_before_release", pipeline=self.pipeline)
        except LockError:
            pass  # never acquired
        except (RedisError, OSError) as exc:
            # Not fatal: the TTL frees it.
            log.warning("lock_release_failed", pipeline=self.pipeline, error=str(exc))


def holder_token(owner: str) -> str:
    """A lock value naming this process: ``OWNER@HOST:PID#NONCE`` (the Redis lock's shape)."""
    return f"{owner}@{socket.gethostname()}:{os.getpid()}#{uuid.uuid4().hex[:12]}"


def on_holder(predicate: Callable[[Holder], bool] | None) -> Callable[[str], bool] | None:
    """A predicate on a :class:`Holder` as one on the raw holder value the store lock reads."""
    if predicate is None:
        return None
    return lambda token: predicate(Holder.parse(token))


__all__ = [
    "KEY_PREFIX",
    "Holder",
    "LockLostError",
    "PipelineLock",
    "dead_local_process",
    "holder_token",
    "on_holder",
    "reachable",
    "redis_client",
    "same_owner",
]
