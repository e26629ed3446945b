"""Connectors: one module per system, each registered as a plug-in.

The systems come from the ``custsync.systems`` entry-point group
(:mod:`connectors.registry`); :data:`REGISTRY` maps each system's name to its
connector class. Registering a plug-in is all it takes for the config loader
to accept its system, the engine to use it, and the contract suite
(:func:`worker.testing.contract_test_class`) to test it. A configured
connection is built by :func:`worker.runner.build_connector`.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping

from connectors.base import Connector


class _Registry(MutableMapping[str, type[Connector]]):
    """The connector class of each registered system, loaded from the plug-ins on first use.

    Mutable for tests only (``monkeypatch.setitem(REGISTRY, "static", ...)``).
    """

    def __init__(self) -> None:
        self._classes: dict[str, type[Connector]] | None = None

    def _loaded(self) -> dict[str, type[Connector]]:
        if self._classes is None:
            from connectors.registry import systems

            self._classes = {name: system.connector for name, system in systems().items()}
        return self._classes

    def reset(self) -> None:
        self._classes = None

    def __getitem__(self, system: str) -> type[Connector]:
        return self._loaded()[system]

    def __setitem__(self, system: str, cls: type[Connector]) -> None:
        self._loaded()[system] = cls

    def __delitem__(self, system: str) -> None:
        del self._loaded()[system]

    def __iter__(self) -> Iterator[str]:
        return iter(self._loaded())

    def __len__(self) -> int:
        return len(self._loaded())

    def __repr__(self) -> str:
        return f"REGISTRY({self._loaded()!r})"


REGISTRY: MutableMapping[str, type[Connector]] = _Registry()


def _reset_registry() -> None:
    """Forget the loaded classes (:func:`connectors.registry.reload` calls it)."""
    assert isinstance(REGISTRY, _Registry)
    REGISTRY.reset()


def get_connector(system: str) -> type[Connector]:
    """The connector class of a system.

    Raises:
        KeyError: unknown system; the message lists the known ones.
        connectors.registry.PluginError: a plug-in cannot be loaded.
    """
    try:
        return REGISTRY[system]
    except KeyError:
        raise KeyError(f"unknown system {system!r} (known: {', '.join(sorted(REGISTRY))})") from None


__all__ = ["REGISTRY", "get_connector"]
