"""The hooks of a run shared by several processes (:mod:`worker.fanout`): a part of the engine.

The coordinator lists the source and counts each page (:meth:`SharedPages.fresh`);
each page is run in some process (:meth:`SharedPages.shared_page`) and comes back
to the coordinator (:meth:`SharedPages.absorb`); records a page left waiting on a
natural-key match are pushed once every page is in (:meth:`SharedPages.again`).
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import TYPE_CHECKING

from connectors.model import RemoteCustomer
from state.models import QuarantineEntry
from worker.engine.execute import Executor
from worker.engine.identity import Claim, usable_id
from worker.engine.results import Counts, PageShare, plus


class SharedPages:
    """The fan-out's side of the engine (the attributes are the engine's)."""

    pulled: int
    seen_source_ids: set[str]
    executor: Executor
    _unidentified: int
    _waiting: list[tuple[Claim, QuarantineEntry | None]]
    _shared: Counts

    if TYPE_CHECKING:

        @property
        def counts(self) -> Counts: ...

        def _once(self, records: list[RemoteCustomer]) -> list[RemoteCustomer]: ...

        async def page(self, records: list[RemoteCustomer], *, listed_at: datetime | None = None) -> bool: ...

        async def _retry_unanswered(self) -> None: ...

        async def _plan_and_push(
            self, records: list[RemoteCustomer], ids: list[str], listed_at: datetime | None = None
        ) -> bool: ...

    def fresh(self, records: list[RemoteCustomer]) -> list[RemoteCustomer]:
        """The coordinator's side of a listed page: repeats dropped, the rest counted as pulled and seen.

        The coordinator plans nothing itself: each page goes to :meth:`shared_page` in some
        process, with ``offset`` the ``pulled`` count before it, and comes back to :meth:`absorb`.
        """
        records = self._once(records)
        self.pulled += len(records)
        self._unidentified += sum(1 for r in records if r.id == "?")
        self.seen_source_ids.update(r.id for r in records if usable_id(r.id))
        return records

    async def shared_page(
        self, records: list[RemoteCustomer], *, offset: int, listed_at: datetime | None = None
    ) -> PageShare:
        """One page of a shared run, as :meth:`page` runs it, then its own unanswered creates retried.

        Args:
            records: the page, as :meth:`fresh` returned it.
            offset: the run's ``pulled`` before this page (records without an id are numbered as in one process).
            listed_at: when the coordinator asked for the listing page these records came from.
        """
        self.pulled = offset
        await self.page(records, listed_at=listed_at)
        await self._retry_unanswered()
        counts = dataclasses.replace(self.counts, pulled=self.pulled - offset)
        waiting = tuple(claim.write.record.remote.id for claim, _ in self._waiting)
        return PageShare(counts, waiting, dict(self.executor.check.counts))

    def absorb(self, share: PageShare) -> None:
        """Take a page another process ran into this run's counts and write-check report."""
        self._shared = plus(self._shared, dataclasses.replace(share.counts, pulled=0))  # pulled: see fresh()
        self.executor.check.counts.update(share.not_stored)

    async def again(self, records: list[RemoteCustomer]) -> None:
        """Plan and push records a shared page left waiting (already pulled and seen): before :meth:`finish`.

        They wait to be created (a natural-key match): no target link, so no memory to read them against.
        """
        if records:
            await self._plan_and_push(records, [r.id for r in records])


__all__ = ["SharedPages"]
