"""What the contract tests share: the expected error tree, and helpers that drive a connector."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
from pydantic import SecretStr

from connectors.base import ConnectionSettings, Connector
from connectors.errors import (
    AuthError,
    ConnectorError,
    NotFoundError,
    RateLimitedError,
    RejectedError,
    RetriableError,
)
from connectors.model import Customer, RemoteCustomer
from connectors.plugin import System

if TYPE_CHECKING:
    from sandbox.plugin import EmulatorPlugin

BASE_URL = "http://contract.test"
EXTERNAL_ID = "contract:tenant:1"
LONG_EXTERNAL_ID = "contract:" + "t" * 60 + ":" + "9" * 40

EXPECTED_ERRORS: dict[int, type[ConnectorError]] = {
    401: AuthError,
    403: AuthError,
    404: NotFoundError,
    409: RejectedError,
    422: RejectedError,
    429: RateLimitedError,
    500: RetriableError,
    502: RetriableError,
    503: RetriableError,
}
OPS = ("list", "get", "create", "update")

ConnectorFactory = Callable[[], Connector]
_T = TypeVar("_T")


def connector_for(system: System, plugin: EmulatorPlugin, emulator: Any) -> Connector:
    """The system's connector against ``emulator`` (not yet opened; ``None``: no transport, mapping only)."""
    cls = system.connector
    settings = cls.settings_model.model_validate(dict(plugin.connection(BASE_URL)))
    transport = None if emulator is None else httpx.ASGITransport(app=emulator.app)
    return cls(f"contract_{system.name}", settings, transport=transport)


def kept(connector: Connector) -> list[str]:
    """The canonical fields a round trip must preserve."""
    return sorted(connector.spec.fields | {"name"})


async def pull(connector: Connector) -> list[RemoteCustomer]:
    """Every record of every page."""
    return [remote async for page in connector.pages() for remote in page]


async def created(connector: Connector, customer: Customer, external_id: str = EXTERNAL_ID) -> str:
    """Create the customer as the engine does (shaped, checked) and return its id."""
    shaped = connector.shape(customer)
    assert connector.problems(shaped) == [], "the contract fixture must be valid for its system"
    result = await connector.create(shaped, external_id)
    assert result.remote.customer is not None, result.remote.problem
    return result.remote.id


def differences(connector: Connector, expected: Customer, got: Customer | None) -> dict[str, Any]:
    """The kept fields where ``got`` is not ``expected``."""
    assert got is not None
    return {
        name: (getattr(expected, name), getattr(got, name))
        for name in kept(connector)
        if getattr(expected, name) != getattr(got, name)
    }


async def call(connector: Connector, op: str, customer: Customer, remote_id: str) -> None:
    """One of :data:`OPS` against the connector."""
    if op == "list":
        await pull(connector)
    elif op == "get":
        await connector.get(remote_id)
    elif op == "create":
        await connector.create(connector.shape(customer), "contract:tenant:2")
    else:
        await connector.update(remote_id, connector.shape(customer), EXTERNAL_ID)


def secrets_of(settings: ConnectionSettings, emulator: Any) -> list[str]:
    """The settings' secret values and the bearer tokens the emulator issued."""
    values = [v.get_secret_value() for v in settings.__dict__.values() if isinstance(v, SecretStr)]
    values += list(getattr(emulator, "tokens", {}))
    return [v for v in values if v]


def faulty(emulator: Any) -> Any:
    """The emulator, answering 401 to every request from now on."""
    emulator.faults.add("error_before", status=401, times=None)
    return emulator


def in_own_loop(test: Callable[..., Awaitable[_T]]) -> Callable[..., _T]:
    """An async test as a plain one, with its own event loop (pytest sees the same parameters)."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> _T:
        return asyncio.run(test(*args, **kwargs))  # type: ignore[arg-type]

    return run


__all__ = [
    "BASE_URL",
    "EXPECTED_ERRORS",
    "EXTERNAL_ID",
    "LONG_EXTERNAL_ID",
    "OPS",
    "ConnectorFactory",
    "call",
    "connector_for",
    "created",
    "differences",
    "faulty",
    "in_own_loop",
    "kept",
    "pull",
    "secrets_of",
]
