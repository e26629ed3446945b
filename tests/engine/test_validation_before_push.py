"""Issue 13.2: what a target refuses is refused before any request, naming the field.

Every target that validates e-mails declares it (``TargetSpec.checks``), and
``Connector.problems`` runs ``email-validator`` on the shaped record: a bad
e-mail never reaches Thredfi, Piriod or Timbrix, and the record is quarantined
with a reason naming ``email`` (never the value).
"""

from __future__ import annotations

import pytest

from connectors.checks import email, phone, url
from sandbox.server import Sandbox
from state.store import Store
from tests.conftest import SyncFn

SQLITE_ONLY = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)  # the store plays no part here

BAD_EMAILS = ["not-an-email", "two@@example.com", "trailing-dot@example.com.", "spaces in@example.com"]


@SQLITE_ONLY
@pytest.mark.parametrize("bad", BAD_EMAILS)
async def test_given_invalid_email_when_synced_to_thredfi_then_no_request_and_quarantined_naming_email(
    sandbox: Sandbox, sync: SyncFn, store: Store, bad: str
) -> None:
    (victim,) = sandbox["bigcapital"].seed_fake(1)
    sandbox["bigcapital"].admin_edit(victim, {"email": bad})

    result = await sync("bigcapital_to_thredfi")

    assert sandbox["thredfi"].writes() == [], "the bad record is never sent"
    assert [r for r in sandbox["thredfi"].requests if "/customers/" in r.path and r.method != "GET"] == []
    assert (result.status, result.counts.failed) == ("partial", 1)
    (entry,) = store.quarantined("bigcapital_to_thredfi")
    assert entry.field == "email"
    assert "email" in entry.reason
    assert "thredfi" in entry.reason
    assert bad not in entry.reason, "a reason carries no customer data"


@SQLITE_ONLY
@pytest.mark.parametrize("target", ["piriod", "timbrix"])
async def test_given_invalid_email_when_synced_to_piriod_or_timbrix_then_no_write_and_quarantined(
    sandbox: Sandbox, sync: SyncFn, store: Store, target: str
) -> None:
    (victim,) = sandbox["thredfi"].seed_fake(1)
    victim["email"] = "not-an-email"  # the web app stored what its API would refuse today

    result = await sync(f"thredfi_to_{target}")

    assert sandbox[target].writes() == []
    (entry,) = store.quarantined(f"thredfi_to_{target}")
    assert result.counts.failed == 1
    assert "email:" in entry.reason
    assert target in entry.reason


@SQLITE_ONLY
async def test_given_website_without_scheme_when_synced_to_piriod_then_quarantined_naming_website(
    sandbox: Sandbox, sync: SyncFn, store: Store
) -> None:
    (victim,) = sandbox["bigcapital"].seed_fake(1)
    sandbox["bigcapital"].admin_edit(victim, {"website": "www.example.com"})  # Piriod's URLField refuses it

    result = await sync("bigcapital_to_piriod")

    assert sandbox["piriod"].writes() == []
    assert result.counts.failed == 1
    (entry,) = store.quarantined("bigcapital_to_piriod")
    assert entry.field == "website"
    assert "www.example.com" not in entry.reason


def test_checks_accept_what_the_targets_accept_and_name_what_they_need() -> None:
    assert email("ana@example.com") is None
    assert email("ana@example") == "a valid e-mail address"
    assert url("https://example.com/a") is None
    assert url("example.com") == "an absolute http(s) URL"
    assert phone("+56 2 2345 6789") is None
    assert phone("55 1234 5678") is None  # a Mexican national number
    assert phone("12") == "a phone number"
