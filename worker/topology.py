"""The pairs and rings a config's pipelines form, and the two-way rules each pipeline runs under.

Two pipelines in opposite directions between the same two connections form a
*two-way pair*; pipelines whose connections form a cycle form a *ring*. A
pipeline in either is *two-way*: it compares field by field against what each
side held at the last sync (:mod:`worker.engine.twoway`). Either pipeline of a
pair may declare ``conflict`` and ``owner``; the declaration applies to the
pair, and two different declarations are a configuration error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

Policy = Literal["hold", "source_wins", "newest_wins"]


class _Pipeline(Protocol):
    @property
    def source(self) -> str: ...
    @property
    def target(self) -> str: ...
    @property
    def conflict(self) -> Policy | None: ...
    @property
    def owner(self) -> Mapping[str, str]: ...


@dataclass(frozen=True)
class Rules:
    """How one pipeline settles a field edited on both sides.

    Attributes:
        two_way: the pipeline is in a pair or a ring (else the source is the master).
        conflict: the policy for conflicting fields.
        owner: canonical field → the connection whose edits alone flow.
        partner: the opposite pipeline of its pair, if it has one.
    """

    two_way: bool = False
    conflict: Policy = "hold"
    owner: Mapping[str, str] = field(default_factory=dict)
    partner: str | None = None


ONE_WAY = Rules()


class Topology:
    """The pipelines of a config seen as a graph of connections."""

    def __init__(self, pipelines: Mapping[str, _Pipeline]) -> None:
        self.pipelines = pipelines
        self._edges: dict[str, set[str]] = {}
        for p in pipelines.values():
            self._edges.setdefault(p.source, set()).add(p.target)

    def partner(self, name: str) -> str | None:
        """The opposite pipeline of ``name``'s pair (the first by name when several)."""
        p = self.pipelines[name]
        found = sorted(n for n, q in self.pipelines.items() if (q.source, q.target) == (p.target, p.source))
        return found[0] if found else None

    def in_ring(self, name: str) -> bool:
        """``name``'s target reaches its source through the pipelines (a pair is a ring of two)."""
        p = self.pipelines[name]
        seen, todo = {p.target}, [p.target]
        while todo:
            here = todo.pop()
            if here == p.source:
                return True
            for there in self._edges.get(here, ()):
                if there not in seen:
                    seen.add(there)
                    todo.append(there)
        return False

    def rules(self, name: str) -> Rules:
        """The two-way rules ``name`` runs under (:data:`ONE_WAY` outside pairs and rings)."""
        if not self.in_ring(name):
            return ONE_WAY
        p = self.pipelines[name]
        partner = self.partner(name)
        q = self.pipelines[partner] if partner is not None else None
        conflict = p.conflict or (q.conflict if q is not None else None) or "hold"
        owner = dict(p.owner) or (dict(q.owner) if q is not None else {})
        return Rules(True, conflict, owner, partner)

    def problems(self) -> list[str]:
        """Pairs whose two pipelines declare different rules, one line each."""
        found: list[str] = []
        for name in sorted(self.pipelines):
            partner = self.partner(name)
            if partner is None or partner < name:
                continue
            p, q = self.pipelines[name], self.pipelines[partner]
            if p.conflict and q.conflict and p.conflict != q.conflict:
                found.append(
                    f"pipelines.{name}.conflict: {p.conflict!r}, but its pair pipelines.{partner} says "
                    f"{q.conflict!r}; declare it once, or the same in both"
                )
            if p.owner and q.owner and dict(p.owner) != dict(q.owner):
                found.append(
                    f"pipelines.{name}.owner: differs from its pair pipelines.{partner}.owner; "
                    "declare it once, or the same in both"
                )
        return found


__all__ = ["ONE_WAY", "Policy", "Rules", "Topology"]
