"""The state store's own run lock: one run of a pipeline per state store, broker or not.

Two runs of one pipeline on one state store would both create every new
customer in a target that has no identity slot. Redis locks runs for the
service, but the CLI runs without a broker, so the store locks too:

- PostgreSQL: a session-level advisory lock (``pg_try_advisory_lock``) on a
  connection of its own, held for the whole run. The server frees it when
  the session ends, so a killed holder holds nothing. The holder's name is
  the session's ``application_name``, which a refused run reads back from
  ``pg_stat_activity``.
- SQLite: a lease row in ``run_leases`` (pipeline, holder, expiry), taken by
  one atomic upsert that overwrites only an expired lease, inside
  ``BEGIN IMMEDIATE``. A thread renews it while the run lives; a killed
  holder's lease expires after one TTL (or is taken over at once when the
  caller knows the holder is a dead process).

Holder values have the shape of the Redis lock's (``OWNER@HOST:PID#NONCE``),
so :class:`worker.lock.Holder` reads both.
"""

from __future__ import annotations

import contextvars
import hashlib
import threading
import time
from collections.abc import Callable
from typing import Any

import structlog
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import SQLAlchemyError

log = structlog.get_logger("custsync.store_lock")

#: the advisory lock namespace ("cust"); the second key is the pipeline's hash.
_NAMESPACE = 0x63757374
_HOLDER_LIMIT = 255
_APPLICATION_NAME_LIMIT = 63  # PostgreSQL truncates longer names


def advisory_key(pipeline: str) -> int:
    """The pipeline's advisory lock key: a signed 32-bit hash of its name."""
    digest = hashlib.blake2b(pipeline.encode("utf-8"), digest_size=4).digest()
    return int.from_bytes(digest, "big", signed=True)


