"""An emulator's record store (records that count their changes, cached listing orders) and request log."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sandbox._faults import WRITE_METHODS


class _Counting(dict[str, Any]):
    """A ``dict`` whose every top-level change adds one to a shared counter (``_changes[0]``)."""

    __slots__ = ("_changes",)

    def __init__(self, *args: Any, changes: list[int] | None = None, **kwargs: Any) -> None:
        self._changes = changes if changes is not None else [0]
        super().__init__(*args, **kwargs)

    def _bump(self) -> None:
        counter = getattr(self, "_changes", None)  # unset while a copy is being rebuilt
        if counter is not None:
            counter[0] += 1

    def __setitem__(self, key: str, value: Any) -> None:
        self._bump()
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        self._bump()
        super().__delitem__(key)

    def __ior__(self, other: Any) -> _Counting:  # type: ignore[override,misc]
        self._bump()
        super().update(other)
        return self

    def update(self, *args: Any, **kwargs: Any) -> None:
        self._bump()
        super().update(*args, **kwargs)

    def pop(self, *args: Any) -> Any:
        self._bump()
        return super().pop(*args)

    def popitem(self) -> tuple[str, Any]:
        self._bump()
        return super().popitem()

    def setdefault(self, key: str, default: Any = None) -> Any:
        self._bump()
        return super().setdefault(key, default)

    def clear(self) -> None:
        self._bump()
        super().clear()


class Record(_Counting):
    """A stored record: a ``dict`` that counts its changes on its emulator's counter (for :class:`OrderCache`).

    A change nested deeper (``record["metadata"]["x"] = 1``) is not counted:
    the cached orders sort on top-level fields only.
    """

    __slots__ = ()


class Records(_Counting):
    """An emulator's records by id; ``changes`` counts additions, removals and :class:`Record` changes."""

    __slots__ = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, changes=[0], **kwargs)

    @property
    def changes(self) -> list[int]:
        """The counter its records share: ``changes[0]`` grows with every change."""
        return self._changes

    def record(self, data: Mapping[str, Any]) -> Record:
        """A new record counting its changes here (not stored yet)."""
        return Record(data, changes=self._changes)


def new_record(records: Mapping[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
    """A record for ``records``: a :class:`Record` counting on it when it is :class:`Records`, else a dict."""
    return records.record(data) if isinstance(records, Records) else dict(data)


class OrderCache:
    """Listing orders of an emulator's records, computed once per state of the records.

    A listing that sorts every record per page request makes a full walk
    quadratic: the emulator, not the client, would set the pace. The order of
    *all* records under one sort is kept here until they change (a
    :class:`Record` or :class:`Records` change, or another records object); each page
    then filters it, which gives the same rows as sorting the filtered rows
    when the sort is a total order (every emulator's ends on the id).
    """

    def __init__(self) -> None:
        self._orders: dict[Any, tuple[tuple[int, int, int], list[dict[str, Any]]]] = {}

    def order(
        self,
        records: Mapping[str, dict[str, Any]],
        key: Any,
        sort: Callable[[list[dict[str, Any]]], list[dict[str, Any]]],
    ) -> list[dict[str, Any]]:
        """Every record in the order ``sort`` gives (``key`` names the sort); do not change the list.

        Records that are not :class:`Records` (a test replaced them) are sorted every time.
        """
        if not isinstance(records, Records):
            return sort(list(records.values()))
        stamp = (records.changes[0], id(records), len(records))
        held = self._orders.get(key)
        if held is not None and held[0] == stamp:
            return held[1]
        ordered = sort(list(records.values()))
        self._orders[key] = (stamp, ordered)
        return ordered


@dataclass(frozen=True)
class LoggedRequest:
    """One request the emulator answered (admin requests are not logged)."""

    method: str
    path: str
    query: str
    status: int

    @property
    def is_write(self) -> bool:
        """True for a method that changes records."""
        return self.method in WRITE_METHODS


__all__ = ["LoggedRequest", "OrderCache", "Record", "Records", "new_record"]
