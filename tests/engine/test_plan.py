"""The pure plan step: a page and a state snapshot become one outcome per record.

Real connectors (their shaping and validation, no HTTP), real ``Customer``,
``Link`` and ``QuarantineEntry`` objects; no store, no I/O.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from connectors.model import Customer, FieldProblem, RemoteCustomer, fingerprint
from state.models import Link, QuarantineEntry
from tests.conftest import make_config
from worker.diff import Decision, LinkState
from worker.engine.outcomes import Held, Prepared, Quarantine, Record, Unchanged, Write, Written
from worker.engine.plan import (
    PagePlan,
    PlanContext,
    Snapshot,
    fresh_external_id,
    identify,
    plan_page,
    positional,
    quarantine_change,
    source_fingerprint,
)
from worker.engine.results import PlannedChange
from worker.runner import build_connector

CONFIG = make_config("sqlite://")
SOURCE = build_connector(CONFIG, "thredfi")  # mapping only, no HTTP
TARGET = build_connector(CONFIG, "bigcapital")
KEPT = frozenset((SOURCE.spec.fields & TARGET.spec.fields) | {"kind", "name"})

ACME = Customer(name="Acme Ltd", company_name="Acme Ltd", email="ops@acme.example", currency="USD")
TOO_LONG = Customer(name="x" * 300, company_name="x" * 300, currency="USD")


def context(**options: Any) -> PlanContext:
    """The thredfi → bigcapital pipeline's plan context."""
    values: dict[str, Any] = {
        "kept": KEPT,
        "shape": TARGET.shape,
        "problems": TARGET.problems,
        "external_id_for": SOURCE.external_id_for,
        "source_system": SOURCE.system,
        "archive": True,
        "target_archives": TARGET.spec.archive,
    }
    values.update(options)
    return PlanContext(**values)


def fp(customer: Customer, not_stored: frozenset[str] = frozenset()) -> str:
    """The fingerprint the plan gives a customer for this target."""
    return fingerprint(TARGET.shape(customer), KEPT - not_stored)


def source_link(remote_id: str, identity_id: int, **fields: Any) -> Link:
    return Link(identity_id=identity_id, connection="thredfi", remote_id=remote_id, **fields)


def target_link(identity_id: int, **fields: Any) -> Link:
    values: dict[str, Any] = {"remote_id": f"t{identity_id}", "active": True}
    values.update(fields)
    return Link(identity_id=identity_id, connection="bigcapital", **values)


def entry(source_id: str, customer: Customer) -> QuarantineEntry:
    return QuarantineEntry(
        pipeline="thredfi_to_bigcapital",
        source_id=source_id,
        field="email",
        reason="email: refused",
        source_fingerprint=source_fingerprint(customer),
        run_id="r1",
    )


EXT = SOURCE.external_id_for("1")
LINKED = Snapshot(
    source_links={"1": source_link("1", 7)},
    external_ids={7: EXT},
    target_links={7: target_link(7, fingerprint=fp(ACME))},
)

#: linked, the target's fingerprint that of TOO_LONG: the target once took it as it is
HELD_AS_IT_IS = Snapshot(
    source_links=LINKED.source_links,
    external_ids=LINKED.external_ids,
    target_links={7: target_link(7, fingerprint=fp(TOO_LONG))},
)

