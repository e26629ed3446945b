"""What a sandbox emulator plug-in declares: one :class:`EmulatorPlugin`, in the ``custsync.sandbox`` group.

A system plug-in (``custsync.systems``) that ships an emulator declares it
here too, under the same name::

    [project.entry-points."custsync.sandbox"]
    books = "books_plugin.emulator:EMULATOR"

The sandbox server mounts each one under ``/NAME`` and writes its
connection table into the sandbox config; nothing here imports a connector.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sandbox._core import Emulator

GROUP = "custsync.sandbox"


class EmulatorPluginError(RuntimeError):
    """An emulator plug-in that cannot be used; the message is one line naming its entry point."""


def _no_lines(_source: str) -> list[str]:
    return []


@dataclass(frozen=True)
class EmulatorPlugin:
    """One system's emulator, as its plug-in declares it.

    Attributes:
        name: the system's name (the emulator is mounted under ``/NAME``).
        factory: makes a fresh emulator.
        connection: the ``[connections.NAME]`` table (``system``, ``base_url``, the public
            sandbox credentials) for this emulator served at the given base URL.
        pipeline: extra TOML lines of a sandbox pipeline into this system, given its source's
            name (the defaults the system requires on create).
        token_ttl: the emulator issues tokens whose lifetime ``token_ttl_s`` can be set
            (``custsync sandbox --token-ttl``).
        order: where it comes in the sandbox config; ties go by name.
    """

    name: str
    factory: Callable[[], Emulator]
    connection: Callable[[str], Mapping[str, Any]]
    pipeline: Callable[[str], list[str]] = _no_lines
    token_ttl: bool = False
    order: int = 100

    def connection_toml(self, base_url: str) -> list[str]:
        """The connection table as TOML lines."""
        return [f"[connections.{self.name}]", *(f"{k} = {_toml(v)}" for k, v in self.connection(base_url).items())]


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    raise TypeError(f"a sandbox connection value must be a string, number or boolean, not {type(value).__name__}")


def _where(ep: EntryPoint) -> str:
    return f"emulator plug-in {ep.name!r} ({GROUP}: {ep.value})"


@cache
def emulators() -> dict[str, EmulatorPlugin]:
    """Every registered emulator by name, by ``order`` then name (loaded once).

    Raises:
        EmulatorPluginError: one cannot be loaded, is no :class:`EmulatorPlugin`, or two share a name.
    """
    found: dict[str, EmulatorPlugin] = {}
    for ep in sorted(entry_points(group=GROUP), key=lambda ep: ep.name):
        if ep.name in found:
            raise EmulatorPluginError(f"{_where(ep)}: the emulator {ep.name!r} is declared twice: uninstall one")
        try:
            declared = ep.load()
        except Exception as exc:  # a third party's import-time failure: one line, not a traceback
            raise EmulatorPluginError(
                f"{_where(ep)} cannot be loaded: {type(exc).__name__}: {exc}".splitlines()[0]
            ) from exc
        if not isinstance(declared, EmulatorPlugin):
            raise EmulatorPluginError(
                f"{_where(ep)} is a {type(declared).__name__}, not a sandbox.plugin.EmulatorPlugin"
            )
        if declared.name != ep.name:
            raise EmulatorPluginError(f"{_where(ep)} declares the emulator {declared.name!r}")
        found[ep.name] = declared
    return dict(sorted(found.items(), key=lambda item: (item[1].order, item[0])))


def reload() -> None:
    """Forget what was loaded (after installing or removing a plug-in in this process)."""
    emulators.cache_clear()


__all__ = ["GROUP", "EmulatorPlugin", "EmulatorPluginError", "emulators", "reload"]
