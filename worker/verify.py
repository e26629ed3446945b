"""Write verification: did the target store what was sent?

After each create or update the engine compares the record the target
answered with (or, when the answer carries none, the record read back) with
what it sent, field by field, both as the target shapes them. A field whose
value did not land is *not stored*: it is logged once per run and field
(``field_not_stored``, with the system and a count; never a value), kept on
the target link (``links.not_stored``) so that later runs neither write it
again nor fingerprint it, and the opposite pipeline, reading that link as
its source link, never clears the source's value because the target lacks it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import structlog

from connectors.base import Connector
from connectors.errors import ConnectorError, FatalError
from connectors.model import Customer, RemoteCustomer

log = structlog.get_logger("custsync.verify")

#: never compared: (in)activation is its own write, and ``kind`` is how a system reads the record.
_NOT_COMPARED = frozenset({"active", "kind"})


def parse_fields(value: str | None) -> frozenset[str]:
    """The stored comma-separated list of canonical fields as a set."""
    return frozenset(f for f in (value or "").split(",") if f)


def format_fields(fields: Iterable[str]) -> str | None:
    """A set of canonical fields as it is stored (``None`` when empty)."""
    return ",".join(sorted(fields)) or None


def _same(sent: object, held: object) -> bool:
    # A server may re-space or re-case what it stores; that is stored all the same.
    if isinstance(sent, str) and isinstance(held, str):
        return "".join(sent.split()).casefold() == "".join(held.split()).casefold()
    return sent == held


class WriteCheck:
    """Compares what a target answered with what was sent; counts what did not land.

    Args:
        target: the target connection.
    """

    def __init__(self, target: Connector) -> None:
        self.target = target
        self.counts: Counter[str] = Counter()

    async def check(
        self, remote_id: str, sent: Customer, answered: RemoteCustomer | None, fields: frozenset[str]
    ) -> tuple[frozenset[str], Customer | None]:
        """The written fields the target did not store, and the record as it holds it.

        Args:
            remote_id: the record written.
            sent: the customer as shaped for the target, as sent.
            answered: the record the write answered with, when it carried one.
            fields: the canonical fields written.

        Returns:
            (fields not stored, the record as the target holds it or ``None`` when it could not be read).
        """
        held = answered.customer if answered is not None else None
        if held is None:
            try:
                held = (await self.target.get(remote_id)).customer
            except FatalError:
                raise
            except ConnectorError as exc:
                log.info("write_not_verified", system=self.target.system, error=type(exc).__name__)
                return frozenset(), None
        if held is None:
            return frozenset(), None
        want, got = self.target.shape(sent), self.target.shape(held)
        compared = (fields & self.target.spec.fields | {"name"}) - _NOT_COMPARED
        missing = frozenset(
            f for f in compared if getattr(want, f) not in (None, "") and not _same(getattr(want, f), getattr(got, f))
        )
        self.counts.update(missing)
        return missing, held

    def report(self) -> None:
        """Log each field not stored in this run once, with how many records it concerned."""
        for name, count in sorted(self.counts.items()):
            log.warning("field_not_stored", system=self.target.system, field=name, count=count)


__all__ = ["WriteCheck", "format_fields", "parse_fields"]
