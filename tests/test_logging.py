"""Logs: JSON when not a terminal, one start and one summary event per run, no personal data, no secrets."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from connectors.secrets import forget_all, remember
from sandbox import bigcapital, thredfi
from sandbox.server import Sandbox
from tests.conftest import SyncFn
from worker.logging import configure_logging, redact

SECRETS = (bigcapital.SANDBOX_API_KEY, thredfi.SANDBOX_API_KEY)

SQLITE_ONLY = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)  # the store plays no part here


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """configure_logging changes process-wide state: put it back after each test."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    config = structlog.get_config()
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()
    structlog.configure(**config)
    structlog.contextvars.clear_contextvars()


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_given_stream_not_a_tty_when_auto_format_then_each_event_is_one_json_line() -> None:
    stream = io.StringIO()
    configure_logging(fmt="auto", stream=stream)

    structlog.get_logger("t").info("page_pulled", page=2, records=100)
    logging.getLogger("celery").warning("plain stdlib record")

    first, second = _lines(stream)
    assert (first["event"], first["page"], first["records"], first["level"]) == ("page_pulled", 2, 100, "info")
    assert "timestamp" in first
    assert (second["event"], second["level"]) == ("plain stdlib record", "warning")


def test_given_a_tty_when_auto_format_then_console_lines_are_not_json() -> None:
    stream = _Tty()
    configure_logging(fmt="auto", stream=stream)

    structlog.get_logger("t").info("page_pulled", page=2)

    text = re.sub(r"\x1b\[[0-9;]*m", "", stream.getvalue())
    assert "page_pulled" in text
    assert "page=2" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text.splitlines()[0])


def test_given_level_warning_when_info_logged_then_it_is_dropped() -> None:
    stream = io.StringIO()
    configure_logging(fmt="json", level="warning", stream=stream)

    structlog.get_logger("t").info("quiet")
    structlog.get_logger("t").warning("loud")

    assert [e["event"] for e in _lines(stream)] == ["loud"]


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        ({"event": "x", "api_key": "k"}, {"api_key": "***"}),
        ({"event": "x", "access_token": "t"}, {"access_token": "***"}),
        ({"event": "x", "client_secret": "s"}, {"client_secret": "***"}),
        ({"event": "x", "password": "p"}, {"password": "***"}),
        ({"event": "x", "Authorization": "Bearer abc"}, {"Authorization": "***"}),
        ({"event": "x", "error": "sent Bearer abc.def-ghi and failed"}, {"error": "sent Bearer*** and failed"}),
        ({"event": "x", "error": f"key {bigcapital.SANDBOX_API_KEY} refused"}, {"error": "key bc*** refused"}),
        ({"event": "x", "error": "Basic Y2I3NzpzZWNyZXQ="}, {"error": "Basic***"}),
        ({"event": "x", "error": f"key {thredfi.SANDBOX_API_KEY} refused"}, {"error": "key thred_sk*** refused"}),
        ({"event": "x", "error": "token sk_test_timbrix_sandbox expired"}, {"error": "token sk*** expired"}),
        ({"event": "x", "error": "Token sk_test_piriod_sandbox"}, {"error": "Token***"}),
        ({"event": "x", "note": "task_list and bc_x are fine"}, {"note": "task_list and bc_x are fine"}),
        (
            {"event": "token_refreshed", "external_id": "bigcapital:t:1"},
            {"event": "token_refreshed", "external_id": "bigcapital:t:1"},
        ),
    ],
)
def test_given_secret_looking_keys_or_values_when_logged_then_they_are_masked(
    event: dict[str, Any], expected: dict[str, Any]
) -> None:
    forget_all()  # the shapes alone: an earlier test of this process may have remembered the sandbox keys
    result = redact(None, "info", dict(event))
    for key, value in expected.items():
        assert result[key] == value


def test_given_secret_in_event_when_rendered_as_json_then_it_never_reaches_the_stream() -> None:
    stream = io.StringIO()
    configure_logging(fmt="json", stream=stream)

    structlog.get_logger("t").error(
        "auth_failed", api_key=SECRETS[0], detail=f"Bearer {SECRETS[1]}", error=f"refused {SECRETS[1]} and {SECRETS[0]}"
    )

    assert not any(secret in stream.getvalue() for secret in SECRETS)


def test_given_text_logged_before_a_secret_is_remembered_when_logged_again_then_it_is_masked() -> None:
    """Text already cleaned is kept for the next event, but only until a secret is remembered or forgotten."""
    stream = io.StringIO()
    configure_logging(fmt="json", stream=stream)
    issued = "issued-token-7f3a9c1e5b"  # no secret shape: only remembering it can mask it
    log = structlog.get_logger("t")
    structlog.contextvars.bind_contextvars(peer=f"holder {issued}")
    try:
        log.info("token_seen")
        remember(issued)
        log.info("token_seen")
        forget_all()
        log.info("token_seen")
    finally:
        structlog.contextvars.unbind_contextvars("peer")
        forget_all()

    peers = [json.loads(line)["peer"] for line in stream.getvalue().splitlines()]
    assert peers == [f"holder {issued}", "holder ***", f"holder {issued}"]


