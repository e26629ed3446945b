"""The Bigcapital emulator answers every recorded exchange as the real server did.

``tests/fixtures/bigcapital/recorded_exchanges.json`` holds the facts of each
exchange in ``recordings/bigcapital/real-server-exchanges.md``, in order and
grouped by the server run they were recorded in. Each group is replayed on a
fresh emulator: its setup steps (what the web app, bulk inserts or SQL did
between the recorded calls) go through the emulator's own seeding, and each
exchange is sent over HTTP and compared on

- the status;
- the rate-limit headers: limits and remaining counts exactly (the throttle
  counts per route, as the server's does), resets present, and the headers a
  429 leaves out (``Retry-After``, ``X-RateLimit-*-auth``) absent;
- error bodies exactly, an empty body where the server sent none;
- success bodies by shape (every key at every level, and each value's type)
  and by the recorded values the fixture lists as facts.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandbox.bigcapital import SANDBOX_API_KEY, SANDBOX_JWT, BigcapitalEmulator, Throttle

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "bigcapital" / "recorded_exchanges.json"
RECORDED = json.loads(FIXTURE.read_text(encoding="utf-8"))
GROUPS = RECORDED["groups"]
AUTH = {
    "api_key": {"Authorization": f"Bearer {SANDBOX_API_KEY}"},
    "jwt": {"Authorization": f"Bearer {SANDBOX_JWT}"},
    "unknown_key": {"Authorization": "Bearer bc_" + "f" * 96},
    "none": {},
}


class Clock:
    """Monotonic seconds the replay moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    return {int: "int", float: "float", str: "str"}.get(type(value), type(value).__name__)


def shape_differences(expected: Any, got: Any, where: str = "body") -> list[str]:
    """Where ``got`` differs from the recorded skeleton (keys at every level, value types)."""
    if isinstance(expected, dict):
        if not isinstance(got, dict):
            return [f"{where}: an object was recorded, got {type_name(got)}"]
        found = []
        if missing := sorted(set(expected) - set(got)):
            found.append(f"{where}: keys missing {missing}")
        if extra := sorted(set(got) - set(expected)):
            found.append(f"{where}: keys not recorded {extra}")
        for key in sorted(set(expected) & set(got)):
            found += shape_differences(expected[key], got[key], f"{where}.{key}")
        return found
    if isinstance(expected, list):
        if not isinstance(got, list):
            return [f"{where}: an array was recorded, got {type_name(got)}"]
        if len(got) != len(expected):
            return [f"{where}: {len(expected)} items recorded, got {len(got)}"]
        return [
            d
            for n, (e, g) in enumerate(zip(expected, got, strict=True))
            for d in shape_differences(e, g, f"{where}[{n}]")
        ]
    return [] if type_name(got) == expected else [f"{where}: {expected} recorded, got {type_name(got)}"]


def fact(body: Any, path: str) -> Any:
    """A value by dotted path: ``pagination``, ``customers[0].email``, ``customers[].id``."""
    head, _, rest = path.partition(".")
    if head.endswith("[]"):
        return [fact(item, rest) for item in body[head[:-2]]]
    if head.endswith("]"):
        name, _, index = head[:-1].partition("[")
        value = body[name][int(index)]
    else:
        value = body[head]
    return fact(value, rest) if rest else value


def differences(exchange: dict[str, Any], response: httpx.Response) -> list[str]:
    found: list[str] = []
    if response.status_code != exchange["status"]:
        found.append(f"status {response.status_code}, recorded {exchange['status']}")
    for name, value in exchange["rate_limit"].items():
        if response.headers.get(name) != value:
            found.append(f"{name}: {response.headers.get(name)!r}, recorded {value!r}")
    for name in exchange["rate_limit_reset"]:
        reset = response.headers.get(name, "")
        if not reset.isdigit() or not 0 <= int(reset) <= 60:
            found.append(f"{name}: {reset!r}, recorded seconds up to 60")
    found += [f"{name} sent, not recorded" for name in exchange["headers_absent"] if name in response.headers]
    if "retry_after_auth" in exchange and response.headers.get("Retry-After-auth") != exchange["retry_after_auth"]:
        found.append(f"Retry-After-auth: {response.headers.get('Retry-After-auth')!r}")
    if exchange.get("body_empty"):
        if response.content:
            found.append("a body was sent where the server sent none")
        return found
    try:
        body = response.json()
    except ValueError:
        return [*found, "the body is not JSON"]
    if "body_equals" in exchange and body != exchange["body_equals"]:
        found.append(f"body {body!r}, recorded {exchange['body_equals']!r}")
    if "body_shape" in exchange:
        found += shape_differences(exchange["body_shape"], body)
    for path, value in exchange.get("facts", {}).items():
        try:
            got = fact(body, path)
        except (KeyError, IndexError, TypeError):
            got = "<absent>"
        if got != value:
            found.append(f"{path}: {got!r}, recorded {value!r}")
    return found


