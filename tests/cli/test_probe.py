"""8.4: ``custsync probe CONNECTION --create-test-customer`` against each sandbox system.

The probe writes one test customer with every canonical field, reads it
back, and says per field whether the system kept it; then it archives the
customer (deletes it on Timbrix). The Bigcapital case also runs behind a
front that does to the postcode what the recorded real server does (drops
it silently, whatever key it comes in): the probe must say it was not stored.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from connectors import REGISTRY
from connectors.model import CANONICAL_FIELDS
from connectors.registry import names
from sandbox.server import BackgroundServer, Sandbox, sandbox_config
from worker import cli
from worker.settings import get_settings

pytestmark = pytest.mark.usefixtures("clean_cli")

SYSTEMS = names()  # every registered system


def invoke(*args: str) -> Result:
    get_settings.cache_clear()
    return CliRunner().invoke(cli.app, list(args))


def _config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(sandbox_config(url, state_url=f"sqlite:///{tmp_path}/s.db"), encoding="utf-8")
    return path


def _probe_json(config: Path, connection: str) -> dict[str, Any]:
    result = invoke("probe", connection, "--create-test-customer", "--json", "--config", str(config))
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, result.stdout
    report: dict[str, Any] = json.loads(lines[0])
    return report


@pytest.mark.parametrize("system", SYSTEMS)
def test_given_sandbox_system_when_probed_then_every_field_is_reported_and_the_customer_is_removed(
    tmp_path: Path, served: tuple[Sandbox, str], box: Sandbox, system: str
) -> None:
    report = _probe_json(_config(tmp_path, served[1]), system)

    spec = REGISTRY[system].spec
    fields = report["fields"]
    assert set(fields) == set(CANONICAL_FIELDS) - {"active"}, "every canonical field is probed"
    for name, result in fields.items():
        if name in spec.fields or name in {"kind", "name"}:
            # The emulator keeps what the connector writes: nothing it claims to keep is lost.
            assert result["status"] in ("stored", "changed"), (name, result)
        else:
            assert result["status"] == "not kept", (name, result)
            assert result["stored"] is False
    assert fields["name"]["sent"].startswith("custsync probe ")
    assert fields["name"]["stored"] is True
    emulator = box[system]
    if system == "timbrix":
        assert report["cleanup"] == "deleted"
        assert emulator.records == {}, "no archived state: the test customer is deleted"
    else:
        assert report["cleanup"] == "archived"
        (record,) = emulator.records.values()
        assert json.dumps(record, ensure_ascii=False).count("custsync probe") >= 1


def test_given_piriod_when_probed_then_the_folded_address_is_reported_changed(
    tmp_path: Path, served: tuple[Sandbox, str], box: Sandbox
) -> None:
    fields = _probe_json(_config(tmp_path, served[1]), "piriod")["fields"]

    # Piriod has one address line: the second is folded into it, and that is what comes back.
    assert fields["address_line1"]["status"] == "changed"
    assert fields["address_line2"]["sent"] in fields["address_line1"]["got"]


def _dropping_postcodes(app: Any) -> Any:
    """Bigcapital as recorded (real-server-exchanges.md): a postcode key in a write is dropped silently.

    The recording also shows ``billingAddressZipcode`` answered with a 500; the
    front drops it too, so that the probe's read back is what is under test.
    """
    pattern = re.compile(r"(zip_?code|post_?code)$", re.I)

    async def front(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT") or "/bigcapital/" not in scope["path"]:
            await app(scope, receive, send)
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = json.loads(b"".join(chunks) or b"{}")
        if isinstance(body, dict):
            body = {k: v for k, v in body.items() if not pattern.search(k)}
        data = json.dumps(body).encode()
        headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(data)).encode()))
        sent = False

        async def replay() -> Any:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": data, "more_body": False}

        await app({**scope, "headers": headers}, replay, send)

    return front


def test_given_bigcapital_dropping_the_postcode_like_the_real_server_when_probed_then_it_is_reported_not_stored(
    tmp_path: Path,
) -> None:
    box = Sandbox()
    with BackgroundServer(_dropping_postcodes(box.app)) as server:
        report = _probe_json(_config(tmp_path, server.url), "bigcapital")

    postcode = report["fields"]["postal_code"]
    assert postcode["stored"] is False, postcode
    assert postcode["status"] in ("dropped", "not kept"), postcode  # written and lost, or not written at all
    assert postcode["got"] is None
    assert report["fields"]["city"]["status"] == "stored", "the rest of the address went through"


def test_given_no_create_flag_when_probe_then_exit_2_explaining_it_writes_and_nothing_is_written(
    tmp_path: Path, served: tuple[Sandbox, str], box: Sandbox
) -> None:
    result = invoke("probe", "thredfi", "--config", str(_config(tmp_path, served[1])))

    assert result.exit_code == 2, result.output
    assert "--create-test-customer" in result.stderr
    assert "writes" in result.stderr
    assert box["thredfi"].writes() == []


def test_given_unknown_connection_when_probe_then_exit_2_listing_known_ones(
    tmp_path: Path, served: tuple[Sandbox, str]
) -> None:
    result = invoke("probe", "nope", "--create-test-customer", "--config", str(_config(tmp_path, served[1])))

    assert result.exit_code == 2, result.output
    assert "nope" in result.stderr
    assert "bigcapital" in result.stderr


def test_given_unreachable_system_when_probe_then_exit_3_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    text = sandbox_config("http://127.0.0.1:9", state_url=f"sqlite:///{tmp_path}/s.db")
    path.write_text(text.replace('system = "thredfi"', 'system = "thredfi"\nretry_attempts = 1'), encoding="utf-8")

    result = invoke("probe", "thredfi", "--create-test-customer", "--config", str(path))

    assert result.exit_code == 3, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("{")]
    assert len(lines) == 1, result.stderr
    assert "probe of thredfi could not run" in lines[0]
    assert "Traceback" not in result.output
