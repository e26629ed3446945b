"""Pure decisions: what one record needs in the target, and what it counts as.

No I/O here: the engine gathers the link (what we last wrote), the new
fingerprint and the source's active flag, and :func:`decide` says which
writes to make. Tested exhaustively with tables.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from connectors.model import Customer

Action = Literal["create", "update", "archive", "reactivate", "delete", "forget_archive"]
Outcome = Literal["created", "updated", "archived", "unchanged"]


@dataclass(frozen=True)
class LinkState:
    """What the state store knows of the target record."""

    remote_id: str | None
    status: str
    fingerprint: str | None
    active: bool | None


@dataclass(frozen=True)
class Decision:
    """The writes to make, in order, and how the record is counted."""

    actions: tuple[Action, ...]
    outcome: Outcome

    @property
    def writes(self) -> bool:
        """True when anything is sent to the target."""
        return any(a != "forget_archive" for a in self.actions)


UNCHANGED = Decision((), "unchanged")


def decide(
    link: LinkState | None,
    *,
    fingerprint: str,
    active: bool,
    archive: bool,
    target_archives: bool,
    delete_on_archive: bool = False,
    force: bool = False,
) -> Decision:
    """Decide what the target needs.

    Args:
        link: the target link, or ``None`` when the identity has none.
        fingerprint: the customer as shaped for the target.
        active: whether the source record is active.
        archive: the pipeline propagates (in)activation.
        target_archives: the target has an archived state.
        delete_on_archive: for targets without one, delete instead.
        force: rewrite even when the fingerprint is unchanged (``--full``).

    Returns:
        The decision. Each record counts once: a create that is then
        archived counts as created; a re-activation counts as updated.
    """
    if link is not None and link.status == "deleted":
        # We deleted it on archive (delete_on_archive); only a re-activation brings it back.
        if active or not archive:
            return Decision(("create",), "created")
        return UNCHANGED
    if link is None or link.remote_id is None:
        if not active and archive and target_archives:
            return Decision(("create", "archive"), "created")
        return Decision(("create",), "created")
    was_active = True if link.active is None else link.active
    want_active = active if archive else was_active
    changed = force or link.fingerprint != fingerprint
    if want_active == was_active:
        return Decision(("update",), "updated") if changed else UNCHANGED
    if not target_archives:
        if not want_active and delete_on_archive:
            return Decision(("delete",), "archived")
        # Nothing to send: remember the state so we do not decide this again.
        lead: tuple[Action, ...] = ("update",) if changed else ()
        return Decision((*lead, "forget_archive"), "updated" if changed else "unchanged")
    if want_active:
        return Decision(("reactivate", "update") if changed else ("reactivate",), "updated")
    return Decision(("update", "archive") if changed else ("archive",), "archived")


def apply_defaults(customer: Customer, defaults: Mapping[str, str]) -> Customer:
    """Fill fields the source lacks with the pipeline's ``defaults``.

    A value the source holds always wins over a default.
    """
    missing = {name: value for name, value in defaults.items() if getattr(customer, name) in (None, "")}
    return customer.model_copy(update=missing) if missing else customer


__all__ = ["UNCHANGED", "Action", "Decision", "LinkState", "Outcome", "apply_defaults", "decide"]
