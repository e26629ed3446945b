"""What a system plug-in declares: one :class:`System`, registered in the ``custsync.systems`` group.

A plug-in is a Python distribution with an entry point::

    [project.entry-points."custsync.systems"]
    books = "books_plugin.system:SYSTEM"

pointing at a :class:`System`. Everything custsync knows about a system
beyond its connector class lives here: the sample customers of the contract
suite, what ``custsync init`` writes for it, what ``custsync demo`` edits in
it, the probe's local values. Its emulator (if it ships one) is declared on
the sandbox side, in the ``custsync.sandbox`` group, under the same name
(:class:`sandbox.plugin.EmulatorPlugin`): the sandbox imports no connector.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from connectors.base import Connector
from connectors.model import Customer


def seed_fake(emulator: Any, n: int) -> list[str]:
    """Seed ``n`` fake records through the emulator's own ``seed_fake``; their vendor ids."""
    return [str(record["id"]) for record in emulator.seed_fake(n)]


@dataclass(frozen=True)
class DemoEdit:
    """How ``custsync demo`` edits records of a system, the way a user of its web app would.

    Attributes:
        phone_field: the vendor field (admin-surface name) the demo changes on three records.
        deactivate: the admin-surface patch that archives a fourth; ``None`` where the system
            has no archived state.
    """

    phone_field: str
    deactivate: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class System:
    """One system, as a plug-in declares it.

    Attributes:
        name: the system's name, as in ``system = "NAME"`` (equal to its entry point's name).
        title: how people write it (``Bigcapital``), for help texts.
        connector: the :class:`~connectors.base.Connector` subclass.
        customer: a canonical customer the system can hold, with every field of
            ``connector.spec.fields`` set (the contract suite creates it).
        edited: another one, with different values and natural keys (the suite updates to it).
        demo_edit: what ``custsync demo`` changes in it to show an update.
        seed: stores at least ``n`` records through the emulator's own seeding and returns
            their vendor ids (default: ``emulator.seed_fake(n)``).
        init_block: the commented ``[connections.NAME]`` table ``custsync init`` writes.
        init_pipeline_note: a comment line ``custsync init`` adds to a pipeline into this system.
        demo_next: targets worth a ``custsync demo --source NAME --target T`` (most customers land).
        demo_notes: by source system: why a demo from it into this system cannot land most customers.
        demo_seed_countries: the countries of the customers the demo seeds in a source for this target.
        demo_seed_note: what the demo says about that mix.
        probe_values: valid local values (address, phones, currency) for the probe's test customer.
        probe_tax_id: a valid tax id for the probe's test customer, from the time and a unique text.
        emulator: its emulator's name in the ``custsync.sandbox`` group (default: ``name``).
        order: where it comes in listings (help texts, ``custsync init``); ties go by name.
            Entry points carry no order of their own.
    """

    name: str
    title: str
    connector: type[Connector]
    customer: Customer
    edited: Customer
    demo_edit: DemoEdit
    seed: Callable[[Any, int], list[str]] = seed_fake
    init_block: str = ""
    init_pipeline_note: str | None = None
    demo_next: tuple[str, ...] = ()
    demo_notes: Mapping[str, str] = field(default_factory=dict)
    demo_seed_countries: tuple[str, ...] | None = None
    demo_seed_note: str = ""
    probe_values: Mapping[str, str] = field(default_factory=dict)
    probe_tax_id: Callable[[datetime, str], str] | None = None
    emulator: str | None = None
    order: int = 100

    @property
    def emulator_name(self) -> str:
        """The name of its emulator in the ``custsync.sandbox`` group."""
        return self.emulator or self.name

    def problems(self) -> list[str]:
        """What is wrong with the declaration itself (empty when it is usable)."""
        found = []
        if not self.name or self.name != self.name.strip().lower() or ":" in self.name:
            found.append(f"name {self.name!r} must be lower case, with no colon or space")
        if not (isinstance(self.connector, type) and issubclass(self.connector, Connector)):
            found.append("connector must be a connectors.base.Connector subclass")
        elif getattr(self.connector, "system", None) != self.name:
            found.append(f"connector {self.connector.__name__}.system is {self.connector.system!r}, not {self.name!r}")
        return found


__all__ = ["DemoEdit", "System", "seed_fake"]