def _personal_values(sandbox: Sandbox) -> set[str]:
    values: set[str] = set()
    for record in sandbox["bigcapital"].records.values():
        for key in (
            "display_name",
            "first_name",
            "last_name",
            "company_name",
            "email",
            "work_phone",
            "personal_phone",
            "billing_address1",
        ):
            if record.get(key):
                values.add(str(record[key]))
    return values


@SQLITE_ONLY
async def test_given_a_run_when_logged_then_one_start_one_summary_and_a_write_event_per_write(
    sandbox: Sandbox, sync: SyncFn
) -> None:
    seeded = sandbox["bigcapital"].seed_fake(6)
    sandbox["bigcapital"].admin_edit(seeded[0], {"email": "not-an-email"})

    with capture_logs() as events:
        result = await sync("bigcapital_to_thredfi")

    names = [e["event"] for e in events]
    assert names.count("run_started") == 1
    assert names.count("run_finished") == 1
    assert names.index("run_started") < names.index("run_finished")
    (summary,) = [e for e in events if e["event"] == "run_finished"]
    for key in ("pulled", "created", "updated", "archived", "unchanged", "failed", "status", "duration_s"):
        assert key in summary
    assert (summary["pulled"], summary["created"], summary["failed"], summary["status"]) == (6, 5, 1, "partial")
    written = [e for e in events if e["event"] == "record_written"]
    applied = [w for w in sandbox["thredfi"].writes() if w.status < 400]
    assert len(written) == len(applied) == 5, "one record_written per write that went through"
    for event in written:
        assert event["external_id"].startswith(f"bigcapital:{bigcapital.SANDBOX_ORGANIZATION_ID}:")
        assert event["action"] in {"create", "update", "archive", "reactivate", "delete"}
    quarantined = [e for e in events if e["event"] == "record_quarantined"]
    assert [e["field"] for e in quarantined] == ["email"]
    assert result.counts.created == sum(1 for e in written if e["action"] == "create")


@SQLITE_ONLY
async def test_given_a_run_with_changes_when_logged_as_json_then_no_personal_data_and_no_secrets(
    sandbox: Sandbox, sync: SyncFn
) -> None:
    seeded = sandbox["bigcapital"].seed_fake(8)
    sandbox["bigcapital"].admin_edit(seeded[1], {"email": "not-an-email"})
    sandbox["bigcapital"].admin_edit(seeded[2], {"billing_address_country": "Atlantis"})
    stream = io.StringIO()
    configure_logging(fmt="json", stream=stream)

    await sync("bigcapital_to_thredfi")
    sandbox["bigcapital"].admin_edit(seeded[3], {"work_phone": "+15550100222", "active": False})
    await sync("bigcapital_to_thredfi")

    lines = _lines(stream)
    events = [e["event"] for e in lines]
    assert events.count("run_started") == 2
    assert events.count("run_finished") == 2
    started = next(e for e in lines if e["event"] == "run_started")
    assert started["pipeline"] == "bigcapital_to_thredfi", "run context is bound"
    assert started["run_id"]
    text = stream.getvalue()
    leaked = [
        value for value in _personal_values(sandbox) | {"not-an-email", "Atlantis", "+15550100222"} if value in text
    ]
    assert leaked == []
    assert not any(secret in text for secret in SECRETS)


def test_given_remembered_secret_nested_in_an_event_when_logged_then_it_is_masked_at_every_depth() -> None:
    """9.11: redaction covers nested dicts and lists, and matches a secret by value, whatever its shape."""
    secret = "plainKEY4u8Wz2value"  # no prefix, no Bearer: only its value can find it
    remember(secret)
    try:
        stream = io.StringIO()
        configure_logging(fmt="json", stream=stream)
        structlog.get_logger("t").warning(
            "api_refused",
            error=f"invalid key {secret}",
            detail={"body": {"message": f"key {secret} unknown", "echo": [secret, {"deep": secret}]}},
            attempts=[f"x{secret}y"],
            api_key="not-a-remembered-value",
        )
        logging.getLogger("stdlib").error("stdlib record quoting %s", secret)
        text = stream.getvalue()
        events = [json.loads(line) for line in text.splitlines()]
    finally:
        forget_all()

    assert secret not in text
    first = events[0]
    assert first["error"] == "invalid key ***"
    assert first["detail"] == {"body": {"message": "key *** unknown", "echo": ["***", {"deep": "***"}]}}
    assert first["attempts"] == ["x***y"]
    assert first["api_key"] == "***", "secret-looking keys stay masked whole"
    assert events[1]["event"] == "stdlib record quoting ***"


def _refuse(secret: str) -> None:
    raise RuntimeError(f"refused key {secret}")


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_given_a_traceback_quoting_a_secret_when_logged_then_it_is_masked_from_structlog_and_stdlib(fmt: str) -> None:
    """A traceback becomes text at either end of the chain: structlog's before redaction, stdlib's in the formatter."""
    secret = "tbKEY7q2Xw9value"
    remember(secret)
    try:
        stream = io.StringIO()
        configure_logging(fmt=fmt, stream=stream)
        for logger in (structlog.get_logger("t"), logging.getLogger("stdlib")):
            try:
                _refuse(secret)
            except RuntimeError:
                logger.exception("call_failed")
        text = stream.getvalue()
    finally:
        forget_all()

    assert text.count("refused key ***") == 2, text
    assert secret not in text
