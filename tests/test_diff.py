"""``worker.diff.decide`` and ``apply_defaults``: pure decisions, tested by tables.

The named table pins every distinct case; the exhaustive test walks the whole
input space (every link state x fingerprint x flag) and checks the rules that
must hold everywhere, against an independent statement of them.
"""

from __future__ import annotations

import itertools

import pytest

from connectors.model import Customer
from worker.diff import UNCHANGED, Decision, LinkState, apply_defaults, decide

FP = "f" * 64
OTHER = "0" * 64

NO_LINK = None
PENDING = LinkState(None, "pending", None, None)
DELETED = LinkState(None, "deleted", FP, False)
ACTIVE = LinkState("r1", "linked", FP, True)
INACTIVE = LinkState("r1", "linked", FP, False)
UNKNOWN = LinkState("r1", "linked", FP, None)  # linked before we knew its state: taken as active
LINKS = {
    "none": NO_LINK,
    "pending": PENDING,
    "deleted": DELETED,
    "active": ACTIVE,
    "inactive": INACTIVE,
    "unknown": UNKNOWN,
}

# (link, same fingerprint, source active, archive, target archives, delete_on_archive, force) -> decision
TABLE: list[tuple[str, LinkState | None, bool, bool, bool, bool, bool, bool, Decision]] = [
    # -- no link yet: create, archived afterwards when the source is inactive
    ("new active", NO_LINK, True, True, True, True, False, False, Decision(("create",), "created")),
    ("new inactive", NO_LINK, True, False, True, True, False, False, Decision(("create", "archive"), "created")),
    ("new inactive, archive off", NO_LINK, True, False, False, True, False, False, Decision(("create",), "created")),
    (
        "new inactive, no archived state",
        NO_LINK,
        True,
        False,
        True,
        False,
        False,
        False,
        Decision(("create",), "created"),
    ),
    ("pending intent active", PENDING, True, True, True, True, False, False, Decision(("create",), "created")),
    (
        "pending intent inactive",
        PENDING,
        False,
        False,
        True,
        True,
        False,
        False,
        Decision(("create", "archive"), "created"),
    ),
    # -- linked, same state
    ("unchanged", ACTIVE, True, True, True, True, False, False, UNCHANGED),
    ("edited", ACTIVE, False, True, True, True, False, False, Decision(("update",), "updated")),
    ("unchanged, forced", ACTIVE, True, True, True, True, False, True, Decision(("update",), "updated")),
    ("unchanged inactive", INACTIVE, True, False, True, True, False, False, UNCHANGED),
    ("edited inactive", INACTIVE, False, False, True, True, False, False, Decision(("update",), "updated")),
    ("unknown state taken as active", UNKNOWN, True, True, True, True, False, False, UNCHANGED),
    # -- (in)activation
    ("deactivated", ACTIVE, True, False, True, True, False, False, Decision(("archive",), "archived")),
    (
        "deactivated and edited",
        ACTIVE,
        False,
        False,
        True,
        True,
        False,
        False,
        Decision(("update", "archive"), "archived"),
    ),
    ("deactivated, unknown state", UNKNOWN, True, False, True, True, False, False, Decision(("archive",), "archived")),
    ("reactivated", INACTIVE, True, True, True, True, False, False, Decision(("reactivate",), "updated")),
    (
        "reactivated and edited",
        INACTIVE,
        False,
        True,
        True,
        True,
        False,
        False,
        Decision(("reactivate", "update"), "updated"),
    ),
    (
        "reactivated, forced",
        INACTIVE,
        True,
        True,
        True,
        True,
        False,
        True,
        Decision(("reactivate", "update"), "updated"),
    ),
    # -- archive off: the target's state is left alone
    ("deactivated, archive off", ACTIVE, True, False, False, True, False, False, UNCHANGED),
    (
        "deactivated and edited, archive off",
        ACTIVE,
        False,
        False,
        False,
        True,
        False,
        False,
        Decision(("update",), "updated"),
    ),
    ("reactivated, archive off", INACTIVE, True, True, False, True, False, False, UNCHANGED),
    # -- targets without an archived state
    (
        "deactivated, no archived state",
        ACTIVE,
        True,
        False,
        True,
        False,
        False,
        False,
        Decision(("forget_archive",), "unchanged"),
    ),
    (
        "deactivated and edited, no archived state",
        ACTIVE,
        False,
        False,
        True,
        False,
        False,
        False,
        Decision(("update", "forget_archive"), "updated"),
    ),
    (
        "deactivated, delete on archive",
        ACTIVE,
        True,
        False,
        True,
        False,
        True,
        False,
        Decision(("delete",), "archived"),
    ),
    (
        "deactivated and edited, delete on archive",
        ACTIVE,
        False,
        False,
        True,
        False,
        True,
        False,
        Decision(("delete",), "archived"),
    ),
    (
        "reactivated, no archived state",
        INACTIVE,
        True,
        True,
        True,
        False,
        False,
        False,
        Decision(("forget_archive",), "unchanged"),
    ),
    (
        "reactivated, delete on archive, still there",
        INACTIVE,
        True,
        True,
        True,
        False,
        True,
        False,
        Decision(("forget_archive",), "unchanged"),
    ),
    # -- deleted on archive earlier: only a re-activation brings it back
    ("deleted, still inactive", DELETED, True, False, True, False, True, False, UNCHANGED),
    ("deleted, still inactive, forced", DELETED, True, False, True, False, True, True, UNCHANGED),
    ("deleted, reactivated", DELETED, True, True, True, False, True, False, Decision(("create",), "created")),
    ("deleted, archive off", DELETED, True, False, False, False, True, False, Decision(("create",), "created")),
]


