"""A dry run's page: what a real run would write, match or quarantine, and nothing written."""

from __future__ import annotations

from collections.abc import Sequence

from connectors.model import RemoteCustomer
from worker.engine.identity import Identity
from worker.engine.outcomes import Outcome, Planned, Quarantine, Write, Written
from worker.engine.plan import quarantine_change
from worker.engine.results import PlannedChange


async def plan_dry(outcomes: Sequence[Planned], identity: Identity) -> tuple[list[Outcome], list[PlannedChange]]:
    """Plan each write, and each record a real run would quarantine, with its reason.

    Returns:
        the records' outcomes as the run counts them, and the changes it plans.
    """
    final: list[Outcome] = []
    planned: list[PlannedChange] = []
    for outcome in outcomes:
        if not isinstance(outcome, Write):
            final.append(outcome)
            continue
        record, link = outcome.record, outcome.prepared.link
        found = await identity.recover(outcome) if "create" in outcome.decision.actions else None
        if isinstance(found, RemoteCustomer) and found.id:
            planned.append(PlannedChange("match", record.external_id, record.remote.id, found.id))
            final.append(Written(outcome, "matched", None, outcome.prepared.fingerprint))
        elif found is not None and not isinstance(found, RemoteCustomer):
            final.append(Quarantine(record, found, outcome.prepared.source_fingerprint, outcome.prepared))
        else:
            target_id = link.remote_id if link else None
            action = "+".join(outcome.decision.actions)
            planned.append(PlannedChange(action, record.external_id, record.remote.id, target_id))
            final.append(Written(outcome, outcome.decision.outcome, None, outcome.prepared.fingerprint))
    planned.extend(change for change in map(quarantine_change, final) if change is not None)
    return final, planned


__all__ = ["plan_dry"]
