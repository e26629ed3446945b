"""Issue 8, done when: Thredfi → Bigcapital against the recorded server's behaviour.

The real server answered 500 to every write custsync made (it sent
``billingAddressZipcode``) and ``backfill --since`` pulled nothing (it never
sets ``created_at``). Here Thredfi customers with postcodes, full addresses,
emoji names and over-long text go into the Bigcapital emulator, which answers
500 exactly where the real server did: every valid customer lands once, every
other one is quarantined naming its field, and not one request is a 500. The
reverse pipeline right after writes nothing, and ``backfill --since`` out of
Bigcapital is refused with exit 2.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, cast

from typer.testing import CliRunner

from sandbox.bigcapital import RECORDED_THROTTLE, BigcapitalEmulator
from sandbox.server import Sandbox, sandbox_config
from state.store import Store
from tests.conftest import SyncFn
from worker import cli
from worker.settings import get_settings


def _thredfi(name: str, email: str, **changes: Any) -> dict[str, Any]:
    person = changes.pop("person", False)
    return {
        "individual_name": name if person else "",
        "company_name": "" if person else name,
        "email": email,
        "office_phone": "+15125550100",
        "mobile_phone": "+15125550199",
        "address_line1": "500 Main St",
        "address_line2": "Suite 200",
        "city": "Austin",
        "state_county": "Texas",
        "postal_code": "78701",
        "country": "US",
        "notes": "Net 30",
        **changes,
    }


VALID = [
    _thredfi("Acme Widgets Inc.", "ap@acme.example"),
    _thredfi("Zoë O'Brien", "zoe@obrien.example", person=True, postal_code="80202", city="Denver"),
    _thredfi(
        "Ñandú Logística S.A.",
        "cxp@nandu.example",
        country="MX",
        postal_code="44100",
        city="Guadalajara",
        state_county="Jalisco",
        address_line2="Col. Americana",
        notes="Factura ✓ — “mensual”",
    ),
    _thredfi(
        "Zürich Tools Ltd",
        "accounts@zurich.example",
        country="GB",
        postal_code="EC2R 8EJ",
        city="London",
        state_county="England",
        address_line1="1 Poultry",
    ),
    _thredfi("Globex Corporation", "billing@globex.example", postal_code="", address_line2="", notes=""),
    _thredfi(
        "Initech 東京",
        "tokyo@initech.example",
        country="JP",
        postal_code="100-0001",
        city="Tokyo",
        state_county="Tokyo",
    ),
]
#: email → the canonical field the quarantine reason must start with.
REFUSED = {
    "party@emoji.example": "name",
    "grin@emoji.example": "name",
    "ops@astral.example": "address_line1",
    "long@notes.example": "notes",
}
INVALID = [
    _thredfi("Party 🎉 Supplies", "party@emoji.example"),
    _thredfi("Grin 😀", "grin@emoji.example", person=True),
    _thredfi("Astral Lines Ltd", "ops@astral.example", address_line1="\U0001d7d9 Main St"),  # MATHEMATICAL 1
    _thredfi("Long Notes Ltd", "long@notes.example", notes="n" * 256),
]


async def test_given_thredfi_customers_when_synced_into_bigcapital_then_valid_land_once_others_quarantined_no_500(
    sandbox: Sandbox, sync: SyncFn, store: Store
) -> None:
    sandbox["thredfi"].seed(VALID + INVALID)
    books = cast(BigcapitalEmulator, sandbox["bigcapital"])
    books.throttle = RECORDED_THROTTLE  # the server's defaults: 10 calls a minute per route

    result = await sync("thredfi_to_bigcapital")

    assert books.server_errors() == [], "no request may make the server answer 500"
    assert result.counts.created == len(VALID), result.summary()
    assert result.counts.failed == len(INVALID)
    landed = Counter(r["email"] for r in books.records.values())
    assert landed == Counter(c["email"] for c in VALID), "every valid customer lands exactly once"
    assert all(r["billing_address_postcode"] is None for r in books.records.values())
    assert all(r["created_at"] is None for r in books.records.values())
    by_email = {r["email"]: r for r in sandbox["thredfi"].records.values()}
    reasons = {q.source_id: q for q in store.quarantined("thredfi_to_bigcapital")}
    for email, field in REFUSED.items():
        entry = reasons[by_email[email]["id"]]
        assert entry.field == field
        assert entry.reason.startswith(f"{field}: "), entry.reason
        assert "🎉" not in entry.reason  # reasons never carry the customer's data
        assert "😀" not in entry.reason
    posts = [r for r in books.requests if r.method == "POST"]
    assert len(posts) == len(VALID), "a refused customer is never sent"
    assert sandbox["thredfi"].writes() == []

    reverse = await sync("bigcapital_to_thredfi")

    assert reverse.status == "succeeded", reverse.summary()
    assert reverse.counts.pulled == len(VALID)
    assert (reverse.counts.created, reverse.counts.updated, reverse.counts.archived) == (0, 0, 0), reverse.summary()
    assert sandbox["thredfi"].writes() == [], "the reverse run writes nothing to Thredfi"
    assert [r for r in books.requests if r.status == 429] == [], "large pages stay within 10 calls per route"
    assert all(r["postal_code"] for r in sandbox["thredfi"].records.values() if r["email"] != "billing@globex.example")
    assert books.server_errors() == []


async def test_given_bigcapital_updated_from_thredfi_when_rerun_then_only_changed_fields_sent_and_no_500(
    sandbox: Sandbox, sync: SyncFn
) -> None:
    (record,) = sandbox["thredfi"].seed([_thredfi("Acme Widgets Inc.", "ap@acme.example")])
    await sync("thredfi_to_bigcapital")
    sandbox["thredfi"].admin_edit(record, {"email": "", "postal_code": "78702", "notes": "Net 45"})

    result = await sync("thredfi_to_bigcapital")

    books = sandbox["bigcapital"]
    assert result.counts.updated == 1, result.summary()
    (stored,) = books.records.values()
    assert stored["email"] is None  # cleared with null: "" is a 400 on an edit
    assert stored["note"] == "Net 45"
    assert stored["billing_address_postcode"] is None
    assert books.server_errors() == []
    assert [r.status for r in books.requests if r.method == "PUT"] == [200]


def test_given_bigcapital_source_when_backfill_since_then_exit_2_with_one_line_reason(tmp_path: Path) -> None:
    config = tmp_path / "custsync.toml"
    # Nothing listens there: the refusal comes before any connection is made.
    config.write_text(sandbox_config("http://127.0.0.1:9", state_url=f"sqlite:///{tmp_path}/s.db"), encoding="utf-8")
    get_settings.cache_clear()

    result = CliRunner().invoke(
        cli.app, ["backfill", "bigcapital_to_thredfi", "--since", "2026-01-01", "--config", str(config)]
    )

    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "bigcapital cannot list customers created since a date" in lines[0]
    assert "created_at" in lines[0]
    assert "Traceback" not in result.output
    assert result.stdout == ""
