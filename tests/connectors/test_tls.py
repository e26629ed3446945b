"""The transport's one TLS context: it verifies from the start and reads its trust anchors at the first https request.

A real TLS server on loopback (a self-signed certificate made by ``openssl``)
answers; the transport under test is the one every connection uses.
"""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from connectors.transport import TRUST, AiohttpTransport, Trust
from sandbox.server import BackgroundServer
from sandbox.thredfi import ThredfiEmulator

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")

ANSWER = (
    b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\nConnection: close\r\n\r\n{"ok":true}'
)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key."""
    where = tmp_path_factory.mktemp("tls")
    cert, key = where / "cert.pem", where / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    return cert, key


@pytest.fixture
async def tls_url(certificate: tuple[Path, Path]) -> AsyncIterator[str]:
    """An https server on loopback that answers every request with ``{"ok": true}``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*map(str, certificate))

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(ANSWER)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass  # the client refused the certificate
        finally:
            writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=context)
    async with server:
        yield f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}/"


async def _get(url: str, trust: Trust) -> httpx.Response:
    async with httpx.AsyncClient(transport=AiohttpTransport(trust=trust), timeout=10) as http:
        return await http.get(url)


def test_given_a_transport_when_built_then_it_verifies_with_the_process_context() -> None:
    transport = AiohttpTransport()

    assert transport.trust is TRUST
    assert transport.ssl_context is TRUST.context, "every transport shares the one context"
    assert TRUST.context.verify_mode is ssl.CERT_REQUIRED
    assert TRUST.context.check_hostname


async def test_given_plain_http_when_requested_then_no_anchors_are_read() -> None:
    trust = Trust()
    with BackgroundServer(ThredfiEmulator().app) as server:
        answer = await _get(f"{server.url}/v1/platform/oauth2/token/", trust)

    assert answer.status_code in (400, 401, 405), "the emulator answered"
    assert not trust.read, "an http run never pays for reading the CA bundle"


async def test_given_a_certificate_no_anchor_vouches_for_when_requested_then_refused(tls_url: str) -> None:
    trust = Trust()

    with pytest.raises(httpx.ConnectError, match=r"(?i)certificate"):
        await _get(tls_url, trust)

    assert trust.read, "the first https request read the anchors"


async def test_given_ssl_cert_file_naming_the_certificate_when_requested_then_trusted(
    tls_url: str, certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))

    answer = await _get(tls_url, Trust())

    assert answer.json() == {"ok": True}
