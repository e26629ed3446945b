"""``custsync probe CONNECTION --create-test-customer``: what a system really keeps, field by field.

The connectors declare which canonical fields each system keeps
(``spec.fields``); a real server may disagree (a postcode silently dropped,
a phone reformatted). The probe creates one clearly named test customer
("custsync probe <timestamp>") with a plausible, valid value in every
canonical field, reads it back, and reports for each field:

- ``stored``: read back as sent;
- ``changed``: read back, but not as sent (normalised, cut, reformatted);
- ``dropped``: the connector writes it, the system did not keep it;
- ``not kept``: the connector does not write it (the system has no place for it).

Then it archives the customer, or deletes it where the system has no
archived state (Timbrix). The values are invented, not anyone's data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog

from connectors.base import Connector
from connectors.model import CANONICAL_FIELDS, Customer
from connectors.registry import systems

log = structlog.get_logger("custsync.probe")

STORED, CHANGED, DROPPED, NOT_KEPT = "stored", "changed", "dropped", "not kept"


@dataclass(frozen=True)
class FieldResult:
    """What became of one canonical field.

    Attributes:
        field: the canonical field.
        status: ``stored``, ``changed``, ``dropped`` or ``not kept``.
        sent: the value the probe wrote (before the connector's shaping).
        got: the value read back.
    """

    field: str
    status: str
    sent: Any
    got: Any

    @property
    def stored(self) -> bool:
        """Whether the system kept the value as sent."""
        return self.status == STORED


@dataclass
class ProbeReport:
    """The outcome of one probe.

    Attributes:
        connection: the connection's name.
        system: its system.
        remote_id: the test customer's id in the system.
        fields: one result per canonical field the test customer holds.
        cleanup: ``archived``, ``deleted``, or why the customer is still there.
        cleaned: whether the test customer was archived or deleted.
    """

    connection: str
    system: str
    remote_id: str | None = None
    fields: list[FieldResult] = field(default_factory=list)
    cleanup: str = "not created"
    cleaned: bool = False

    def summary(self) -> dict[str, Any]:
        """The ``--json`` object."""
        return {
            "connection": self.connection,
            "system": self.system,
            "remote_id": self.remote_id,
            "cleanup": self.cleanup,
            "fields": {
                r.field: {"status": r.status, "stored": r.stored, "sent": r.sent, "got": r.got} for r in self.fields
            },
        }


def _base36(number: int, width: int) -> str:
    digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    text = ""
    while number:
        number, rest = divmod(number, 36)
        text = digits[rest] + text
    return text.rjust(width, "0")[-width:]


#: where a system declares no local values of its own (``System.probe_values``).
_DEFAULT_LOCAL = {
    "address_line1": "100 Probe Street",
    "address_line2": "Suite 1",
    "city": "Austin",
    "state": "Texas",
    "postal_code": "78701",
    "country": "US",
    "phone": "+15125550100",
    "mobile": "+15125550199",
    "currency": "USD",
}


def probe_customer(system: str, now: datetime | None = None) -> Customer:
    """The probe's test customer for a system: every canonical field set, each value valid there.

    Args:
        system: the system's name; its plug-in's ``probe_values`` and ``probe_tax_id`` make the
            values valid there (a Mexican CFDI customer for Timbrix, a Chilean one for Piriod).
        now: the time stamped into its name (default: now, UTC).
    """
    now = now or datetime.now(UTC)
    stamp = now.strftime("%Y-%m-%d %H:%M:%S")
    unique = _base36(int(now.timestamp() * 1000), 8)
    declared = systems().get(system)
    local = dict(declared.probe_values) if declared and declared.probe_values else _DEFAULT_LOCAL
    name = f"custsync probe {stamp}"
    make_tax_id = declared.probe_tax_id if declared else None
    tax_id = make_tax_id(now, unique) if make_tax_id else f"PROBE-{unique}"
    return Customer(
        kind="company",
        name=name,
        company_name=name,
        first_name="Probe",
        last_name="Custsync",
        email=f"custsync-probe-{unique.lower()}@example.com",
        website="https://example.com/custsync-probe",
        tax_id=tax_id,
        tax_system="601",
        invoice_use="G03",
        notes="custsync probe test customer; safe to delete",
        **local,
    )


def compare(connector: Connector, sent: Customer, got: Customer | None) -> list[FieldResult]:
    """Per canonical field the test customer holds: stored, changed, dropped or not kept.

    Args:
        connector: the connection's connector (what it claims to keep: ``shape``).
        sent: the customer as the probe made it.
        got: the customer as read back (``None``: nothing readable came back).
    """
    shaped = connector.shape(sent)
    results: list[FieldResult] = []
    for name in CANONICAL_FIELDS:
        value = getattr(sent, name)
        if value is None or name == "active":
            continue
        back = getattr(got, name) if got is not None else None
        written = getattr(shaped, name)
        if written is None:
            status = NOT_KEPT
        elif back is None:
            status = DROPPED
        elif back == written == value:
            status = STORED
        else:
            status = CHANGED
        results.append(FieldResult(name, status, value, back))
    return results


async def probe(connector: Connector, *, now: datetime | None = None) -> ProbeReport:
    """Create the test customer, read it back, compare, then archive or delete it.

    Args:
        connector: an open connector (``async with``).
        now: the time stamped into the test customer's name.

    Returns:
        The report; ``cleaned`` is False when the customer could not be
        archived or deleted (``cleanup`` says why).

    Raises:
        ConnectorError: the system refused or could not be reached (the probe did not run).
        ProbeError: the system cannot take the test customer (a field it refuses).
    """
    report = ProbeReport(connection=connector.name, system=connector.system)
    sent = probe_customer(connector.system, now)
    problems = connector.problems(connector.shape(sent))
    if problems:
        raise ProbeError(f"{connector.system} would refuse the test customer: {problems[0]}")
    external_id = f"custsync-probe:{_base36(int((now or datetime.now(UTC)).timestamp() * 1000), 8)}"
    created = await connector.create(sent, external_id)
    report.remote_id = created.remote.id
    log.info("probe_created", connection=connector.name, remote_id=report.remote_id)
    try:
        back = await connector.get(report.remote_id)
        report.fields = compare(connector, sent, back.customer)
    finally:
        report.cleanup, report.cleaned = await _clean_up(connector, report.remote_id)
    log.info(
        "probe_finished",
        connection=connector.name,
        stored=sum(r.stored for r in report.fields),
        fields=len(report.fields),
        cleanup=report.cleanup,
    )
    return report


async def _clean_up(connector: Connector, remote_id: str) -> tuple[str, bool]:
    from connectors.errors import ConnectorError

    try:
        if connector.spec.archive:
            await connector.set_active(remote_id, False)
        else:
            await connector.delete(remote_id)
    except ConnectorError as exc:
        log.warning("probe_cleanup_failed", connection=connector.name, remote_id=remote_id, error=str(exc))
        return f"left in place (could not remove it: {exc})", False
    return ("archived" if connector.spec.archive else "deleted"), True


class ProbeError(Exception):
    """The probe could not run; one line."""


__all__ = [
    "CHANGED",
    "DROPPED",
    "NOT_KEPT",
    "STORED",
    "FieldResult",
    "ProbeError",
    "ProbeReport",
    "compare",
    "probe",
    "probe_customer",
]