#: (case, page, snapshot, context options, what each record becomes)
CASES: list[tuple[str, list[RemoteCustomer], Snapshot, dict[str, Any], list[tuple[type, str]]]] = [
    (
        "unreadable_with_its_problem",
        [RemoteCustomer("1", None, FieldProblem("email", "email: not text"))],
        Snapshot(),
        {},
        [(Quarantine, "email")],
    ),
    ("unreadable_without_a_problem", [RemoteCustomer("1", None)], Snapshot(), {}, [(Quarantine, "record")]),
    ("refused_by_the_target", [RemoteCustomer("1", TOO_LONG)], Snapshot(), {}, [(Quarantine, "name")]),
    ("new", [RemoteCustomer("1", ACME)], Snapshot(), {}, [(Write, "create")]),
    ("linked_and_the_same", [RemoteCustomer("1", ACME)], LINKED, {}, [(Unchanged, "")]),
    (
        # The target took it as it is (its checks then were not today's): nothing is sent, so nothing is checked.
        "linked_as_the_target_holds_it_though_a_check_now_refuses_it",
        [RemoteCustomer("1", TOO_LONG)],
        HELD_AS_IT_IS,
        {},
        [(Unchanged, "")],
    ),
    (
        "linked_and_changed_into_what_a_check_refuses",
        [RemoteCustomer("1", TOO_LONG)],
        LINKED,
        {},
        [(Quarantine, "name")],
    ),
    (
        "linked_as_the_target_holds_it_rewritten_with_full_and_refused",
        [RemoteCustomer("1", TOO_LONG)],
        HELD_AS_IT_IS,
        {"force": True},
        [(Quarantine, "name")],
    ),
    ("linked_and_the_same_with_full", [RemoteCustomer("1", ACME)], LINKED, {"force": True}, [(Write, "update")]),
    (
        "linked_and_changed",
        [RemoteCustomer("1", ACME.model_copy(update={"phone": "+1 555 0100"}))],
        LINKED,
        {},
        [(Write, "update")],
    ),
    (
        "linked_and_archived_at_the_source",
        [RemoteCustomer("1", ACME.model_copy(update={"active": False}))],
        LINKED,
        {},
        [(Write, "archive")],
    ),
    (
        "held_unchanged_since_it_failed",
        [RemoteCustomer("1", ACME)],
        Snapshot(quarantined={"1": entry("1", ACME)}),
        {},
        [(Held, "")],
    ),
    (
        "held_but_retried",
        [RemoteCustomer("1", ACME)],
        Snapshot(quarantined={"1": entry("1", ACME)}),
        {"retry_quarantined": True},
        [(Write, "create")],
    ),
    (
        "quarantined_and_changed_since",
        [RemoteCustomer("1", ACME.model_copy(update={"phone": "+1 555 0100"}))],
        Snapshot(quarantined={"1": entry("1", ACME)}),
        {},
        [(Write, "create")],
    ),
    (
        "two_records_of_one_new_identity",
        [RemoteCustomer("1", ACME, external_id="x:1"), RemoteCustomer("2", ACME, external_id="x:1")],
        Snapshot(),
        {},
        [(Write, "create"), (Quarantine, "external_id")],
    ),
    (
        "an_identity_another_source_record_holds",
        [RemoteCustomer("2", ACME, external_id="x:1")],
        Snapshot(identities={"x:1": 3}, claims={3: source_link("1", 3)}),
        {},
        [(Quarantine, "external_id")],
    ),
    (
        "two_records_of_one_identity_in_a_dry_run",
        [RemoteCustomer("1", ACME, external_id="x:1"), RemoteCustomer("2", ACME, external_id="x:1")],
        Snapshot(),
        {"dry_run": True},
        [(Write, "create"), (Write, "create")],
    ),
]


