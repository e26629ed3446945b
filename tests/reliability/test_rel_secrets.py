"""Issue 5, part 7: secrets stay secret.

Full syncs run as real processes with distinctive keys and tokens, through
faults, refusals, quarantines, dry runs, status, failures and check, in JSON
and console log formats and at debug level. Every byte they print (stdout,
stderr) and every byte of the state database is searched for each secret,
for the HTTP Basic credential built from one, and for every access token the
emulator issued: no hit.

The keys are chosen so that no masking pattern of the log processor
(``bc_...``, ``sk_...``, ``Bearer ...``) would hide them: a hit means the value
was written, not that a filter missed it.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from starlette.responses import JSONResponse

from sandbox.bigcapital import BigcapitalEmulator
from sandbox.piriod import PiriodEmulator
from sandbox.server import BackgroundServer, Sandbox, sandbox_config
from sandbox.thredfi import SANDBOX_PARTNER_UUID, ThredfiEmulator
from sandbox.timbrix import TimbrixEmulator
from tests.support.parallel import redis_url
from tests.support.soak import TIMBRIX_DEFAULTS, seed_thredfi_mexicans

pytestmark = pytest.mark.slow

CUSTSYNC = str(Path(sys.executable).parent / "custsync")
SECRETS = {
    "BIGCAPITAL_API_KEY": "qzv7Ykey4BIGCAPITAL9wq2",
    "THREDFI_API_KEY": "pw3KkeyTHREDFI8mm1xq",
    "PIRIOD_API_TOKEN": "hh5RtokPIRIOD2zz7vb",
    "TIMBRIX_API_KEY": "yy8JkeyTIMBRIX4nn6cd",
}
WRONG_PIRIOD_TOKEN = "kk2WwrongPIRIOD5pp0ee"


def _config(url: str, state: Path) -> str:
    """The sandbox config with every secret replaced by a ``${VARIABLE}``."""
    text = sandbox_config(url, state_url=f"sqlite:///{state}", broker_url=redis_url(0, 1))
    lines: list[str] = []
    for line in text.splitlines():
        key = line.split(" = ", 1)[0]
        section = next((x for x in reversed(lines) if x.startswith("[")), "") if lines else ""
        if key in ("api_key", "api_token") and section:
            system = section.strip("[]").split(".")[1].upper()
            variable = f"{system}_API_TOKEN" if key == "api_token" else f"{system}_API_KEY"
            line = f'{key} = "${{{variable}}}"'
        lines.append(line)
        if line.startswith("[pipelines.") and line.endswith("_to_timbrix]") and TIMBRIX_DEFAULTS not in text:
            lines.append(TIMBRIX_DEFAULTS)
    return "\n".join(lines) + "\n"


def test_given_full_syncs_with_distinctive_secrets_when_every_output_and_the_state_db_are_searched_then_no_hit(
    tmp_path: Path,
) -> None:
    box = Sandbox(
        emulators={
            "bigcapital": BigcapitalEmulator(api_key=SECRETS["BIGCAPITAL_API_KEY"]),
            "thredfi": ThredfiEmulator(api_key=SECRETS["THREDFI_API_KEY"], token_ttl_s=1),
            "piriod": PiriodEmulator(api_token=SECRETS["PIRIOD_API_TOKEN"]),
            "timbrix": TimbrixEmulator(api_key=SECRETS["TIMBRIX_API_KEY"]),
        }
    )
    box["bigcapital"].seed_fake(25)
    box["bigcapital"].seed([{"displayName": "Bad Country Ltd", "billingAddressCountry": "Atlantis"}])
    seed_thredfi_mexicans(box, 25)
    box["piriod"].seed_fake(10)
    # Faults, so that retries, lost answers and refusals are logged too.
    box["thredfi"].faults.add("error_before", path="oauth2/token", times=1)
    box["thredfi"].faults.add("error_after", method="POST", path="/customers/$", times=3)
    box["bigcapital"].faults.add("error_after", method="POST", path="/api/customers$", times=2)
    box["bigcapital"].faults.add("rate_limit", method="GET", times=1, retry_after=0)
    box["timbrix"].faults.add("error_before", method="POST", times=2, status=503)
    state = tmp_path / "state.db"
    outputs: list[str] = []
    with BackgroundServer(box.app) as server:
        config = tmp_path / "custsync.toml"
        config.write_text(_config(server.url, state), encoding="utf-8")
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("CUSTSYNC_")}
        base_env.update(SECRETS)

        def custsync(*args: str, fmt: str = "json", level: str = "info", **env: str) -> int:
            done = subprocess.run(
                [CUSTSYNC, *args, "-c", str(config)],
                capture_output=True,
                text=True,
                timeout=180,
                env={**base_env, "CUSTSYNC_LOG_FORMAT": fmt, "CUSTSYNC_LOG_LEVEL": level, **env},
                check=False,
            )
            outputs.extend([done.stdout, done.stderr])
            return done.returncode

        codes = [
            custsync("run", "bigcapital_to_thredfi", "--json"),
            custsync("run", "bigcapital_to_thredfi", "--json", level="debug"),
            custsync("run", "thredfi_to_timbrix", fmt="console", level="debug"),
            custsync("run", "thredfi_to_bigcapital", "--json"),
            custsync("run", "piriod_to_bigcapital", "--dry-run", "--json"),
            custsync("run", "piriod_to_thredfi", fmt="console"),
            custsync("run", "thredfi_to_piriod", "--json", PIRIOD_API_TOKEN=WRONG_PIRIOD_TOKEN),
            custsync("retry", "bigcapital_to_thredfi", "--json"),
            custsync("status", "--json"),
            custsync("status"),
            custsync("failures", "bigcapital_to_thredfi", "--json"),
            custsync("failures", "bigcapital_to_thredfi"),
            custsync("check"),
            custsync("check", PIRIOD_API_TOKEN=WRONG_PIRIOD_TOKEN),
        ]
        issued = list(box["thredfi"].tokens)  # type: ignore[attr-defined]

    assert codes[0] in (0, 1), (codes, outputs[:2])
    assert codes[6] == 3, codes
    assert codes[13] == 3, codes
    assert len(issued) >= 2, "tokens were issued (and renewed: they live one second)"
    basic = base64.b64encode(f"{SANDBOX_PARTNER_UUID}:{SECRETS['THREDFI_API_KEY']}".encode()).decode()
    needles = [*SECRETS.values(), WRONG_PIRIOD_TOKEN, basic, *issued]
    text = "\n".join(outputs)
    assert "run_finished" in text, "the outputs searched are the real logs"
    assert "record_quarantined" in text, "the outputs searched are the real logs"
    for needle in needles:
        assert needle not in text, f"a secret ({needle[:4]}...) appears in the output"
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("state.db*"))
    assert b"identities" in stored
    for needle in needles:
        for form in {needle.encode(), needle.encode("utf-16-le")}:
            assert form not in stored, f"a secret ({needle[:4]}...) is in the state database"


def _echoing(app: Any, rules: list[tuple[str, str, int, Any]]) -> Any:
    """The sandbox, except that requests matching a rule get an error body quoting a secret (an API's echo)."""

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            for method, pattern, status, body in rules:
                if scope["method"] == method and re.search(pattern, scope["path"]):
                    await JSONResponse(body, status_code=status)(scope, receive, send)
                    return
        await app(scope, receive, send)

    return wrapped


def test_given_api_error_bodies_quoting_the_configured_keys_when_runs_fail_then_no_output_log_or_row_shows_them(
    tmp_path: Path,
) -> None:
    """9.4: the secret is matched by value wherever it is quoted: --json error, logs, runs, quarantine reasons."""
    bc_key, th_key = SECRETS["BIGCAPITAL_API_KEY"], SECRETS["THREDFI_API_KEY"]
    box = Sandbox(
        emulators={
            "bigcapital": BigcapitalEmulator(api_key=bc_key),
            "thredfi": ThredfiEmulator(api_key=th_key),
            "piriod": PiriodEmulator(api_token=SECRETS["PIRIOD_API_TOKEN"]),
            "timbrix": TimbrixEmulator(api_key=SECRETS["TIMBRIX_API_KEY"]),
        }
    )
    box["bigcapital"].seed_fake(4)
    box["thredfi"].seed_fake(4)
    box["piriod"].seed_fake(4)
    app = _echoing(
        box.app,
        [
            # Thredfi refuses each create, quoting the keys it was given (a record error: quarantine reasons).
            (
                "POST",
                r"^/thredfi/v1/platform/businesses/[^/]+/customers/$",
                400,
                {"details": {"email": [f"key {th_key} may not create; source key {bc_key}"]}},
            ),
            # Bigcapital's listing fails, quoting its key (the run fails: the run's error, --json error).
            ("GET", r"^/bigcapital/api/customers$", 500, {"message": f"internal error for api key {bc_key}"}),
        ],
    )
    state = tmp_path / "state.db"
    outputs: list[str] = []
    with BackgroundServer(app) as server:
        config = tmp_path / "custsync.toml"
        text = _config(server.url, state).replace('system = "bigcapital"', 'system = "bigcapital"\nretry_attempts = 1')
        config.write_text(text, encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith("CUSTSYNC_")} | SECRETS

        def custsync(*args: str, level: str = "debug") -> subprocess.CompletedProcess[str]:
            done = subprocess.run(
                [CUSTSYNC, *args, "-c", str(config)],
                capture_output=True,
                text=True,
                timeout=120,
                env={**env, "CUSTSYNC_LOG_FORMAT": "json", "CUSTSYNC_LOG_LEVEL": level},
                check=False,
            )
            outputs.extend([done.stdout, done.stderr])
            return done

        clean = custsync("run", "thredfi_to_piriod", "--json")  # a clean run first: the searched logs are real
        into_thredfi = custsync("run", "piriod_to_thredfi", "--json")
        failed = custsync("run", "bigcapital_to_piriod", "--json")
        failures = custsync("failures", "piriod_to_thredfi", "--json")
        status = custsync("status", "--json")

    assert clean.returncode in (0, 1), clean.stderr[-2000:]
    assert into_thredfi.returncode == 1, into_thredfi.stderr[-2000:]
    assert failed.returncode == 3, failed.stderr[-2000:]
    run_error = json.loads(failed.stdout.strip().splitlines()[-1])["error"]
    assert "internal error for api key ***" in run_error, "the echo reached custsync, masked"
    reasons = [row["reason"] for row in json.loads(failures.stdout)]
    assert reasons, "the refused creates are quarantined"
    assert all("key *** may not create; source key ***" in r for r in reasons), reasons
    assert "internal error for api key ***" in status.stdout
    text = "\n".join(outputs)
    assert "run_finished" in text, "the outputs searched are the real logs"
    for secret in SECRETS.values():
        assert secret not in text, f"a secret ({secret[:4]}...) appears in the output"
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("state.db*"))
    assert b"quarantine" in stored
    for secret in SECRETS.values():
        for form in {secret.encode(), secret.encode("utf-16-le")}:
            assert form not in stored, f"a secret ({secret[:4]}...) is in the state database"
