"""Connections that cannot work fail within seconds, naming the connection and its URL (issue 13.3).

Product rule: a connection that is refused, cannot be resolved or has a
malformed URL is reported within 10 seconds, naming the connection and its
URL; retries with backoff are for answers that may change. These go
through the CLI with no transport (real sockets) and stamina's real waits.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import stamina
from starlette.requests import Request
from starlette.responses import Response
from typer.testing import CliRunner, Result

from connectors.bigcapital import BigcapitalConnector, BigcapitalSettings
from connectors.errors import FatalError, NotFoundError
from connectors.timbrix import TimbrixConnector, TimbrixSettings
from sandbox.bigcapital import SANDBOX_API_KEY
from sandbox.server import free_port, sandbox_config
from tests.connectors.http_fakes import Hosts, app, json
from worker import cli
from worker.settings import get_settings

NO_BROKER = "redis://127.0.0.1:1/0"


@pytest.fixture(autouse=True)
def _real_waits() -> Iterator[None]:
    with stamina.set_testing(False):
        yield


def invoke(*args: str) -> Result:
    get_settings.cache_clear()
    return CliRunner().invoke(cli.app, list(args))


def config_with(tmp_path: Path, base_url: str, api_key: str = SANDBOX_API_KEY, *, only: bool = False) -> Path:
    """The sandbox config (pointing nowhere useful) with the bigcapital connection at ``base_url``.

    With ``only``, bigcapital is the one connection (no pipelines): ``check`` then times it alone.
    """
    nowhere = f"http://127.0.0.1:{free_port()}"
    text = sandbox_config(nowhere, state_url=f"sqlite:///{tmp_path}/s.db", broker_url=NO_BROKER)
    if only:
        text = text.split("[connections.thredfi]")[0]
    lines = text.splitlines()
    start = lines.index("[connections.bigcapital]")
    lines[start + 2] = f'base_url = "{base_url}"'
    lines[start + 3] = f'api_key = "{api_key}"'
    path = tmp_path / "custsync.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def bigcapital_line(result: Result) -> str:
    return next(line for line in result.stdout.splitlines() if line.strip().startswith("bigcapital (bigcapital)"))


@pytest.mark.parametrize(
    ("base_url", "shown", "why"),
    [
        ("http://127.0.0.1:{closed}/api", "http://127.0.0.1:{closed}/api", "connection refused"),
        (
            "http://admin:hunter2-pass@no-such-host.invalid/api",
            "http://admin:***@no-such-host.invalid/api",
            "the host name cannot be resolved",
        ),
    ],
    ids=["refused", "dns"],
)
def test_given_unusable_base_url_when_check_then_reported_within_seconds_naming_connection_and_url(
    tmp_path: Path, base_url: str, shown: str, why: str
) -> None:
    closed = free_port()
    path = config_with(tmp_path, base_url.format(closed=closed), only=True)

    started = time.monotonic()
    result = invoke("check", "--config", str(path))
    elapsed = time.monotonic() - started

    line = bigcapital_line(result)
    assert result.exit_code == 3
    assert "FAILED" in line
    assert shown.format(closed=closed) in line
    assert why in line
    assert "hunter2-pass" not in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert elapsed < 10.0


@pytest.mark.parametrize("base_url", ["127.0.0.1:8000/api", "ftp://books.example/api"], ids=["no-scheme", "ftp"])
def test_given_malformed_base_url_when_check_then_config_error_names_the_key_and_url_at_once(
    tmp_path: Path, base_url: str
) -> None:
    path = config_with(tmp_path, base_url, only=True)

    started = time.monotonic()
    result = invoke("check", "--config", str(path))

    assert result.exit_code == 2, "a malformed URL is a configuration error, found before any request"
    assert f"connections.bigcapital.base_url: '{base_url}' is not an http(s) URL" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert time.monotonic() - started < 10.0


def test_given_refused_source_when_run_then_run_fails_within_10_seconds_with_one_line(tmp_path: Path) -> None:
    closed = free_port()
    path = config_with(tmp_path, f"http://127.0.0.1:{closed}")

    started = time.monotonic()
    result = invoke("run", "bigcapital_to_thredfi", "--config", str(path))
    elapsed = time.monotonic() - started

    assert elapsed < 10.0
    assert result.exit_code != 0
    output = result.stdout + result.stderr
    assert f"bigcapital (bigcapital): cannot reach http://127.0.0.1:{closed}: connection refused" in output
    assert "Traceback" not in output


async def test_given_empty_credential_when_connection_opens_then_fatal_at_once_naming_the_setting() -> None:
    settings = BigcapitalSettings(system="bigcapital", base_url="http://books.test", api_key="")
    connector = BigcapitalConnector("books", settings, transport=Hosts({}))
    started = time.monotonic()
    with pytest.raises(FatalError, match=r"^books \(bigcapital\): api_key is empty"):
        async with connector:
            pass
    assert time.monotonic() - started < 1.0


async def test_given_404_on_first_call_when_checked_then_points_at_base_url() -> None:
    async def no_prefix(request: Request) -> Response:
        if request.url.path.startswith("/api/"):
            return json([])
        return json({"statusCode": 404, "message": "Cannot GET " + request.url.path}, 404)

    settings = TimbrixSettings(
        system="timbrix", base_url="http://timbrix.test", api_key="tbx_test_key_1", organization_id="org-1"
    )
    async with TimbrixConnector("invoicing", settings, transport=Hosts({"timbrix.test": app(no_prefix)})) as connector:
        with pytest.raises(FatalError) as raised:
            await connector.check()
    message = str(raised.value)
    assert message.startswith("invoicing (timbrix) check: http://timbrix.test answered 404 to its first call")
    assert "check base_url" in message
    assert "/api" in message
    assert isinstance(raised.value.__cause__, NotFoundError)


async def test_given_404_after_the_connection_answered_when_get_then_still_not_found() -> None:
    async def server(request: Request) -> Response:
        if request.url.path.endswith("/customers"):
            return json([])
        return json({"statusCode": 404, "message": "Customer not found"}, 404)

    settings = TimbrixSettings(
        system="timbrix", base_url="http://timbrix.test/api", api_key="tbx_test_key_1", organization_id="org-1"
    )
    async with TimbrixConnector("invoicing", settings, transport=Hosts({"timbrix.test": app(server)})) as connector:
        await connector.check()
        with pytest.raises(NotFoundError):
            await connector.get("c-404")
    assert httpx.URL(settings.base_url).path == "/api"


def test_given_empty_api_key_when_check_then_reported_at_once_naming_the_setting(tmp_path: Path) -> None:
    path = config_with(tmp_path, "http://127.0.0.1:9/api", api_key="", only=True)

    started = time.monotonic()
    result = invoke("check", "--config", str(path))

    assert time.monotonic() - started < 5.0
    assert result.exit_code == 3
    assert "api_key is empty" in bigcapital_line(result)