@pytest.mark.parametrize(("page", "snapshot", "options", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_given_a_page_and_a_snapshot_when_planned_then_each_record_has_one_outcome(
    page: list[RemoteCustomer], snapshot: Snapshot, options: dict[str, Any], expected: list[tuple[type, str]]
) -> None:
    plan = plan_page(page, snapshot, context(**options))

    assert len(plan.outcomes) == len(page)
    got: list[tuple[type, str]] = []
    for outcome in plan.outcomes:
        if isinstance(outcome, Write):
            got.append((Write, "+".join(outcome.decision.actions)))
        elif isinstance(outcome, Quarantine):
            got.append((Quarantine, outcome.problem.field))
        else:
            got.append((type(outcome), ""))
    assert got == expected
    assert [o.record.remote.id for o in plan.outcomes] == [r.id for r in page]


def test_given_a_new_record_when_planned_then_its_identity_is_to_be_made_and_linked_to_its_source() -> None:
    plan = plan_page([RemoteCustomer("1", ACME)], Snapshot(), context())

    (write,) = plan.outcomes
    assert isinstance(write, Write)
    assert write.record == Record(RemoteCustomer("1", ACME), EXT, None, fresh=True)
    assert write.prepared.fingerprint == fp(ACME)
    assert write.prepared.source_fingerprint == source_fingerprint(ACME)
    assert write.prepared.link is None
    assert plan == PagePlan(plan.outcomes, (EXT,), {EXT: "1"})


def test_given_a_record_of_an_identity_the_store_holds_unlinked_when_planned_then_linked_not_made_again() -> None:
    pending = Link(identity_id=3, connection="thredfi", remote_id=None, status="pending")
    snapshot = Snapshot(identities={"x:1": 3}, claims={3: pending}, target_links={3: target_link(3, fingerprint="old")})

    plan = plan_page([RemoteCustomer("1", ACME, external_id="x:1")], snapshot, context())

    (write,) = plan.outcomes
    assert isinstance(write, Write)
    assert write.record.identity_id == 3
    assert write.decision.actions == ("update",)
    assert plan.fresh == ("x:1",)
    assert plan.linking == {"x:1": "1"}


def test_given_a_record_of_an_identity_its_source_link_holds_when_planned_then_nothing_to_link() -> None:
    snapshot = Snapshot(identities={"x:1": 3}, claims={3: source_link("1", 3)})

    plan = plan_page([RemoteCustomer("1", ACME, external_id="x:1")], snapshot, context())

    assert isinstance(plan.outcomes[0], Write)
    assert plan.fresh == ("x:1",)
    assert plan.linking == {}


def test_given_a_dry_run_when_planned_then_no_identity_is_to_be_made() -> None:
    plan = plan_page([RemoteCustomer("1", ACME)], Snapshot(), context(dry_run=True))

    assert isinstance(plan.outcomes[0], Write)
    assert (plan.fresh, plan.linking) == ((), {})


def test_given_fields_a_side_did_not_store_when_planned_then_they_are_not_fingerprinted() -> None:
    snapshot = dataclasses.replace(
        LINKED,
        source_links={"1": source_link("1", 7, not_stored="phone")},
        target_links={7: target_link(7, fingerprint=fp(ACME, frozenset({"phone", "email"})), not_stored="email")},
    )
    changed = ACME.model_copy(update={"phone": "+1 555 0100", "email": "new@acme.example"})

    (outcome,) = plan_page([RemoteCustomer("1", changed)], snapshot, context()).outcomes

    assert isinstance(outcome, Unchanged), "only fields no side stored changed"
    assert outcome.prepared.not_stored == {"phone", "email"}
    assert outcome.prepared.link == LinkState("t7", "linked", fp(ACME, frozenset({"phone", "email"})), True)


def test_given_a_linked_record_when_planned_then_it_keeps_its_identity_and_what_its_link_saw() -> None:
    snapshot = dataclasses.replace(LINKED, source_links={"1": source_link("1", 7, fingerprint="f", active=True)})

    (outcome,) = plan_page([RemoteCustomer("1", ACME)], snapshot, context()).outcomes

    assert outcome.record == Record(RemoteCustomer("1", ACME), EXT, 7, ("f", True))


def test_given_pipeline_defaults_when_planned_then_they_fill_what_the_source_lacks() -> None:
    bare = Customer(name="Bare Co", company_name="Bare Co", phone="+1 555 0199")

    defaults = context(defaults={"currency": "EUR", "phone": "+44 20 0000"})

    (write,) = plan_page([RemoteCustomer("1", bare)], Snapshot(), defaults).outcomes

    assert isinstance(write, Write)
    assert write.prepared.shaped.currency == "EUR"
    assert write.prepared.shaped.phone == "+1 555 0199", "the source's own value wins"
    assert write.prepared.source_fingerprint == source_fingerprint(bare.model_copy(update={"currency": "EUR"}))


def test_given_a_record_refused_by_the_target_when_planned_then_every_problem_is_in_its_reason() -> None:
    (outcome,) = plan_page([RemoteCustomer("1", TOO_LONG)], Snapshot(), context()).outcomes

    assert isinstance(outcome, Quarantine)
    assert outcome.source_fingerprint == source_fingerprint(TOO_LONG)
    assert outcome.problem.reason == "; ".join(str(p) for p in TARGET.problems(TARGET.shape(TOO_LONG)))
    assert outcome.prepared is None


@pytest.mark.parametrize(
    ("remote", "aliases", "expected"),
    [
        (RemoteCustomer("1", ACME, external_id="x:9"), {"1": "old:1"}, "x:9"),
        (RemoteCustomer("1", ACME), {"1": "old:1"}, "old:1"),
        (RemoteCustomer("1", ACME), {}, EXT),
    ],
    ids=["its_own_slot", "an_older_form", "a_new_one"],
)
def test_given_a_record_without_a_source_link_when_identified_then_its_external_id_comes_in_order(
    remote: RemoteCustomer, aliases: dict[str, str], expected: str
) -> None:
    assert fresh_external_id(remote, aliases, context()) == expected
    assert identify(remote, Snapshot(aliases=aliases, identities={expected: 5}), context()).identity_id == 5


def test_given_records_listed_without_an_id_when_numbered_then_each_gets_a_positional_one() -> None:
    page = [RemoteCustomer("?", ACME, FieldProblem("id", "missing")), RemoteCustomer("4", ACME)]

    numbered = positional(page, 10)

    assert numbered == [RemoteCustomer("?10-0", None, FieldProblem("id", "missing")), RemoteCustomer("4", ACME)]


def test_given_the_active_flag_when_fingerprinted_for_quarantine_then_it_counts() -> None:
    assert source_fingerprint(ACME) != source_fingerprint(ACME.model_copy(update={"active": False}))
    assert len(source_fingerprint(ACME)) == 64


def _prepared(link: LinkState | None) -> Prepared:
    record = Record(RemoteCustomer("1", ACME), EXT, 7)
    return Prepared(record, TARGET.shape(ACME), fp(ACME), source_fingerprint(ACME), link)


QUARANTINE_CHANGES = [
    (
        Quarantine(Record(RemoteCustomer("1", None), EXT), FieldProblem("record", "could not be read")),
        PlannedChange("quarantine", EXT, "1", None, ("record",), "could not be read"),
    ),
    (
        Quarantine(
            Record(RemoteCustomer("1", ACME), EXT, 7),
            FieldProblem("email", "email: ambiguous"),
            "sfp",
            _prepared(LinkState("t7", "linked", "f", True)),
        ),
        PlannedChange("quarantine", EXT, "1", "t7", ("email",), "email: ambiguous"),
    ),
    (
        Quarantine(Record(RemoteCustomer("1", ACME), EXT, 7), FieldProblem("email", "e"), "sfp", _prepared(None)),
        PlannedChange("quarantine", EXT, "1", None, ("email",), "e"),
    ),
    (
        Held(Record(RemoteCustomer("1", ACME), EXT), entry("1", ACME)),
        PlannedChange("quarantine", EXT, "1", None, ("email",), "email: refused"),
    ),
    (Unchanged(_prepared(None)), None),
    (Written(Write(_prepared(None), Decision(("create",), "created")), "created", None, fp(ACME)), None),
]


@pytest.mark.parametrize(("outcome", "expected"), QUARANTINE_CHANGES, ids=lambda v: type(v).__name__)
def test_given_an_outcome_when_a_dry_run_reports_it_then_only_quarantines_are_reported(
    outcome: Any, expected: PlannedChange | None
) -> None:
    assert quarantine_change(outcome) == expected
