"""docs/fidelity.md cannot drift: its checked tables are compared with the connectors."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors import REGISTRY
from connectors.model import CANONICAL_FIELDS

DOC = Path(__file__).resolve().parents[2] / "docs" / "fidelity.md"
KEPT, NOT_KEPT = "✓", "\N{EN DASH}"


def table_after(heading: str, text: str) -> list[list[str]]:
    """The rows (header first, separator dropped) of the first table under ``heading``."""
    lines = text.splitlines()
    try:
        start = lines.index(heading)
    except ValueError:
        pytest.fail(f"{DOC.name} has no {heading!r} section")
    rows: list[list[str]] = []
    for line in lines[start + 1 :]:
        if line.startswith("## "):
            break
        if line.startswith("|"):
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
        elif rows:
            break
    assert len(rows) > 2, f"no table under {heading!r}"
    return [rows[0], *rows[2:]]


def listed(cell: str) -> set[str]:
    return set() if cell == NOT_KEPT else {name.strip() for name in cell.split(",")}


def fields_kept() -> dict[str, set[str]]:
    """system → the fields the doc marks ✓ (``active`` included)."""
    header, *rows = table_after("## Fields kept", DOC.read_text(encoding="utf-8"))
    assert header[0] == "field"
    systems = header[1:]
    assert sorted(systems) == sorted(REGISTRY), "one column per registered connector"
    assert sorted(row[0] for row in rows) == sorted(set(CANONICAL_FIELDS) - {"kind"}), "one row per field"
    kept: dict[str, set[str]] = {system: set() for system in systems}
    for field, *cells in rows:
        assert len(cells) == len(systems), field
        for system, cell in zip(systems, cells, strict=True):
            assert cell in (KEPT, NOT_KEPT), f"{field} / {system}: {cell!r}"
            if cell == KEPT:
                kept[system].add(field)
    return kept


@pytest.mark.parametrize("system", sorted(REGISTRY))
def test_given_fields_kept_table_when_compared_then_it_equals_the_connector_spec(system: str) -> None:
    documented = fields_kept()[system]
    spec = REGISTRY[system].spec

    assert documented - {"active"} == set(spec.fields) | {"name"}
    assert ("active" in documented) is spec.archive


def test_given_pairs_table_when_compared_then_carried_and_lost_fields_match_the_specs() -> None:
    header, *rows = table_after("## Pairs", DOC.read_text(encoding="utf-8"))
    assert header[:3] == ["pair", "carried", "not kept by the target"]
    documented: dict[tuple[str, str], tuple[set[str], set[str]]] = {}
    for pair, carried, lost, *_ in rows:
        source, target = (part.strip() for part in pair.split("→"))
        documented[(source, target)] = (listed(carried), listed(lost))
    assert sorted(documented) == sorted((s, t) for s in REGISTRY for t in REGISTRY if s != t)
    for (source, target), (carried_doc, lost_doc) in documented.items():
        kept_by_source = REGISTRY[source].spec.fields | {"name"}
        kept_by_target = REGISTRY[target].spec.fields | {"name"}
        assert carried_doc == kept_by_source & kept_by_target, f"{source} → {target} carried"
        assert lost_doc == kept_by_source - kept_by_target, f"{source} → {target} not kept"
