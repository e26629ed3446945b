"""``custsync demo --two-way``, run as a user runs it: an edit on each side arrives on the other,
a conflict is held with product.md's reason and then resolved, and a third round writes nothing."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from state.store import Store
from worker.demo_twoway import run_two_way_demo

ROOT = Path(__file__).resolve().parents[2]


def _demo_checks(text: str, first: str, second: str) -> None:
    """What the demo promises, read off its output."""
    assert f"{first} ⇄ {second}" in text
    assert f"A's new phone arrived in {second}, B's arrived in {first}." in text, text
    conflicts = re.findall(r"held: (\S+): conflict: phone edited in (\w+) and in (\w+) since the last sync", text)
    assert {(a, b) for _, a, b in conflicts} == {(first, second), (second, first)}, text
    assert len({external_id for external_id, _, _ in conflicts}) == 1, "one customer, C, edited on both sides"
    assert f"kept {first}'s phone" in text, text
    assert f"C's phone in {second} is now {first}'s." in text, text
    third = re.search(r"Round 3 writes (\S+): (.*)", text)
    assert third is not None, text
    assert third.group(1) == "nothing", text
    assert re.findall(r"(\d+) (?:created|updated)", third.group(2)) == ["0"] * 4, text


def test_given_a_fresh_workdir_when_the_cli_runs_the_two_way_demo_then_it_exits_0_and_tells_each_step(
    tmp_path: Path,
) -> None:
    command = [sys.executable, "-c", "from worker.cli import main; main()", "demo", "--two-way"]
    done = subprocess.run(
        [*command, "--workdir", str(tmp_path)], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    _demo_checks(done.stdout, "bigcapital", "thredfi")
    # The state it leaves is real: the conflict was released by resolve, and the pair is linked.
    store = Store(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        assert store.quarantined("bigcapital_to_thredfi") == []
        assert store.quarantined("thredfi_to_bigcapital") == []
        assert len(store.links_of("thredfi")) >= 3
    finally:
        store.close()


@pytest.mark.parametrize(("first", "second"), [("bigcapital", "piriod"), ("timbrix", "bigcapital")])
def test_given_a_lossy_pair_when_the_two_way_demo_runs_then_the_same_story_holds_and_other_failures_are_summed(
    first: str, second: str, tmp_path: Path
) -> None:
    out = io.StringIO()
    console = Console(file=out, width=200, force_terminal=False, color_system=None)

    code = run_two_way_demo(first=first, second=second, count=50, workdir=tmp_path, console=console)

    text = out.getvalue()
    assert code == 0, text
    _demo_checks(text, first, second)
    held = [line for line in text.splitlines() if line.strip().startswith("held:")]
    assert all("conflict:" in line for line in held), "validation failures are counted, not listed one per line"
    if first == "bigcapital" and second == "piriod":  # Piriod requires a tax id for CL customers
        assert re.search(r"\((\d+) other customers are quarantined .*custsync failures bigcapital_to_piriod", text)


def test_given_the_same_system_twice_when_the_two_way_demo_runs_then_usage_error(tmp_path: Path) -> None:
    out = io.StringIO()
    code = run_two_way_demo(first="thredfi", second="thredfi", count=5, workdir=tmp_path, console=Console(file=out))
    assert code == 2
    assert "two different systems" in out.getvalue()
