"""The request loop parses each URL once: what reaches the server is what httpx itself would send."""

from __future__ import annotations

import re

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response

from connectors.auth import HeaderAuth
from connectors.errors import ConnectorError, FatalError
from connectors.http import HttpClient
from connectors.settings import ConnectionSettings
from tests.connectors.http_fakes import Hosts, Seen, app, json


def _refused(response: httpx.Response, op: str) -> ConnectorError:
    return ConnectorError(f"{op}: HTTP {response.status_code}")


async def _answer(request: Request) -> Response:
    return json({"ok": True})


@pytest.mark.parametrize(
    "base_url", ["http://api.test", "http://api.test/", "http://api.test/v2", "http://api.test/v2/"]
)
async def test_given_paths_sent_again_and_again_when_requested_then_each_goes_where_httpx_would_send_it(
    base_url: str,
) -> None:
    seen = Seen()
    hosts = Hosts({"api.test": app(_answer, seen)})
    client = HttpClient("books", "books", ConnectionSettings(system="books", base_url=base_url), classify=_refused,
                        transport=hosts)  # fmt: skip
    client.open(HeaderAuth({"X-Key": "k" * 12}))
    reference = httpx.AsyncClient(base_url=base_url.rstrip("/"))
    urls = ["/customers", "/customers", "customers/7", "/customers/7?expand=all", "/customers", "/customers?page=2"]
    try:
        for url in urls:
            await client.request("POST" if url == "/customers" else "GET", url, op="list", params={"n": 1})
        await client.request("GET", "http://api.test/next?page=3", op="list")
    finally:
        await client.aclose()
        await reference.aclose()

    expected = [str(reference.build_request("GET", url, params={"n": 1}).url) for url in urls]
    assert [str(r.url) for r in hosts.sent] == [*expected, "http://api.test/next?page=3"]
    assert all(headers.get("x-key") == "k" * 12 for _, _, headers in seen.requests)


async def test_given_a_foreign_link_after_its_path_was_sent_when_requested_then_refused_every_time() -> None:
    hosts = Hosts({"api.test": app(_answer), "evil.test": app(_answer)})
    settings = ConnectionSettings(system="books", base_url="http://api.test")
    client = HttpClient("books", "books", settings, classify=_refused, transport=hosts)
    client.open(HeaderAuth({"X-Key": "k" * 12}))
    try:
        await client.request("GET", "/customers?page=2", op="list")
        for _ in range(2):
            with pytest.raises(FatalError, match=re.escape("refusing to follow a link to http://evil.test:80")):
                await client.request("GET", "http://evil.test/customers?page=2", op="list")
        with pytest.raises(FatalError, match="malformed URL"):
            await client.request("GET", "http://api.test:abc/customers", op="list")
    finally:
        await client.aclose()

    assert hosts.hosts() == ["api.test"]


async def test_given_a_server_setting_cookies_when_requested_again_then_no_cookie_is_kept_or_sent() -> None:
    seen = Seen()

    async def cookies(request: Request) -> Response:
        return json({"ok": True}, headers={"Set-Cookie": "session=abc123; Path=/"})

    hosts = Hosts({"api.test": app(cookies, seen)})
    client = HttpClient("books", "books", ConnectionSettings(system="books", base_url="http://api.test"),
                        classify=_refused, transport=hosts)  # fmt: skip
    client.open(HeaderAuth({"X-Key": "k" * 12}))
    try:
        for _ in range(3):
            response = await client.request("GET", "/customers", op="list")
            assert response.headers["set-cookie"].startswith("session="), "the server did set one"
    finally:
        await client.aclose()

    assert len(seen.requests) == 3
    assert [headers.get("cookie") for _, _, headers in seen.requests] == [None, None, None]
