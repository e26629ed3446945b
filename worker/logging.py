"""structlog set-up: one event per fact, run context bound once, secrets masked.

JSON lines when stderr is not a terminal (production, CI, Celery), a
readable console otherwise. Celery's and the standard library's own log
records go through the same processors, so one stream has one format.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog

from connectors import secrets
from connectors.secrets import scrub

_SECRET_KEYS = re.compile(r"(token|api_key|apikey|secret|password|authorization|credential)", re.I)
# Key shapes: bc_... (Bigcapital), sk_... and vendor-prefixed ones such as thred_sk_... (Thredfi).
_SECRET_VALUES = re.compile(r"(Bearer|Basic|Token)\s+[A-Za-z0-9._~+/=-]+|\b((?:[A-Za-z]+_)?(?:bc|sk))_[A-Za-z0-9_]{6,}")
_configured = False


def redact(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Mask secrets anywhere in an event, nested mappings and lists included.

    Values under secret-looking keys are masked whole; every other string is
    scrubbed of every remembered secret (matched by value: an API key an
    error body quotes has no recognisable shape) and of secret-looking shapes.
    """
    for key, value in list(event.items()):
        if key == "event":
            event[key] = _clean(value)
        else:
            event[key] = _masked(key, value)
    return event


def redact_tracebacks(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Scrub the traceback and stack text, made after :func:`redact` ran (the rest of the event was redacted then)."""
    for key in ("exception", "stack"):
        if key in event:
            event[key] = _clean(event[key])
    return event


#: key → whether it names a secret: an event's keys come from a few dozen names.
_secret_keys: dict[str, bool] = {}


def _masked(key: Any, value: Any) -> Any:
    if isinstance(key, str) and value not in (None, ""):
        secret = _secret_keys.get(key)
        if secret is None:
            secret = _SECRET_KEYS.search(key) is not None
            if len(_secret_keys) < _CLEANED_MAX:
                _secret_keys[key] = secret
        if secret:
            return "***"
    return _clean(value)


#: short text already cleaned, under the secrets' generation it was cleaned in: a run's bound context
#: (run_id, pipeline, source, target) is in every event it logs.
_cleaned: tuple[int, dict[str, str]] = (-1, {})
_CLEANED_MAX, _CLEANED_LONGEST = 512, 256


def _clean_text(value: str) -> str:
    global _cleaned
    generation = secrets.generation()  # read before scrubbing: a secret remembered meanwhile starts a new table
    under, table = _cleaned
    if under != generation:
        table = {}
        _cleaned = (generation, table)
    done = table.get(value)
    if done is None:
        done = _SECRET_VALUES.sub(lambda m: (m.group(1) or m.group(2)) + "***", scrub(value))
        if len(value) <= _CLEANED_LONGEST:
            if len(table) >= _CLEANED_MAX:
                table.clear()
            table[value] = done
    return done


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return _clean_text(value)
    if isinstance(value, Mapping):
        return {k: _masked(k, v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_clean(v) for v in value)
    if isinstance(value, BaseException):
        return _clean(str(value))
    return value


def configure_logging(*, fmt: str = "auto", level: str = "info", stream: Any = None) -> None:
    """Set up structlog and the standard library logging once per process.

    Args:
        fmt: ``json``, ``console`` or ``auto`` (JSON unless the stream is a TTY).
        level: minimum level.
        stream: where logs go (stderr by default: stdout carries results).
    """
    global _configured
    stream = stream or sys.stderr
    as_json = fmt == "json" or (fmt == "auto" and not stream.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.ExtraAdder(),
        redact,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if as_json
        else structlog.dev.ConsoleRenderer(colors=stream.isatty())
    )
    numeric = logging.getLevelName(level.upper())
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.format_exc_info,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(numeric if isinstance(numeric, int) else logging.INFO),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                # Tracebacks are text only from here on: scrub them too, last, before rendering. The rest of
                # the event was redacted in its first chain (``shared``, for structlog's and foreign records alike).
                structlog.processors.format_exc_info,
                redact_tracebacks,
                renderer,
            ],
        )
    )
    # Nothing rendered shows where a call was made from, nor the thread, process or task: not gathered
    # for every record (the logging HOWTO's "Optimization"; structlog's events come through here too).
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric if isinstance(numeric, int) else logging.INFO)
    # httpx logs every request line at INFO, with URLs; our own events say what matters.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    # Alembic announces every (no-op) migration check at INFO on each command.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    _configured = True


__all__ = ["configure_logging", "redact", "redact_tracebacks"]
