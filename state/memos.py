"""The no-op fast path's memory: the store's stamp, and what a pipeline's last quiet run listed.

A run plans a page from three things: the page as listed, the state store,
and the pipeline's configuration (with the code that shapes records). When
all three are as they were in a run that wrote nothing at all, the plan is
as it was then: every record of the page unchanged. So the engine keeps, per
pipeline, one digest per listed page whose records were all unchanged
(:class:`~state.models.PageMemo`), and may skip planning such a page only
while the store's :meth:`Memos.stamp` is the one that run ended with.

The stamp sums up every table a plan reads (identities, links, quarantine):
row counts, the highest ids, the newest write times. Every writer of those
tables sets the write time (``links.updated_at``; ``quarantine.changed_at``
whenever what a plan reads of an entry changes, but not when a record fails
again the same way, so a pipeline with a failing record keeps its fast path),
rows are only ever added to ``identities`` and ``links``, and a quarantine
entry released lowers the count; so any write a plan could see moves the stamp.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import func, select

from state.models import Identity, Link, PageMemo, QuarantineEntry
from state.session import Sessions, now


@dataclass(frozen=True)
class Memo:
    """A pipeline's memo: see :class:`~state.models.PageMemo`."""

    config: str
    stamp: str
    pages: tuple[str | None, ...]


class Memos(Sessions):
    """The stamp and the page memos (a part of :class:`~state.store.Store`)."""

    def stamp(self) -> str:
        """Where the store stands: changes with every write a plan could see.

        One query per aggregate: SQLite answers a lone ``max()`` of an indexed column from the index, but
        scans the table for a ``max()`` beside other aggregates (35 ms at 100k links, at each run's start and end).
        """
        links, identities, quarantine = (t.__table__ for t in (Link, Identity, QuarantineEntry))  # type: ignore[union-attr]
        columns = (
            (identities, (identities.c.id,)),
            (links, (links.c.id, links.c.updated_at)),
            (quarantine, (quarantine.c.id, quarantine.c.changed_at)),
        )
        with self.session() as s:
            parts = [
                [_text(s.execute(select(func.count()).select_from(table)).scalar())]
                + [_text(s.execute(select(func.max(column))).scalar()) for column in newest]
                for table, newest in columns
            ]
        return "|".join(",".join(p) for p in parts)

    def page_memo(self, pipeline: str) -> Memo | None:
        """The pipeline's memo, if one was saved."""
        with self.session() as s:
            row = s.get(PageMemo, pipeline)
            if row is None:
                return None
            return Memo(row.config, row.stamp, tuple(json.loads(row.pages)))

    def save_page_memo(self, pipeline: str, memo: Memo | None) -> None:
        """Keep the memo of a quiet run (``None``: forget the pipeline's memo)."""
        with self.session() as s:
            row = s.get(PageMemo, pipeline)
            if memo is None:
                if row is not None:
                    s.delete(row)
                return
            pages = json.dumps(list(memo.pages), separators=(",", ":"))
            if row is None:
                s.add(PageMemo(pipeline=pipeline, config=memo.config, stamp=memo.stamp, pages=pages, saved_at=now()))
            else:
                row.config, row.stamp, row.pages, row.saved_at = memo.config, memo.stamp, pages, now()
                s.add(row)


def _text(value: object) -> str:
    """A stamp part: datetimes in one form whatever the driver hands back."""
    if value is None:
        return "-"
    if hasattr(value, "isoformat"):
        return value.isoformat()  # type: ignore[no-any-return]
    return str(value)


__all__ = ["Memo", "Memos"]
