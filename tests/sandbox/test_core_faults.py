"""The write faults every emulator shares: ``drop_field`` and ``kill`` (sandbox/_core.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from sandbox.piriod import SANDBOX_API_TOKEN, SANDBOX_WORKSPACE
from sandbox.server import Sandbox, parse_fault
from sandbox.thredfi import SANDBOX_API_KEY, SANDBOX_BUSINESS_ID, SANDBOX_PARTNER_UUID

THREDFI = "http://sandbox.test/thredfi"
TOKEN = "/v1/platform/oauth2/token/"
CUSTOMERS = f"/v1/platform/businesses/{SANDBOX_BUSINESS_ID}/customers/"
PIRIOD_HEADERS = {"Authorization": f"Token {SANDBOX_API_TOKEN}", "x-simple-workspace": SANDBOX_WORKSPACE}


@asynccontextmanager
async def _thredfi(box: Sandbox) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=box.app), base_url=THREDFI) as http:
        grant = {"grant_type": "client_credentials"}
        partner = await http.post(TOKEN, auth=(SANDBOX_PARTNER_UUID, SANDBOX_API_KEY), data=grant)
        scoped = await http.post(
            f"/v1/platform/{SANDBOX_BUSINESS_ID}/oauth2/token/",
            headers={"Authorization": f"Bearer {partner.json()['access_token']}"},
        )
        http.headers["Authorization"] = f"Bearer {scoped.json()['access_token']}"
        yield http


async def test_given_drop_field_on_a_canonical_name_when_created_then_the_vendor_field_is_lost_silently() -> None:
    box = Sandbox()
    rule = box["thredfi"].faults.add("drop_field", field="phone", times=None)
    async with _thredfi(box) as http:
        created = await http.post(
            CUSTOMERS,
            json={"company_name": "Acme", "office_phone": "+44 20 7946 0000", "mobile_phone": "+44 7700 900000"},
        )
        updated = await http.patch(f"{CUSTOMERS}{created.json()['id']}/", json={"office_phone": "+44 1"})
        listed = await http.get(CUSTOMERS)

    assert created.status_code == 201, "the write succeeds: the loss is silent"
    assert created.json()["office_phone"] == ""
    assert created.json()["mobile_phone"] == "+44 7700 900000", "only the named field is lost"
    assert updated.status_code == 200
    assert updated.json()["office_phone"] == ""
    assert rule.fired == 2, "reads and token requests do not consume the rule"
    assert listed.status_code == 200


async def test_given_drop_field_on_a_nested_key_when_patched_then_the_rest_of_the_object_is_kept() -> None:
    box = Sandbox()
    box["piriod"].faults.add("drop_field", field="notes")
    transport = httpx.ASGITransport(app=box.app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://sandbox.test/piriod", headers=PIRIOD_HEADERS
    ) as http:
        body = {
            "name": "Acme",
            "address": "Calle 1",
            "country": "US",
            "metadata": {"external_id": "x:y:1", "notes": "VIP"},
        }
        created = await http.post("/customers/", json=body)

    assert created.status_code == 201
    assert created.json()["metadata"] == {"external_id": "x:y:1"}


async def test_given_drop_field_and_an_error_after_on_the_same_write_then_both_apply() -> None:
    box = Sandbox()
    box["thredfi"].faults.add("drop_field", field="email")
    box["thredfi"].faults.add("error_after", method="POST", path="/customers/$")
    async with _thredfi(box) as http:
        answer = await http.post(CUSTOMERS, json={"company_name": "Acme", "email": "a@example.com"})

    assert answer.status_code == 500
    (stored,) = box["thredfi"].records.values()
    assert stored["email"] == ""


async def test_given_a_kill_fault_when_the_matching_write_is_applied_then_the_process_is_killed_unanswered() -> None:
    box = Sandbox()
    emulator = box["thredfi"]
    kills: list[int] = []
    emulator.kill = lambda: kills.append(len(emulator.records))  # in process: record, never SIGKILL
    emulator.faults.add("kill", skip=1, times=None)
    async with _thredfi(box) as http:
        first = await http.post(CUSTOMERS, json={"company_name": "One"})
        with pytest.raises(httpx.ReadError):
            await http.post(CUSTOMERS, json={"company_name": "Two"})

    assert first.status_code == 201
    assert kills == [2], "killed once the second write was applied, before answering it"


def test_given_kill_after_writes_option_when_the_count_is_reached_then_kill_is_called() -> None:
    box = Sandbox()
    emulator = box["timbrix"]
    emulator.kill_after_writes = 2
    kills: list[int] = []
    emulator.kill = lambda: kills.append(emulator.write_count)
    emulator.count_write()
    assert kills == []
    emulator.count_write()
    assert kills == [2]


def test_given_a_drop_field_fault_without_a_field_then_refused() -> None:
    with pytest.raises(ValueError, match="field"):
        Sandbox()["thredfi"].faults.add("drop_field")
    assert parse_fault("piriod:drop_field:field=metadata.notes")[2] == {"times": None, "field": "metadata.notes"}


async def test_given_a_bad_fault_posted_to_the_admin_surface_then_400_and_no_rule() -> None:
    box = Sandbox()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=box.app), base_url=THREDFI) as http:
        answer = await http.post("/_admin/faults", json={"kind": "drop_field"})
    assert answer.status_code == 400
    assert "field" in answer.json()["detail"]
    assert box["thredfi"].faults.rules == []