class StoreLock:
    """The state-store run lock of one pipeline.

    Args:
        engine: the store's engine.
        pipeline: the pipeline's name.
        holder: who asks, ``OWNER@HOST:PID#NONCE``.
        ttl_s: the SQLite lease's lifetime; renewed every third of it.
    """

    def __init__(self, engine: Engine, pipeline: str, *, holder: str, ttl_s: float) -> None:
        self.engine = engine
        self.pipeline = pipeline
        self.holder = holder[:_HOLDER_LIMIT]
        self.ttl_s = ttl_s
        self.held_by: str | None = None
        self.lost = False
        self._postgres = engine.dialect.name == "postgresql"
        self._connection: Connection | None = None
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self._held = False

    # -- taking it -------------------------------------------------------

    def try_acquire(self) -> bool:
        """Take the lock if it is free (or its lease expired); never wait.

        Returns:
            True when taken; False when held (``held_by`` says by whom).
        """
        self._held = self._try_postgres() if self._postgres else self._try_sqlite()
        if self._held:
            self.held_by = None
        return self._held

    def acquire(
        self,
        *,
        wait_if: Callable[[str], bool] | None = None,
        take_over_if: Callable[[str], bool] | None = None,
        poll_s: float = 0.2,
    ) -> bool:
        """Take the lock without queueing behind a live holder.

        Args:
            wait_if: whether a holder is one to wait for (an earlier delivery of
                the same task); the wait is bounded by one TTL plus a second.
            take_over_if: whether a holder is gone for sure (a dead local
                process): its SQLite lease is removed at once, only if it is
                still that holder's. On PostgreSQL a dead holder's session
                ended and its lock with it, so this is never needed there.
            poll_s: how often to try again while waiting.

        Returns:
            True when taken; False when held (``held_by`` says by whom).
        """
        deadline: float | None = None
        while True:
            if self.try_acquire():
                return True
            holder = self.held_by or ""
            if take_over_if is not None and not self._postgres and holder and take_over_if(holder):
                freed = self._delete_lease(holder)
                log.warning("store_lock_taken_over", pipeline=self.pipeline, holder=holder, freed=freed)
                take_over_if = None  # once: a live holder that took it meanwhile is waited for or skipped
                continue
            if wait_if is None or not wait_if(holder):
                return False
            now = time.monotonic()
            if deadline is None:
                deadline = now + self.ttl_s + 1.0
                log.info("store_lock_wait", pipeline=self.pipeline, holder=holder, wait_s=round(self.ttl_s + 1.0, 1))
            elif now > deadline:
                return False
            time.sleep(poll_s)

    def _try_postgres(self) -> bool:
        connection = self.engine.connect()
        try:
            connection.execute(
                text("SELECT set_config('application_name', :name, false)"),
                {"name": self.holder[:_APPLICATION_NAME_LIMIT]},
            )
            taken = connection.execute(
                text("SELECT pg_try_advisory_lock(:ns, :key)"), {"ns": _NAMESPACE, "key": advisory_key(self.pipeline)}
            ).scalar_one()
            connection.commit()  # the session lock outlives the transaction; do not sit idle in one
        except BaseException:
            connection.close()
            raise
        if taken:
            self._connection = connection
            return True
        connection.close()
        self.held_by = self._postgres_holder() or "another session (holder unknown)"
        return False

    def _postgres_holder(self) -> str | None:
        objid = advisory_key(self.pipeline) & 0xFFFFFFFF  # pg_locks shows the key as an unsigned oid
        query = text(
            "SELECT a.application_name, a.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.classid::bigint = :ns "
            "AND l.objid::bigint = :objid AND l.objsubid = 2 LIMIT 1"
        )
        with self.engine.connect() as connection:
            row = connection.execute(query, {"ns": _NAMESPACE, "objid": objid}).first()
        if row is None:
            return None
        name, pid = row
        return str(name) if name else f"PostgreSQL session {pid}"

    def _try_sqlite(self) -> bool:
        now = time.time()
        upsert = (
            "INSERT INTO run_leases (pipeline, holder, expires_at) VALUES (?, ?, ?) "
            "ON CONFLICT (pipeline) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at "
            "WHERE run_leases.expires_at < ?"
        )
        with self._sqlite_transaction() as cursor:
            cursor.execute(upsert, (self.pipeline, self.holder, now + self.ttl_s, now))
            cursor.execute("SELECT holder FROM run_leases WHERE pipeline = ?", (self.pipeline,))
            row = cursor.fetchone()
        holder = row[0] if row else None
        if holder == self.holder:
            return True
        self.held_by = holder or "another run (holder unknown)"
        return False

    def _delete_lease(self, holder: str) -> bool:
        with self._sqlite_transaction() as cursor:
            cursor.execute("DELETE FROM run_leases WHERE pipeline = ? AND holder = ?", (self.pipeline, holder))
            return bool(cursor.rowcount)

    def _sqlite_transaction(self) -> _SqliteTransaction:
        return _SqliteTransaction(self.engine)

    # -- keeping it --------------------------------------------------------

    def renew(self) -> bool:
        """Extend the SQLite lease, or check the PostgreSQL session still holds the lock.

        Returns:
            False when the lock is no longer ours (expired and taken, session gone).
        """
        if self._postgres:
            assert self._connection is not None
            held = self._connection.execute(
                text(
                    "SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'advisory' "
                    "AND classid::bigint = :ns AND objid::bigint = :objid AND objsubid = 2"
                ),
                {"ns": _NAMESPACE, "objid": advisory_key(self.pipeline) & 0xFFFFFFFF},
            ).scalar_one()
            self._connection.commit()
            return bool(held)
        with self._sqlite_transaction() as cursor:
            cursor.execute(
                "UPDATE run_leases SET expires_at = ? WHERE pipeline = ? AND holder = ?",
                (time.time() + self.ttl_s, self.pipeline, self.holder),
            )
            return bool(cursor.rowcount)

    def start_renewal(self, on_lost: Callable[[], object] | None = None) -> None:
        """Renew every third of the TTL until :meth:`release`.

        Args:
            on_lost: called (from the renewal thread) when the lock is found no
                longer ours; the run should stop.
        """
        interval = self.ttl_s / 3
        context = contextvars.copy_context()

        def loop() -> None:
            while not self._stop.wait(interval):
                try:
                    still_ours = self.renew()
                except (SQLAlchemyError, OSError) as exc:
                    # A PostgreSQL session that died took the lock with it: nothing holds the run any more.
                    if self._postgres:
                        still_ours = False
                    else:
                        log.warning("store_lock_renewal_failed", pipeline=self.pipeline, error=type(exc).__name__)
                        continue
                if not still_ours:
                    self.lost = True
                    log.error("store_lock_lost", pipeline=self.pipeline, ttl_s=self.ttl_s)
                    if on_lost is not None:
                        on_lost()
                    return

        self._stop.clear()
        self._renewer = threading.Thread(target=context.run, args=(loop,), name="custsync-store-lock", daemon=True)
        self._renewer.start()

    def release(self) -> None:
        """Stop renewing and free the lock if it is still ours."""
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=10)
            self._renewer = None
        if not self._held:
            return
        self._held = False
        try:
            if self._postgres:
                if self._connection is not None:
                    self._connection.execute(
                        text("SELECT pg_advisory_unlock(:ns, :key)"),
                        {"ns": _NAMESPACE, "key": advisory_key(self.pipeline)},
                    )
                    self._connection.commit()
            else:
                self._delete_lease(self.holder)
        except (SQLAlchemyError, OSError) as exc:
            # Not fatal: the session's end (PostgreSQL) or the lease's expiry (SQLite) frees it.
            log.warning("store_lock_release_failed", pipeline=self.pipeline, error=type(exc).__name__)
        finally:
            if self._connection is not None:
                self._connection.close()
                self._connection = None


class _SqliteTransaction:
    """``BEGIN IMMEDIATE`` on a pooled SQLite connection: the write lock first, so check and write are one step."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def __enter__(self) -> Any:
        self._raw = self._engine.raw_connection()
        self._cursor = self._raw.cursor()
        self._cursor.execute("BEGIN IMMEDIATE")
        return self._cursor

    def __exit__(self, exc_type: object, *_rest: object) -> None:
        try:
            if exc_type is None:
                self._raw.commit()
            else:
                self._raw.rollback()
        finally:
            self._cursor.close()
            self._raw.close()


__all__ = ["StoreLock", "advisory_key"]
