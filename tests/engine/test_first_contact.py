"""First contact, pure: a source with no memory of its target meets a record that differs.

No memory of each other says which side was edited, so the decision per field
(:func:`worker.engine.twoway.first_contact`) rests on what each value is: an
empty one is filled, a lossy one adopted, and two values are told apart by the
sides' memories of *other* connections (a value as its side last synced it
elsewhere is not an edit). The plan (:func:`worker.engine.plan.plan_page`) gives
the record its :class:`~worker.engine.twoway.FirstContact` from both links.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from connectors.model import Customer, RemoteCustomer
from state.models import Link
from tests.conftest import make_config
from worker.engine.outcomes import Prepared, Sides, Unchanged, Write
from worker.engine.plan import PlanContext, Snapshot, plan_page
from worker.engine.twoway import (
    EMPTY,
    FieldPlan,
    FirstContact,
    Overwrite,
    first_contact,
    hashes,
    reconcile,
    value_hash,
)
from worker.runner import build_connector
from worker.topology import Policy, Rules

MINE, THEIRS = value_hash("mine"), value_hash("theirs")
#: notes exact on both sides, nothing known of either value beyond that.
BLIND = FirstContact(exact=frozenset({"notes"}))


def decide(want: str, held: str, contact: FirstContact = BLIND) -> str:
    return first_contact("notes", {"notes": want}, {"notes": held}, contact)


def test_a_lossy_value_is_adopted_whatever_the_other_side_holds() -> None:
    assert decide(MINE, EMPTY, FirstContact()) == "adopt"
    assert decide(EMPTY, THEIRS, FirstContact()) == "adopt"


def test_an_empty_side_is_filled_from_the_other_one() -> None:
    assert decide(MINE, EMPTY) == "write"
    assert decide(EMPTY, THEIRS) == "back"
    assert first_contact("notes", {"notes": MINE}, {}, BLIND) == "write"  # a field the target gave no value


@pytest.mark.parametrize(
    ("unedited", "held_before", "expected"),
    [
        (True, True, "adopt"),  # each as last synced elsewhere: a rendering on the way, not an edit
        (True, False, "back"),  # only the target's value was edited since
        (False, True, "write"),  # only the source's value was edited since
        (False, False, "conflict"),  # both, or nothing says
    ],
)
def test_two_values_are_told_apart_by_the_memories_of_other_connections(
    unedited: bool, held_before: bool, expected: str
) -> None:
    contact = FirstContact(
        exact=frozenset({"notes"}),
        unedited=frozenset({"notes"}) if unedited else frozenset(),
        held_before={"notes": frozenset({THEIRS if held_before else value_hash("older")})},
    )
    assert decide(MINE, THEIRS, contact) == expected


def test_within_keeps_the_fields_exact_on_the_other_side_too() -> None:
    contact = FirstContact(exact=frozenset({"notes", "city"}), unedited=frozenset({"city"}))
    assert contact.within(frozenset({"notes", "phone"})) == FirstContact(frozenset({"notes"}), frozenset({"city"}))


def first(rules: Rules, want: str, held: str, *, newer: bool | None = None, forced: bool = False) -> FieldPlan:
    """One field at first contact of books → ledger, nothing known beyond the two values."""
    return reconcile(
        fields={"notes"},
        forced=frozenset({"notes"}) if forced else frozenset(),
        want={"notes": want},
        held={"notes": held},
        memory={},
        rules=rules,
        source="books",
        target="ledger",
        newer=newer,
        first=BLIND,
    )


HOLD = Rules(two_way=True)


def test_at_first_contact_equal_values_settle_a_fill_is_written_and_the_other_way_goes_back() -> None:
    assert first(HOLD, MINE, MINE) == FieldPlan(settled=frozenset({"notes"}))
    assert first(HOLD, MINE, EMPTY) == FieldPlan(write=frozenset({"notes"}))
    assert first(HOLD, EMPTY, THEIRS) == FieldPlan(back=frozenset({"notes"}))


def test_at_first_contact_a_lossy_field_is_adopted() -> None:
    found = reconcile(
        fields={"currency"},
        forced=frozenset(),
        want={"currency": EMPTY},
        held={"currency": THEIRS},
        memory={},
        rules=HOLD,
        source="books",
        target="ledger",
        newer=None,
        first=BLIND,
    )
    assert found == FieldPlan(settled=frozenset({"currency"}))


@pytest.mark.parametrize(
    ("policy", "newer", "expected"),
    [
        ("hold", None, FieldPlan(conflicts=("notes",))),
        (
            "source_wins",
            None,
            FieldPlan(write=frozenset({"notes"}), overwrites=(Overwrite("notes", "conflict_overwritten"),)),
        ),
        (
            "newest_wins",
            True,
            FieldPlan(write=frozenset({"notes"}), overwrites=(Overwrite("notes", "conflict_overwritten"),)),
        ),
        ("newest_wins", False, FieldPlan(back=frozenset({"notes"}))),  # the target's value is to reach the source
        ("newest_wins", None, FieldPlan(conflicts=("notes",))),
    ],
)
def test_at_first_contact_two_values_nothing_tells_apart_are_a_conflict_under_the_policy(
    policy: Policy, newer: bool | None, expected: FieldPlan
) -> None:
    assert first(Rules(True, policy), MINE, THEIRS, newer=newer) == expected


def test_at_first_contact_an_owner_settles_a_conflict_and_is_never_filled_by_the_other_side() -> None:
    books, ledger = Rules(True, "hold", {"notes": "books"}), Rules(True, "hold", {"notes": "ledger"})
    assert first(books, MINE, THEIRS) == FieldPlan(
        write=frozenset({"notes"}), overwrites=(Overwrite("notes", "owned_field_overwritten"),)
    )
    assert first(ledger, MINE, THEIRS) == FieldPlan(dirty=frozenset({"notes"}))
    # an owner's empty field stays empty: adopted, whichever side runs
    assert first(ledger, MINE, EMPTY) == FieldPlan(settled=frozenset({"notes"}))
    assert first(books, EMPTY, THEIRS) == FieldPlan(settled=frozenset({"notes"}))
    # the owner's value reaches the other side
    assert first(books, MINE, EMPTY) == FieldPlan(write=frozenset({"notes"}))
    assert first(ledger, EMPTY, THEIRS) == FieldPlan(back=frozenset({"notes"}))


def test_at_first_contact_an_owned_field_marked_dirty_is_written_back_as_always() -> None:
    owned = Rules(True, "hold", {"notes": "books"})
    assert first(owned, MINE, THEIRS, forced=True) == FieldPlan(
        write=frozenset({"notes"}), overwrites=(Overwrite("notes", "owned_field_overwritten"),)
    )


# -- the plan gives a record its first contact ------------------------------------------------------

CONFIG = make_config("sqlite://")
SOURCE = build_connector(CONFIG, "bigcapital")  # mapping only, no HTTP
TARGET = build_connector(CONFIG, "thredfi")
KEPT = frozenset((SOURCE.spec.fields & TARGET.spec.fields) | {"kind", "name"})
ACME = Customer(name="Acme Ltd", company_name="Acme Ltd", email="ap@acme.example", phone="+15125550100", notes="Net 30")


def context(**options: Any) -> PlanContext:
    """bigcapital → thredfi, a pipeline of a pair."""
    values: dict[str, Any] = {
        "kept": KEPT,
        "shape": TARGET.shape,
        "problems": TARGET.problems,
        "external_id_for": SOURCE.external_id_for,
        "source_system": SOURCE.system,
        "archive": True,
        "target_archives": TARGET.spec.archive,
        "rules": Rules(True, "hold", {}, "thredfi_to_bigcapital"),
        "source_name": "bigcapital",
        "target_name": "thredfi",
        "source_lossy": SOURCE.spec.lossy,
    }
    values.update(options)
    return PlanContext(**values)


def sides_of(customer: Customer, source_memory: dict[str, Any], target_memory: dict[str, Any], **options: Any) -> Sides:
    snapshot = Snapshot(
        source_links={
            "7": Link(identity_id=1, connection="bigcapital", remote_id="7", memory=json.dumps(source_memory))
        },
        external_ids={1: "bigcapital:org:7"},
        target_links={1: Link(identity_id=1, connection="thredfi", remote_id="t1", memory=json.dumps(target_memory))},
    )
    outcome = plan_page([RemoteCustomer("7", customer)], snapshot, context(**options)).outcomes[0]
    assert isinstance(outcome, Write)
    prepared: Prepared = outcome.prepared
    assert prepared.sides is not None
    return prepared.sides


def test_a_source_without_memory_of_the_target_meets_it_for_the_first_time_knowing_its_other_memories() -> None:
    now = hashes(ACME, ["phone", "notes"])
    timbrix = {"timbrix": {"phone": now["phone"], "notes": value_hash("older")}}
    found = sides_of(ACME, timbrix, {"timbrix": {"phone": THEIRS}, "piriod": {"phone": MINE, "notes": MINE}})
    assert found.first is not None
    assert found.first.unedited == {"phone"}  # as last synced with Timbrix; its notes were edited since
    assert found.first.held_before["phone"] == {THEIRS, MINE}
    assert found.first.held_before["notes"] == {MINE}
    assert found.first.held_before["email"] == frozenset()
    assert "active" not in found.first.exact  # the (in)active state is adopted as each side holds it
    assert {"phone", "notes", "name", "email"} <= found.first.exact


def test_a_value_the_target_cannot_take_is_never_among_the_exact_ones() -> None:
    bad = ACME.model_copy(update={"email": "not an address"})  # Thredfi checks e-mails
    found = sides_of(bad, {}, {})
    assert found.first is not None
    assert "email" not in found.first.exact
    assert "notes" in found.first.exact


def test_a_lossy_source_field_is_not_exact_at_first_contact() -> None:
    found = sides_of(ACME, {}, {}, source_lossy={"notes": "derived"})
    assert found.first is not None
    assert "notes" not in found.first.exact
    assert "notes" in found.edited  # a derived value still flows once the two sides have met


def test_a_source_that_remembers_the_target_or_a_full_run_is_no_first_contact() -> None:
    mine = {"thredfi": hashes(ACME, ["phone"])}
    assert sides_of(ACME.model_copy(update={"notes": "Net 45"}), mine, {}).first is None
    assert sides_of(ACME, {}, {}, force=True).first is None


def test_a_source_that_remembers_the_target_as_it_is_plans_nothing() -> None:
    ctx = context()
    remembered = {"thredfi": hashes(ACME, ctx.compared)}
    snapshot = Snapshot(
        source_links={"7": Link(identity_id=1, connection="bigcapital", remote_id="7", memory=json.dumps(remembered))},
        external_ids={1: "bigcapital:org:7"},
        target_links={1: Link(identity_id=1, connection="thredfi", remote_id="t1")},
    )
    (outcome,) = plan_page([RemoteCustomer("7", ACME)], snapshot, ctx).outcomes
    assert isinstance(outcome, Unchanged)
