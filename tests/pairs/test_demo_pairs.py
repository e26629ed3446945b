"""``custsync demo --source S --target T`` works for any pair, not only the default one."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
import structlog
from rich.console import Console

from connectors.model import CANONICAL_FIELDS
from worker.demo import run_demo

DEMO_PAIRS = [
    ("piriod", "timbrix"),  # the pair the demo itself suggests trying next
    ("timbrix", "bigcapital"),
    ("thredfi", "piriod"),
    ("bigcapital", "thredfi"),
    ("bigcapital", "timbrix"),  # Bigcapital keeps no postcode, which Timbrix requires
    ("thredfi", "timbrix"),
]
#: Piriod holds no colonia or city, and Bigcapital no postcode, which Timbrix requires: those
#: demos show quarantine at work, naming the fields (docs/fidelity.md), exit 1 and say why.
LANDS_NOTHING = {("piriod", "timbrix"): "no city", ("bigcapital", "timbrix"): "no postcode"}


def _counts(output: str, title: str) -> list[int]:
    """The counts row of the table printed under ``title``."""
    lines = output.splitlines()
    start = next(n for n, line in enumerate(lines) if title in line)
    row = next(line for line in lines[start:] if re.search(r"│\s*\d", line))
    return [int(n) for n in re.findall(r"\d+", row)]


@pytest.mark.parametrize(("source", "target"), DEMO_PAIRS, ids=[f"{s}_to_{t}" for s, t in DEMO_PAIRS])
def test_given_pair_when_demo_runs_then_the_headline_matches_the_counts_and_the_exit_code_says_if_most_landed(
    source: str, target: str, tmp_path: Path
) -> None:
    out = io.StringIO()
    console = Console(file=out, width=120, force_terminal=False, color_system=None)

    code = run_demo(source=source, target=target, count=30, workdir=tmp_path, console=console)

    text = out.getvalue()
    # A demo where most customers fail must not pass: it exits 1 (quarantined) and says why.
    assert code == (1 if (source, target) in LANDS_NOTHING else 0), text
    assert f"Syncing {source} → {target}" in text
    first = _counts(text, "First run")
    second = _counts(text, "Second run")
    pulled, created, _updated, _archived, _unchanged, failed = first
    assert pulled > 0, text
    assert created + failed == pulled, text
    if failed:
        assert f"{created} of {pulled} customers land, {failed} quarantined" in text
        assert "every customer lands once" not in text
    else:
        assert "First run: every customer lands once" in text
    if (source, target) in LANDS_NOTHING:
        assert failed == pulled, text
        fault = re.search(r"Fields at fault: (\w+) \((\d+)\)", text)
        assert fault is not None, text
        assert fault.group(1) in CANONICAL_FIELDS, text
        assert "Most customers did not land" in text
        assert LANDS_NOTHING[(source, target)] in text, f"the demo says why {source} → {target} cannot land"
    else:
        assert created > failed, f"the demo must land most customers in {target}:\n{text}"
        assert "Most customers did not land" not in text
    assert second[:2] == [pulled, 0], "the second run pulls them all and creates nothing"
    assert "A third run right away writes nothing" in text
    assert (tmp_path / "custsync.toml").exists()


def test_given_same_source_and_target_when_demo_runs_then_usage_error(tmp_path: Path) -> None:
    out = io.StringIO()
    assert run_demo(source="piriod", target="piriod", count=5, workdir=tmp_path, console=Console(file=out)) == 2
    assert "two different systems" in out.getvalue()


def test_given_a_demo_with_quarantines_then_a_summary_is_shown_not_one_line_per_record(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from worker.logging import configure_logging

    saved = structlog.get_config()
    configure_logging(fmt="json", level="warning")
    out = io.StringIO()
    try:
        code = run_demo(
            source="piriod", target="timbrix", count=20, workdir=tmp_path, console=Console(file=out, width=120)
        )
    finally:
        structlog.configure(**saved)  # a warning-level filter left behind hides info events from later tests
    assert code == 1
    logged = capsys.readouterr().err
    assert "record_quarantined" not in logged, "per-record events are summarised, not printed"
    # Every field of every reason is counted: Piriod lacks both the colonia and the city of each.
    assert re.search(r"Fields at fault: .*address_line2 \(20\)", out.getvalue()), out.getvalue()
    assert re.search(r"Fields at fault: .*city \(20\)", out.getvalue()), out.getvalue()


def test_fields_at_fault_counts_each_field_of_each_reason() -> None:
    from worker.demo import fields_at_fault

    found = fields_at_fault(
        [
            "address_line2: required by timbrix, missing in the source record; city: required by timbrix",
            "tax_id: required by timbrix, missing in the source record",
            "city: required by timbrix; note: not a canonical field: ignored",
        ]
    )
    assert found == {"address_line2": 1, "city": 2, "tax_id": 1}


def test_given_a_relative_workdir_when_demo_runs_then_its_config_points_at_its_own_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``custsync demo`` runs in ``./custsync-demo``: its config must still find the store it wrote."""
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()

    code = run_demo(
        source="bigcapital", target="thredfi", count=5, workdir=Path("custsync-demo"), console=Console(file=out)
    )

    assert code == 0, out.getvalue()
    assert (tmp_path / "custsync-demo" / "state.db").is_file()
    assert not (tmp_path / "custsync-demo" / "custsync-demo").exists()