@pytest.fixture(params=GROUPS, ids=[g["name"].split(",")[0] for g in GROUPS])
def group(request: pytest.FixtureRequest) -> dict[str, Any]:
    return dict(request.param)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def emu(group: dict[str, Any], clock: Clock) -> BigcapitalEmulator:
    throttle = Throttle(**RECORDED["throttles"][group["throttle"]])
    return BigcapitalEmulator(organization_id=RECORDED["organization_id"], throttle=throttle, clock=clock)


@pytest.fixture
async def client(emu: BigcapitalEmulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=emu.app), base_url="http://bigcapital.test") as http:
        yield http


async def test_given_recorded_server_run_when_replayed_then_every_answer_matches_the_recording(
    group: dict[str, Any], emu: BigcapitalEmulator, client: httpx.AsyncClient, clock: Clock
) -> None:
    report: list[str] = []
    replayed = 0
    for step in group["steps"]:
        if "seed" in step:
            emu.seed(step["seed"])
        elif "delete" in step:
            for remote_id in step["delete"]:
                del emu.records[remote_id]
        elif "edit" in step:
            for remote_id, changes in step["edit"].items():
                emu.admin_edit(emu.records[remote_id], changes)
        elif "advance_clock_s" in step:
            clock.now += step["advance_clock_s"]
        else:
            exchange = step["exchange"]
            url = exchange["path"] + (f"?{exchange['query']}" if exchange["query"] else "")
            headers = {**AUTH[exchange["auth"]], **exchange.get("headers", {})}
            content = json.dumps(exchange["body"]).encode() if "body" in exchange else None
            if content is not None:
                headers["Content-Type"] = "application/json"
            response = await client.request(exchange["method"], url, content=content, headers=headers)
            report += [f"{exchange['title']}: {d}" for d in differences(exchange, response)]
            replayed += 1

    assert replayed > 0
    assert report == [], "\n".join(report)


def test_given_fixture_then_it_holds_every_recorded_exchange_once() -> None:
    titles = [s["exchange"]["title"] for g in GROUPS for s in g["steps"] if "exchange" in s]
    # 60 exchanges under 60 headings in the recordings; none is skipped (the JWT and SQL-set
    # timestamp ones are set up through the emulator's sandbox JWT and admin edits).
    assert len(titles) == 60
    assert len(set(titles)) == len(titles)
    assert RECORDED["skipped"] == []


def test_given_shape_comparison_then_it_catches_extra_missing_and_retyped_keys() -> None:
    recorded = {"customers": [{"id": "int", "email": "null"}], "pagination": {"total": "int"}}
    two = {"customers": [{"id": 1, "email": None}, {"id": 2, "email": None}], "pagination": {"total": 2}}

    assert shape_differences(recorded, {"customers": [{"id": 1, "email": None}], "pagination": {"total": 1}}) == []
    assert shape_differences(recorded, {"customers": [{"id": 1}], "pagination": {"total": 1}}) != []
    assert shape_differences(recorded, {"customers": [{"id": 1, "email": None, "x": 1}], "pagination": {"total": 1}})
    assert shape_differences(recorded, {"customers": [{"id": "1", "email": None}], "pagination": {"total": 1}})
    assert shape_differences(recorded, {"customers": [], "pagination": {"total": 0}})
    assert shape_differences(recorded, two)
