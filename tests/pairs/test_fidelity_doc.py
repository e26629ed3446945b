"""docs/fidelity.md cannot drift: its checked tables are compared with the connectors."""

from __future__ import annotations

from collections.abc import Mapping
from itertools import combinations
from pathlib import Path

import pytest

from connectors import REGISTRY
from connectors.model import CANONICAL_FIELDS
from connectors.registry import systems
from connectors.spec import TargetSpec

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


# -- per pair: what round-trips exactly ------------------------------------------------------------

PER_PAIR = "## Per pair: what round-trips exactly"
PER_PAIR_HEADER = ["pair", "exact both ways", "lossy (system: how)", "kept by one side only"]


def compared(spec: TargetSpec) -> frozenset[str]:
    """The fields a round trip is judged on: those kept, ``kind`` and ``name``."""
    return spec.fields | {"kind", "name"}


def pair_row(a: str, b: str, specs: Mapping[str, TargetSpec]) -> list[str]:
    """One row of the per-pair table, from the two systems' specs."""
    both = compared(specs[a]) & compared(specs[b])
    exact = sorted(f for f in both if f in specs[a].exact and f in specs[b].exact)
    lossy = [
        f"{f} ({', '.join(f'{s}: {specs[s].lossy[f]}' for s in (a, b) if f in specs[s].lossy)})"
        for f in sorted(both - set(exact))
    ]
    alone = [
        f"{s}: {', '.join(sorted(compared(specs[s]) - compared(specs[o])))}"
        for s, o in ((a, b), (b, a))
        if compared(specs[s]) - compared(specs[o])
    ]
    return [f"{a} ⇄ {b}", ", ".join(exact) or NOT_KEPT, ", ".join(lossy) or NOT_KEPT, "; ".join(alone) or NOT_KEPT]


def per_pair_table(specs: Mapping[str, TargetSpec]) -> list[list[str]]:
    """The per-pair table (header first): every unordered pair of the systems, in registry order."""
    order = list(specs)
    return [PER_PAIR_HEADER, *(pair_row(a, b, specs) for a, b in combinations(order, 2))]


def render(rows: list[list[str]]) -> str:
    """The table as markdown, as docs/fidelity.md holds it."""
    lines = [f"| {' | '.join(row)} |" for row in rows]
    return "\n".join([lines[0], "|" + "---|" * len(rows[0]), *lines[1:]])


def test_given_per_pair_table_when_regenerated_from_the_specs_then_the_doc_holds_it() -> None:
    specs = {name: system.connector.spec for name, system in systems().items()}
    expected = per_pair_table(specs)

    documented = table_after(PER_PAIR, DOC.read_text(encoding="utf-8"))

    assert documented == expected, "docs/fidelity.md is out of date; the section should read:\n" + render(expected)


def test_given_pair_row_when_one_side_is_lossy_or_keeps_more_then_the_row_says_which_and_how() -> None:
    a = TargetSpec(fields=frozenset({"email", "address_line1", "notes"}), lossy={"kind": "constant"})
    b = TargetSpec(fields=frozenset({"email", "address_line1", "city"}), lossy={"address_line1": "derived"})

    row = pair_row("a", "b", {"a": a, "b": b})

    assert row == [
        "a ⇄ b",
        "email, name",
        "address_line1 (b: derived), kind (a: constant)",
        "a: notes; b: city",
    ]
