"""The pure two-way decisions: which fields were edited, and what a conflict becomes under each rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from connectors.model import Customer
from state import memory
from worker.config import PipelineConfig
from worker.engine.twoway import (
    DIRTY,
    FieldPlan,
    Overwrite,
    conflict_reason,
    edited,
    flowing,
    hashes,
    is_newer,
    reconcile,
    value_hash,
)
from worker.topology import ONE_WAY, Policy, Rules, Topology

OLD, MINE, THEIRS = value_hash("old"), value_hash("mine"), value_hash("theirs")


def plan(rules: Rules, *, held: str, memory_of_target: str | None, newer: bool | None = None) -> FieldPlan:
    """One field edited in the source (old → mine), the target holding ``held``."""
    return reconcile(
        fields={"phone"},
        forced=frozenset(),
        want={"phone": MINE},
        held={"phone": held},
        memory={} if memory_of_target is None else {"phone": memory_of_target},
        rules=rules,
        source="books",
        target="ledger",
        newer=newer,
    )


HOLD = Rules(two_way=True)


def test_a_field_the_target_still_holds_as_last_synced_is_written() -> None:
    assert plan(HOLD, held=OLD, memory_of_target=OLD) == FieldPlan(write=frozenset({"phone"}))


def test_a_field_the_target_already_holds_is_settled_not_written() -> None:
    assert plan(HOLD, held=MINE, memory_of_target=OLD) == FieldPlan(settled=frozenset({"phone"}))


def test_without_a_memory_of_the_target_the_source_value_is_written() -> None:
    assert plan(HOLD, held=THEIRS, memory_of_target=None).write == {"phone"}


@pytest.mark.parametrize(
    ("rules", "newer", "expected"),
    [
        (HOLD, None, FieldPlan(conflicts=("phone",))),
        (
            Rules(True, "source_wins"),
            None,
            FieldPlan(write=frozenset({"phone"}), overwrites=(Overwrite("phone", "conflict_overwritten"),)),
        ),
        (
            Rules(True, "newest_wins"),
            True,
            FieldPlan(write=frozenset({"phone"}), overwrites=(Overwrite("phone", "conflict_overwritten"),)),
        ),
        (Rules(True, "newest_wins"), False, FieldPlan(deferred=frozenset({"phone"}))),
        (Rules(True, "newest_wins"), None, FieldPlan(conflicts=("phone",))),
        (
            Rules(True, "hold", {"phone": "books"}),
            None,
            FieldPlan(write=frozenset({"phone"}), overwrites=(Overwrite("phone", "owned_field_overwritten"),)),
        ),
        (Rules(True, "source_wins", {"phone": "ledger"}), None, FieldPlan(dirty=frozenset({"phone"}))),
    ],
    ids=["hold", "source_wins", "newest_source", "newest_target", "newest_unknown", "owned_here", "owned_there"],
)
def test_a_field_edited_on_both_sides_follows_the_rules(rules: Rules, newer: bool | None, expected: FieldPlan) -> None:
    assert plan(rules, held=THEIRS, memory_of_target=OLD, newer=newer) == expected


def test_an_owned_field_marked_dirty_on_the_other_side_is_written_back_and_logged() -> None:
    found = reconcile(
        fields=set(),
        forced=frozenset({"phone"}),
        want={"phone": MINE},
        held={"phone": THEIRS},
        memory={"phone": DIRTY},
        rules=Rules(True, "hold", {"phone": "books"}),
        source="books",
        target="ledger",
        newer=None,
    )
    assert found == FieldPlan(write=frozenset({"phone"}), overwrites=(Overwrite("phone", "owned_field_overwritten"),))


def test_edited_compares_with_the_memory_and_folded_or_constant_fields_do_not_flow() -> None:
    now = hashes(Customer(kind="company", name="Acme", phone="1"), ["name", "phone", "email"])
    assert edited(now, {"name": now["name"], "phone": value_hash("0")}, now) == {"phone", "email"}
    assert flowing(["kind", "name", "address_line1", "city"], {"kind": "constant", "address_line1": "folded"}) == {
        "name",
        "city",
    }
    assert flowing(["address_line1"], {"address_line1": "derived"}) == {"address_line1"}


def test_empty_text_and_none_hash_alike() -> None:
    assert value_hash("") == value_hash(None) != value_hash(" ")


def test_newer_compares_times_and_knows_when_it_cannot() -> None:
    t = datetime(2026, 1, 1, tzinfo=UTC)
    assert is_newer(t + timedelta(seconds=1), t) is True
    assert is_newer(t, t + timedelta(seconds=1)) is False
    assert is_newer(None, t) is None
    assert is_newer(t.replace(tzinfo=None) + timedelta(hours=1), t) is True


def test_the_reason_names_the_field_and_both_connections_and_no_value() -> None:
    assert (
        conflict_reason("phone", "books", "ledger")
        == "conflict: phone edited in books and in ledger since the last sync"
    )


def test_memory_merges_per_counterpart_and_field_and_survives_garbage() -> None:
    first = memory.merge(None, {"ledger": {"phone": "a", "email": "b"}})
    both = memory.merge(first, {"ledger": {"phone": "c"}, "crm": {"name": "d"}})
    assert memory.parse(both) == {"ledger": {"phone": "c", "email": "b"}, "crm": {"name": "d"}}
    assert memory.parse("not json") == {} == memory.parse("[1]")


def pipe(
    source: str, target: str, conflict: Policy | None = None, owner: dict[str, str] | None = None
) -> PipelineConfig:
    return PipelineConfig(source=source, target=target, conflict=conflict, owner=owner or {})


def test_pairs_and_rings_are_two_way_and_share_their_declaration() -> None:
    topology = Topology(
        {
            "a_b": pipe("a", "b", "source_wins"),
            "b_a": pipe("b", "a"),
            "x_y": pipe("x", "y"),
            "y_z": pipe("y", "z"),
            "z_x": pipe("z", "x", owner={"phone": "z"}),
            "a_q": pipe("a", "q"),
        }
    )
    assert topology.rules("b_a") == Rules(True, "source_wins", {}, "a_b")
    assert topology.rules("y_z") == Rules(True, "hold", {}, None)
    assert topology.rules("z_x").owner == {"phone": "z"}
    assert topology.rules("a_q") is ONE_WAY
    assert topology.problems() == []


def test_a_pair_declaring_two_different_rules_is_a_problem_naming_both() -> None:
    topology = Topology(
        {
            "a_b": pipe("a", "b", "source_wins", {"phone": "a"}),
            "b_a": pipe("b", "a", "hold", {"phone": "b"}),
        }
    )
    problems = topology.problems()
    assert len(problems) == 2
    assert "pipelines.a_b.conflict" in problems[0]
    assert "pipelines.b_a" in problems[0]
    assert "pipelines.a_b.owner" in problems[1]
