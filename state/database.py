"""The state store's database: its URL, the SQLAlchemy engine over it, and its failures to open.

SQLite by default, PostgreSQL by URL. Every failure to open a database
becomes one :class:`~state.errors.StoreError` line, the URL's password masked.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.pool import StaticPool

from state.errors import StoreError, StoreUnreachableError

_PASSWORD = re.compile(r"(://[^:/@]*:)[^@]*@")
_SUPPORTED = ("sqlite", "postgresql")


def normalise_url(url: str) -> str:
    """Accept ``postgresql://`` and ``postgres://`` as the psycopg 3 driver."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (also when it does not parse)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return _PASSWORD.sub(r"\1***@", url)


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL, or ``None`` for an in-memory database or a ``file:`` URI."""
    database = url.split(":///", 1)[1].split("?", 1)[0] if ":///" in url else ""
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def open_engine(url: str, *, readonly: bool) -> Engine:
    """The engine over the database at ``url`` (not yet connected).

    Raises:
        StoreError: the URL is not one custsync supports.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError(f"state store {mask_url(url)}: not a database URL (e.g. sqlite:///custsync.db)") from None
    if parsed.get_backend_name() not in _SUPPORTED:
        raise StoreError(
            f"state store {mask_url(url)}: unsupported database {parsed.get_backend_name()!r} "
            "(use sqlite:///FILE or postgresql://...)"
        )
    connect_args: dict[str, Any] = {}
    options: dict[str, Any] = {"pool_pre_ping": True}
    if parsed.get_backend_name() == "sqlite":
        connect_args = {"check_same_thread": False, "timeout": 30}
        if "uri=true" in url:
            connect_args["uri"] = True
        if sqlite_file(url) is None and "mode=ro" not in url:
            options["poolclass"] = StaticPool  # one in-memory database, shared by every thread
    elif readonly:
        connect_args = {"options": "-c default_transaction_read_only=on"}
    try:
        engine = create_engine(url, connect_args=connect_args, **options)
    except (ArgumentError, ImportError, ValueError) as exc:
        raise StoreError(f"state store {mask_url(url)}: {exc}") from None
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas_readonly if readonly else _sqlite_pragmas)
    return engine


@contextmanager
def opening(url: str) -> Iterator[None]:
    """Turn the driver's failure to open a database into one :class:`StoreError` line."""
    try:
        yield
    except StoreError:
        raise
    except DBAPIError as exc:
        raise _open_error(url, exc) from None
    except OSError as exc:
        raise StoreUnreachableError(f"state store {mask_url(url)}: cannot open: {exc.strerror or exc}") from None


def _open_error(url: str, exc: DBAPIError) -> StoreError:
    detail = " ".join(str(exc.orig).split()) if exc.orig is not None else type(exc).__name__
    masked = mask_url(url)
    path = sqlite_file(url)
    if path is not None and not path.parent.is_dir():
        return StoreUnreachableError(f"state store {masked}: the folder {path.parent} does not exist")
    if "file is not a database" in detail:
        return StoreError(f"state store {masked}: {path} is not a SQLite database")
    if "readonly" in detail or "read-only" in detail:
        return StoreUnreachableError(f"state store {masked}: cannot write ({detail})")
    return StoreUnreachableError(f"state store {masked}: cannot open: {detail[:300]}")


def _sqlite_pragmas_readonly(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA query_only=ON")
    cursor.close()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets `custsync status` read while a run writes; foreign keys are off by default.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


__all__ = ["mask_url", "normalise_url", "open_engine", "opening", "sqlite_file"]
