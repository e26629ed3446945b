"""The systems custsync knows: loaded once from the ``custsync.systems`` entry-point group.

Each entry point names a :class:`~connectors.plugin.System` (its name is the
system's name). The four systems of custsync itself are registered in its
own ``pyproject.toml``; another distribution adds one by declaring an entry
point in the same group and being installed next to custsync.

A plug-in that cannot be loaded, or two that claim one name, stop the load
with a :class:`PluginError` whose message is one line naming the entry point.
"""

from __future__ import annotations

import re
from functools import cache
from importlib.metadata import EntryPoint, entry_points

from connectors.plugin import System

GROUP = "custsync.systems"


class PluginError(RuntimeError):
    """A system plug-in that cannot be used; the message is one line naming its entry point."""


def _where(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    origin = f" from {dist.name}" if dist is not None and getattr(dist, "name", None) else ""
    return f"plug-in {ep.name!r} ({GROUP}: {ep.value}{origin})"


def _load(ep: EntryPoint) -> System:
    try:
        declared = ep.load()
    except Exception as exc:  # any import-time failure of a third party's module: one line, not a traceback
        raise PluginError(f"{_where(ep)} cannot be loaded: {type(exc).__name__}: {exc}".splitlines()[0]) from exc
    if not isinstance(declared, System):
        raise PluginError(f"{_where(ep)} is a {type(declared).__name__}, not a connectors.plugin.System")
    problems = declared.problems()
    if declared.name != ep.name:
        problems.insert(0, f"it declares the system {declared.name!r} under the entry point {ep.name!r}")
    if problems:
        raise PluginError(f"{_where(ep)} is not usable: {'; '.join(problems)}")
    return declared


@cache
def systems() -> dict[str, System]:
    """Every registered system by name, by ``order`` then name (loaded once; see :func:`reload`).

    Raises:
        PluginError: a plug-in cannot be loaded or is not a valid declaration, or two plug-ins
            declare the same system.
    """
    found: dict[str, System] = {}
    origins: dict[str, str] = {}
    for ep in sorted(entry_points(group=GROUP), key=lambda ep: ep.name):
        if ep.name in found:
            raise PluginError(
                f"{_where(ep)} declares the system {ep.name!r}, already declared by {origins[ep.name]}: "
                "uninstall one of them"
            )
        found[ep.name] = _load(ep)
        origins[ep.name] = _where(ep)
    return dict(sorted(found.items(), key=lambda item: (item[1].order, item[0])))


def names() -> tuple[str, ...]:
    """The registered systems' names, in registry order."""
    return tuple(systems())


def get_system(name: str) -> System:
    """The declaration of one system.

    Raises:
        KeyError: unknown system; the message lists the known ones.
    """
    try:
        return systems()[name]
    except KeyError:
        raise KeyError(f"unknown system {name!r} (known: {', '.join(sorted(systems()))})") from None


def reload() -> None:
    """Forget what was loaded (after installing or removing a plug-in in this process)."""
    systems.cache_clear()
    _external_id_pattern.cache_clear()
    from connectors import _reset_registry

    _reset_registry()


@cache
def _external_id_pattern() -> re.Pattern[str]:
    alternatives = "|".join(re.escape(name) for name in sorted(systems(), key=len, reverse=True))
    return re.compile(rf"(?:{alternatives}):[^:\s]+:\S+")


class ExternalIdPattern:
    """What our external_ids look like, ``system:tenant:id`` for a registered system.

    Compiled on first use, so that a connector module can hold one at import time.
    """

    def fullmatch(self, text: str) -> re.Match[str] | None:
        """The match of the whole text, or ``None``."""
        return _external_id_pattern().fullmatch(text)


#: ``EXTERNAL_ID.fullmatch("thredfi:biz:42")``: one of ours; ``"PO-2024-118"``: a user's own reference.
EXTERNAL_ID = ExternalIdPattern()

__all__ = [
    "EXTERNAL_ID",
    "GROUP",
    "ExternalIdPattern",
    "PluginError",
    "get_system",
    "names",
    "reload",
    "systems",
]
