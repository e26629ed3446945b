"""One record's writes to the target: :class:`Written`, :class:`Refused` or :class:`Deferred`.

Updates and (in)activations are idempotent, so re-doing them is harmless. A
create is preceded by the recovery of the identity (:mod:`worker.engine.identity`):
the record found is adopted (made current, counted as matched) rather than
copied. Each write is verified (:mod:`worker.verify`): fields that did not
land are remembered on the link, not rewritten.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

import structlog

from connectors.base import Connector, CreateResult, FieldMappingError
from connectors.errors import (
    ConnectorError,
    FatalError,
    NotFoundError,
    NotSupportedError,
    RecordError,
    RetriableError,
)
from connectors.model import Customer, FieldProblem, RemoteCustomer, fingerprint
from state.store import LinkWrite
from worker.config import PipelineConfig
from worker.engine.identity import Identity, usable_id
from worker.engine.outcomes import Deferred, Executed, Refused, Write, Written, WrittenAs
from worker.engine.partial import write_fields
from worker.engine.results import RunHooks
from worker.engine.twoway import DIRTY, UNSENT, FieldPlan, hashes, is_newer, reconcile, value_hash
from worker.topology import ONE_WAY, Rules
from worker.verify import WriteCheck

log = structlog.get_logger("custsync.sync")


def _field_problem(field: str, message: str) -> FieldProblem:
    """A problem whose reason starts with the canonical field, as every quarantine reason does."""
    return FieldProblem(field, message if message.startswith(f"{field}: ") else f"{field}: {message}")


@dataclass
class _Attempt:
    """What one execution learns as it goes (confined to one :meth:`Executor.execute`)."""

    write: Write
    fingerprint: str
    not_stored: frozenset[str]
    lost_create: bool = False
    #: the record as the target holds it after the last verified write (``None``: not read).
    held: Customer | None = None

    @property
    def external_id(self) -> str:
        return self.write.record.external_id


class Executor:
    """Performs the writes of a run against the target."""

    def __init__(
        self,
        *,
        pipeline: PipelineConfig,
        target: Connector,
        identity: Identity,
        kept: frozenset[str],
        full: bool,
        hooks: RunHooks,
        source: str = "",
        rules: Rules = ONE_WAY,
    ) -> None:
        self.pipeline, self.target, self.identity, self.kept = pipeline, target, identity, kept
        self.full, self.hooks = full, hooks
        #: the source connection's name, and the pair's rules (two-way updates).
        self.source, self.rules = source, rules
        self.check = WriteCheck(target)
        #: the target took a write of this run.
        self.answered = False

    async def execute(self, write: Write, *, resent: bool = False) -> Executed:
        """Make the writes of one record.

        Args:
            write: the record and its decision.
            resent: looked up and pushed again after an unanswered create of this run (counts as created).

        Returns:
            What became of it (an ambiguous recovery is :class:`Refused`).

        Raises:
            FatalError: the target cannot be used at all (the run stops).
        """
        prepared, decision = write.prepared, write.decision
        assert prepared.record.identity_id is not None
        attempt = _Attempt(write, prepared.fingerprint, prepared.not_stored)
        if prepared.sides is not None and "create" not in decision.actions:
            return await self._settle(attempt)
        shaped, link = prepared.shaped, prepared.link
        remote_id = link.remote_id if link else None
        outcome: WrittenAs = decision.outcome
        try:
            for action in decision.actions:
                if action == "create":
                    found = await self._create(attempt)
                    if isinstance(found, FieldProblem):
                        return Refused(write, found, None, attempt.fingerprint)  # ambiguous
                    remote_id, outcome, adopted = found
                    if resent:
                        outcome = "created"  # found after our own unanswered create of this run
                    if adopted:
                        break  # an existing record was made current, its state included: nothing left to do
                elif action == "update":
                    assert remote_id is not None
                    try:
                        answered = await self.target.update(
                            remote_id, shaped, attempt.external_id, fields=self._written(attempt)
                        )
                    except NotFoundError:
                        # Deleted in the target by someone: recreate rather than lose it, through the
                        # same recovery as a pending create (a crash may have recreated it already).
                        log.warning("target_record_missing", external_id=attempt.external_id, target_id=remote_id)
                        found = await self._create(attempt, pending=True)
                        if isinstance(found, FieldProblem):
                            return Refused(write, found, None, attempt.fingerprint)
                        remote_id, outcome, adopted = found
                        if adopted:
                            break  # found again and made current, its state included
                        continue  # recreated (active): the state change, if any, follows
                    self._wrote(attempt, "update")
                    held = await self._verify(attempt, remote_id, answered)
                    if self.full and not {"archive", "reactivate"} & set(decision.actions):
                        await self._restore_state(attempt, remote_id, held)
                elif action in ("archive", "reactivate"):
                    assert remote_id is not None
                    await self.target.set_active(remote_id, action == "reactivate")
                    self._wrote(attempt, action)
                elif action == "delete":
                    assert remote_id is not None
                    await self.target.delete(remote_id)
                    self._wrote(attempt, "delete")
                    gone = LinkWrite(prepared.record.identity_id, None, attempt.fingerprint, False, status="deleted")
                    return Written(write, outcome, gone, attempt.fingerprint)
                elif action == "forget_archive":
                    log.info(
                        "archive_not_supported",
                        external_id=attempt.external_id,
                        target=self.target.system,
                        active=shaped.active,
                    )
        except NotSupportedError as exc:
            return self._refused(attempt, _field_problem("active", str(exc)), remote_id)
        except RecordError as exc:
            problem = _field_problem(exc.field, str(exc)) if exc.field else FieldProblem("record", str(exc))
            return self._refused(attempt, problem, remote_id)
        except FieldMappingError as exc:  # the target cannot express a value (an unknown state)
            return self._refused(attempt, _field_problem(exc.field, exc.reason), remote_id)
        except RetriableError as exc:
            # Still failing after the retry budget: not this record's fault; the next run retries it.
            log.warning("record_deferred", external_id=attempt.external_id, error=str(exc))
            partial = self._partial(attempt, remote_id)
            return Deferred(write, str(exc), partial, attempt.fingerprint, attempt.lost_create)
        except FatalError:
            raise
        except ConnectorError as exc:
            # Any other refusal of this record stays with it: the run goes on.
            return self._refused(attempt, FieldProblem("record", str(exc)), remote_id)
        active = shaped.active if self.pipeline.archive else (link.active if link and link.active is not None else True)
        if decision.actions[0] == "create":
            active = shaped.active if (self.pipeline.archive and self.target.spec.archive) else True
        held = attempt.held or shaped
        result = LinkWrite(
            prepared.record.identity_id,
            remote_id,
            attempt.fingerprint,
            active,
            not_stored=attempt.not_stored,
            memory={self.source: {**hashes(held, self._written(attempt)), "active": value_hash(active)}},
        )
        self.answered = True
        return Written(write, outcome, result, attempt.fingerprint, remembered=prepared.source_now)

    # -- two-way: field by field ---------------------------------------------------

    async def _settle(self, attempt: _Attempt) -> Executed:
        """A two-way update: read the target, then write only the fields edited in the source alone.

        Fields edited on both sides are settled by the pair's rules
        (:func:`~worker.engine.twoway.reconcile`); held ones make the record count
        as failed, with its other fields written all the same.
        """
        write = attempt.write
        prepared = write.prepared
        sides, shaped, link = prepared.sides, prepared.shaped, prepared.link
        assert sides is not None
        assert link is not None
        assert link.remote_id is not None
        remote_id = link.remote_id
        try:
            current = await self.target.get(remote_id)
            held = current.customer
            if held is None:
                problem = current.problem or FieldProblem("record", f"{self.target.system} record could not be read")
                return self._refused(attempt, problem, remote_id)
            fields = sides.edited
            plan = reconcile(
                fields=fields,
                forced=sides.forced,
                want=hashes(shaped, fields | sides.forced),
                held=hashes(held, fields | sides.forced),
                memory=sides.memory,
                rules=self.rules,
                source=self.source,
                target=self.target.name,
                newer=is_newer(write.record.remote.updated_at, current.updated_at),
                rewrite=self.full,
                first=sides.first.within(self.target.spec.exact) if sides.first else None,
            )
            stored, missing, done = await write_fields(
                self.target, self.check, remote_id, held, shaped, plan.write, attempt.external_id
            )
        except NotFoundError:
            # Deleted in the target by someone: recreated through the recovery, as a one-way update would.
            log.warning("target_record_missing", external_id=attempt.external_id, target_id=remote_id)
            return await self.execute(Write(dataclasses.replace(prepared, sides=None), write.decision))
        except RecordError as exc:
            problem = _field_problem(exc.field, str(exc)) if exc.field else FieldProblem("record", str(exc))
            return self._refused(attempt, problem, remote_id)
        except FieldMappingError as exc:
            return self._refused(attempt, _field_problem(exc.field, exc.reason), remote_id)
        except RetriableError as exc:
            log.warning("record_deferred", external_id=attempt.external_id, error=str(exc))
            return Deferred(write, str(exc), None, attempt.fingerprint)
        except FatalError:
            raise
        except ConnectorError as exc:
            return self._refused(attempt, FieldProblem("record", str(exc)), remote_id)
        attempt.not_stored |= missing
        for action in done:
            self._wrote(attempt, action)
        for overwrite in plan.overwrites:
            log.info(
                overwrite.event,
                external_id=attempt.external_id,
                field=overwrite.field,
                source=self.source,
                target=self.target.name,
            )
        return self._settled(attempt, remote_id, plan, held, stored)

    def _settled(self, attempt: _Attempt, remote_id: str, plan: FieldPlan, held: Customer, stored: Customer) -> Written:
        """The outcome of a two-way update, and what each side remembers of it."""
        prepared = attempt.write.prepared
        sides = prepared.sides
        assert sides is not None
        assert prepared.record.identity_id is not None
        done = plan.write | plan.settled | plan.back
        mine = {n: prepared.source_now[n] for n in done | sides.passed if n in prepared.source_now}
        mine.update(dict.fromkeys(plan.dirty, DIRTY))
        theirs = {**hashes(held, plan.settled), **hashes(stored, plan.write - attempt.not_stored)}
        # First contact: a value that is to reach the source reads as edited in the target, a held conflict on both.
        theirs.update(dict.fromkeys((*plan.back, *plan.conflicts) if sides.first else (), UNSENT))
        mine.update(dict.fromkeys(plan.conflicts if sides.first else (), UNSENT))
        outcome: WrittenAs = "unchanged"
        if plan.write:
            outcome = "archived" if "active" in plan.write and not stored.active else "updated"
        link = LinkWrite(
            prepared.record.identity_id,
            remote_id,
            prepared.fingerprint,
            stored.active,
            not_stored=attempt.not_stored,
            memory={self.source: theirs},
        )
        if plan.write:
            self.answered = True
        return Written(attempt.write, outcome, link, prepared.fingerprint, plan.conflicts, mine)

    def _refused(self, attempt: _Attempt, problem: FieldProblem, remote_id: str | None) -> Refused:
        return Refused(attempt.write, problem, self._partial(attempt, remote_id), attempt.fingerprint)

    def _written(self, attempt: _Attempt) -> frozenset[str]:
        """The fields a write of this record sends: the kept ones, less those the target did not store.

        An update leaves out the fields ``defaults`` filled: a default never overwrites the target's value.
        """
        written = self.kept - attempt.not_stored
        link = attempt.write.prepared.link
        return written - attempt.write.prepared.defaulted if link is not None and link.remote_id else written

    def _wrote(self, attempt: _Attempt, action: str) -> None:
        log.info("record_written", external_id=attempt.external_id, action=action)
        self.hooks.wrote()

    async def _verify(self, attempt: _Attempt, remote_id: str, answered: RemoteCustomer | None) -> Customer | None:
        """Check a write landed (:mod:`worker.verify`); fields that did not are remembered, not rewritten."""
        shaped = attempt.write.prepared.shaped
        missing, held = await self.check.check(remote_id, shaped, answered, self._written(attempt))
        attempt.held = held
        if missing - attempt.not_stored:
            attempt.not_stored |= missing
            attempt.fingerprint = fingerprint(shaped, self.kept - attempt.not_stored)
        return held

    async def _restore_state(self, attempt: _Attempt, remote_id: str, held: Customer | None) -> None:
        """``--full``: put the source's (in)active state back where someone changed it in the target."""
        shaped = attempt.write.prepared.shaped
        if not (self.pipeline.archive and self.target.spec.archive) or held is None:
            return
        if held.active != shaped.active:
            await self.target.set_active(remote_id, shaped.active)
            self._wrote(attempt, "reactivate" if shaped.active else "archive")

    def _partial(self, attempt: _Attempt, remote_id: str | None) -> LinkWrite | None:
        """A push failed after it created (or found) the target record: keep the link to it.

        The fingerprint is left empty so the next run rewrites the record and its state,
        instead of having to find it again.
        """
        link, identity_id = attempt.write.prepared.link, attempt.write.record.identity_id
        if remote_id and (link is None or link.remote_id != remote_id) and identity_id is not None:
            return LinkWrite(identity_id, remote_id, None, None)
        return None

    async def _create(self, attempt: _Attempt, *, pending: bool = False) -> tuple[str, WrittenAs, bool] | FieldProblem:
        """Recover the identity, else create; returns (remote id, outcome, adopted) or the ambiguity."""
        write = attempt.write
        found = await self.identity.recover(write, pending=pending)
        if isinstance(found, FieldProblem):
            return found
        if found.id:
            # The record exists already: make it current rather than create a copy.
            await self._adopt(attempt, found)
            return found.id, "matched", True
        try:
            result = await self._create_with_id(write.prepared.shaped, attempt.external_id)
        except RetriableError:
            # The create may have been applied with its answer lost. Where the target
            # finds records by external_id, look now; otherwise the pending intent
            # stays and the next run recovers it from a fresh index of the target.
            if self.target.spec.identity_slot:
                again = await self.identity.recover(write, pending=True)
                if isinstance(again, RemoteCustomer) and again.id:
                    self._wrote(attempt, "create")
                    return again.id, "created", False
            attempt.lost_create = True
            raise
        self._wrote(attempt, "create")
        self.identity.claim(result.remote.id)
        if result.existed:
            # An idempotent create answered with the record it holds: a replay of our own create
            # whose answer was lost, or a record we lost track of (state store lost). Either way it
            # was found, not created; its fields and state are made current.
            await self._adopt(attempt, result.remote)
            return result.remote.id, "matched", True
        await self._verify(attempt, result.remote.id, result.remote)
        return result.remote.id, "created", False

    async def _create_with_id(self, shaped: Customer, external_id: str) -> CreateResult:
        """Create; an answer that is not JSON, or carries no id, is treated like a lost answer."""
        try:
            result = await self.target.create(shaped, external_id)
        except json.JSONDecodeError as exc:
            raise RetriableError(f"{self.target.system} answered the create with a body that is not JSON") from exc
        if not usable_id(result.remote.id):
            # Applied or not, there is no id to address it by: looked up like a lost answer.
            raise RetriableError(f"{self.target.system} answered the create without a record id")
        return result

    async def _adopt(self, attempt: _Attempt, remote: RemoteCustomer) -> None:
        """Make an existing target record current (it counts as matched)."""
        shaped = attempt.write.prepared.shaped
        attempt.held = remote.customer
        current = fingerprint(self.target.shape(remote.customer), self._written(attempt)) if remote.customer else None
        if current != attempt.fingerprint:
            answered = await self.target.update(remote.id, shaped, attempt.external_id, fields=self._written(attempt))
            self._wrote(attempt, "update")
            await self._verify(attempt, remote.id, answered)
        if (
            self.pipeline.archive
            and self.target.spec.archive
            and remote.customer is not None
            and remote.customer.active != shaped.active
        ):
            await self.target.set_active(remote.id, shaped.active)
            self._wrote(attempt, "archive" if not shaped.active else "reactivate")


__all__ = ["Executor"]