@pytest.mark.parametrize(
    ("link", "same_fp", "active", "archive", "target_archives", "delete_on_archive", "force", "expected"),
    [pytest.param(*row[1:], id=row[0]) for row in TABLE],
)
def test_given_link_state_when_deciding_then_decision_matches_table(
    link: LinkState | None,
    same_fp: bool,
    active: bool,
    archive: bool,
    target_archives: bool,
    delete_on_archive: bool,
    force: bool,
    expected: Decision,
) -> None:
    decision = decide(
        link,
        fingerprint=FP if same_fp else OTHER,
        active=active,
        archive=archive,
        target_archives=target_archives,
        delete_on_archive=delete_on_archive,
        force=force,
    )
    assert decision == expected


def _expected(
    link: LinkState | None,
    same_fp: bool,
    active: bool,
    archive: bool,
    target_archives: bool,
    delete_on_archive: bool,
    force: bool,
) -> Decision:
    """An independent statement of the rules, written as plainly as possible."""
    if link is not None and link.status == "deleted":
        return Decision(("create",), "created") if (active or not archive) else UNCHANGED
    if link is None or link.remote_id is None:
        if archive and target_archives and not active:
            return Decision(("create", "archive"), "created")
        return Decision(("create",), "created")
    was = link.active is not False
    want = active if archive else was
    changed = force or not same_fp
    if want == was:
        return Decision(("update",), "updated") if changed else UNCHANGED
    if target_archives:
        if want:
            return Decision(("reactivate", "update") if changed else ("reactivate",), "updated")
        return Decision(("update", "archive") if changed else ("archive",), "archived")
    if not want and delete_on_archive:
        return Decision(("delete",), "archived")
    if changed:
        return Decision(("update", "forget_archive"), "updated")
    return Decision(("forget_archive",), "unchanged")


SPACE = list(itertools.product(LINKS, *[(True, False)] * 6))


@pytest.mark.parametrize(
    ("link_name", "same_fp", "active", "archive", "target_archives", "delete_on_archive", "force"), SPACE
)
def test_given_any_input_when_deciding_then_rules_hold(
    link_name: str,
    same_fp: bool,
    active: bool,
    archive: bool,
    target_archives: bool,
    delete_on_archive: bool,
    force: bool,
) -> None:
    link = LINKS[link_name]
    decision = decide(
        link,
        fingerprint=FP if same_fp else OTHER,
        active=active,
        archive=archive,
        target_archives=target_archives,
        delete_on_archive=delete_on_archive,
        force=force,
    )
    assert decision == _expected(link, same_fp, active, archive, target_archives, delete_on_archive, force)
    # Rules any decision obeys, whatever the input:
    actions = decision.actions
    assert len(set(actions)) == len(actions), "no action twice"
    if "create" in actions:
        assert actions[0] == "create"
        assert decision.outcome == "created"
    if decision.outcome == "unchanged":
        assert not decision.writes, "an unchanged record sends nothing"
    else:
        assert decision.writes, "a counted change sends something"
    if not archive:
        assert not {"archive", "reactivate", "delete"} & set(actions), "archive off never touches the state"
    if not target_archives:
        assert not {"archive", "reactivate"} & set(actions)
    if "delete" in actions:
        assert delete_on_archive
        assert not target_archives
        assert actions == ("delete",)
    if "reactivate" in actions:
        assert decision.outcome == "updated", "a re-activation counts as updated"


def test_given_unchanged_decision_then_it_writes_nothing() -> None:
    assert not UNCHANGED.writes
    assert not Decision(("forget_archive",), "unchanged").writes
    assert Decision(("update", "forget_archive"), "updated").writes


# -- defaults -------------------------------------------------------------

DEFAULTS_TABLE = [
    ("fills a missing field", Customer(name="A"), {"currency": "USD"}, {"currency": "USD"}),
    ("source value wins", Customer(name="A", currency="GBP"), {"currency": "USD"}, {"currency": "GBP"}),
    ("empty string counts as missing", Customer(name="A", country=""), {"country": "GB"}, {"country": "GB"}),
    (
        "several fields",
        Customer(name="A", email="a@example.com"),
        {"currency": "MXN", "email": "x@example.com"},
        {"currency": "MXN", "email": "a@example.com"},
    ),
    ("no defaults", Customer(name="A"), {}, {"currency": None}),
]


@pytest.mark.parametrize(("customer", "defaults", "expected"), [pytest.param(*r[1:], id=r[0]) for r in DEFAULTS_TABLE])
def test_given_defaults_when_applied_then_only_missing_fields_are_filled(
    customer: Customer, defaults: dict[str, str], expected: dict[str, str | None]
) -> None:
    result = apply_defaults(customer, defaults)
    for name, value in expected.items():
        assert getattr(result, name) == value
    assert result.name == customer.name


def test_given_nothing_to_fill_when_applied_then_same_object_is_returned() -> None:
    customer = Customer(name="A", currency="USD")
    assert apply_defaults(customer, {"currency": "EUR"}) is customer
