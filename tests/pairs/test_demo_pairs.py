"""``custsync demo --source S --target T`` works for any pair, not only the default one."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from rich.console import Console

from connectors.model import CANONICAL_FIELDS
from worker.demo import run_demo

DEMO_PAIRS = [
    ("piriod", "timbrix"),  # the pair the demo itself suggests trying next
    ("timbrix", "bigcapital"),
    ("thredfi", "piriod"),
    ("bigcapital", "thredfi"),
]
#: Piriod holds no colonia, city, régimen or uso CFDI, all of which Timbrix requires:
#: that demo shows quarantine at work, naming the fields (docs/fidelity.md).
LANDS_NOTHING = {("piriod", "timbrix")}


def _counts(output: str, title: str) -> list[int]:
    """The counts row of the table printed under ``title``."""
    lines = output.splitlines()
    start = next(n for n, line in enumerate(lines) if title in line)
    row = next(line for line in lines[start:] if re.search(r"│\s*\d", line))
    return [int(n) for n in re.findall(r"\d+", row)]


@pytest.mark.parametrize(("source", "target"), DEMO_PAIRS, ids=[f"{s}_to_{t}" for s, t in DEMO_PAIRS])
def test_given_pair_when_demo_runs_then_exit_0_and_both_runs_are_shown(
    source: str, target: str, tmp_path: Path
) -> None:
    out = io.StringIO()
    console = Console(file=out, width=120, force_terminal=False, color_system=None)

    code = run_demo(source=source, target=target, count=30, workdir=tmp_path, console=console)

    text = out.getvalue()
    assert code == 0, text
    assert f"Syncing {source} → {target}" in text
    first = _counts(text, "First run")
    second = _counts(text, "Second run")
    pulled, created, _updated, _archived, _unchanged, failed = first
    assert pulled > 0, text
    assert created + failed == pulled, text
    if (source, target) in LANDS_NOTHING:
        assert failed == pulled, text
        fault = re.search(r"Fields at fault: (\w+) \((\d+)\)", text)
        assert fault is not None, text
        assert fault.group(1) in CANONICAL_FIELDS, text
    else:
        assert created > 0, f"the demo must land something in {target}:\n{text}"
    assert second[:2] == [pulled, 0], "the second run pulls them all and creates nothing"
    assert "A third run right away writes nothing" in text
    assert (tmp_path / "custsync.toml").exists()


def test_given_same_source_and_target_when_demo_runs_then_usage_error(tmp_path: Path) -> None:
    out = io.StringIO()
    assert run_demo(source="piriod", target="piriod", count=5, workdir=tmp_path, console=Console(file=out)) == 2
    assert "two different systems" in out.getvalue()
