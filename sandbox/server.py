"""Serve every registered emulator together on loopback, and write a config for them.

The emulators come from the ``custsync.sandbox`` entry-point group
(:mod:`sandbox.plugin`). One Starlette app mounts each under its system's
name, so one port serves them all::

    http://127.0.0.1:8765/NAME/...

Used by ``custsync sandbox``, ``custsync demo``, end-to-end tests and the
benchmarks.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, get_args

import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount

from sandbox._core import Emulator
from sandbox._faults import FaultKind
from sandbox.plugin import emulators

FAULT_KINDS: tuple[str, ...] = get_args(FaultKind)


def __getattr__(name: str) -> Any:
    """``SYSTEMS``: the registered emulators' names, looked up when asked for."""
    if name == "SYSTEMS":
        return tuple(emulators())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass
class Sandbox:
    """Every registered emulator and the app that serves them."""

    emulators: dict[str, Emulator] = field(default_factory=dict)
    app: Starlette = field(init=False)

    def __post_init__(self) -> None:
        if not self.emulators:
            self.emulators = {name: plugin.factory() for name, plugin in emulators().items()}
        self.app = Starlette(routes=[Mount(f"/{name}", app=emu.app) for name, emu in self.emulators.items()])

    def __getitem__(self, system: str) -> Emulator:
        return self.emulators[system]


def parse_fault(spec: str) -> tuple[str, str, dict[str, Any]]:
    """Parse ``SYSTEM:KIND[:key=value,...]`` (the ``--fault`` option).

    Example: ``thredfi:error_after:method=POST,probability=0.1,times=``
    (an empty value means "no limit"); ``thredfi:drop_field:field=phone``
    (Thredfi silently loses the phone on every write); ``thredfi:kill:skip=4``
    (the sandbox process dies once it applied its fifth Thredfi write).

    Raises:
        ValueError: the text names no system or kind, or a bad option.
    """
    system, _, rest = spec.partition(":")
    kind, _, options = rest.partition(":")
    systems = tuple(emulators())
    if system not in systems:
        raise ValueError(f"fault {spec!r}: unknown system {system!r} (one of {', '.join(systems)})")
    if kind not in FAULT_KINDS:
        raise ValueError(f"fault {spec!r}: unknown kind {kind!r} (one of {', '.join(FAULT_KINDS)})")
    parsed: dict[str, Any] = {"times": None}
    for pair in filter(None, options.split(",")):
        key, _, value = pair.partition("=")
        if key in {"status", "skip"}:
            parsed[key] = int(value)
        elif key == "times":
            parsed[key] = int(value) if value else None
        elif key in {"retry_after", "delay_s", "probability"}:
            parsed[key] = float(value)
        elif key in {"method", "path", "field"}:
            parsed[key] = value
        elif key == "after":
            parsed[key] = value.lower() in {"1", "true", "yes"}
        else:
            raise ValueError(f"fault {spec!r}: unknown option {key!r}")
    if kind == "drop_field" and not parsed.get("field"):
        raise ValueError(f"fault {spec!r}: drop_field needs field=NAME (e.g. field=phone)")
    return system, kind, parsed


def sandbox_config(
    base_url: str, *, state_url: str = "sqlite:///custsync.db", broker_url: str = "redis://127.0.0.1:6379/0"
) -> str:
    """A config file for the sandbox: a connection per emulator and a pipeline per ordered pair.

    Pipelines are named ``SOURCE_to_TARGET`` (``bigcapital_to_thredfi``).
    Credentials are the emulators' public sandbox values.
    """
    base = base_url.rstrip("/")
    lines = [
        "# custsync config for the local sandbox (custsync sandbox).",
        "[state]",
        f'url = "{state_url}"',
        "",
        "[broker]",
        f'url = "{broker_url}"',
        "",
    ]
    plugins = emulators()
    for name, plugin in plugins.items():
        lines += [*plugin.connection_toml(f"{base}/{name}"), ""]
    for source in plugins:
        for target, plugin in plugins.items():
            if source == target:
                continue
            lines += [f"[pipelines.{source}_to_{target}]", f'source = "{source}"', f'target = "{target}"']
            lines += [*plugin.pipeline(source), ""]
    return "\n".join(lines)


def is_loopback(host: str) -> bool:
    """Whether ``host`` only listens on this machine (``127.0.0.0/8``, ``::1``, ``localhost``).

    The emulators accept their public sandbox credentials and serve an
    unauthenticated admin surface, so they must not be reachable from a network.
    """
    if host.lower() in {"localhost", "localhost.localdomain"}:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name other than localhost: it may resolve to anything
        return False


def free_port(host: str = "127.0.0.1") -> int:
    """An unused TCP port on ``host``."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class BackgroundServer:
    """uvicorn serving an app from a thread (demo, tests, benchmarks).

    Args:
        app: the ASGI app.
        host: loopback address.
        port: 0 picks a free port.
    """

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port or free_port(host)
        config = uvicorn.Config(app, host=host, port=self.port, log_level="warning", access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="sandbox", daemon=True)

    @property
    def url(self) -> str:
        """The server's base URL."""
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"sandbox did not start on {self.url}")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


__all__ = ["BackgroundServer", "Sandbox", "free_port", "is_loopback", "parse_fault", "sandbox_config"]
