"""The contract's failure tests: HTTP statuses classified into the error tree, and no secret shown."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from structlog.testing import capture_logs

from connectors.errors import ConnectorError, RateLimitedError
from connectors.plugin import System
from sandbox.plugin import EmulatorPlugin
from state.store import Store
from worker.testing.static import sync_from_static
from worker.testing.support import (
    EXPECTED_ERRORS,
    OPS,
    ConnectorFactory,
    call,
    created,
    faulty,
    in_own_loop,
    pull,
    secrets_of,
)

if TYPE_CHECKING:
    import pytest


def error_tests(declared: System) -> type:
    """The error-classification tests of one system: a base of its contract class."""
    import pytest

    class ErrorTests:
        # -- error classification ---------------------------------------------------------------------

        @pytest.mark.parametrize("status", sorted(EXPECTED_ERRORS))
        @pytest.mark.parametrize("op", OPS)
        @in_own_loop
        async def test_given_status_served_when_operating_then_classified_into_error_tree(
            self, op: str, status: int, emulator: Any, make_connector: ConnectorFactory
        ) -> None:
            async with make_connector() as connector:
                remote_id = await created(connector, declared.customer)
                method = {"list": "GET", "get": "GET", "create": "POST", "update": connector.update_method}[op]
                fault = emulator.faults.add(
                    "rate_limit" if status == 429 else "error_before",
                    status=status,
                    times=None,
                    method=method,
                    path="customers",
                    retry_after=1 if status == 429 else None,
                )

                with pytest.raises(ConnectorError) as caught:
                    await call(connector, op, declared.edited, remote_id)

                expected = EXPECTED_ERRORS[status]
                assert type(caught.value) is expected, f"HTTP {status} on {op} gave {type(caught.value).__name__}"
                assert f"HTTP {status}" in str(caught.value)
                if status == 429:
                    assert isinstance(caught.value, RateLimitedError)
                    assert caught.value.retry_after == 1.0
                    assert fault.fired > 1, "a 429 is retried"
                elif status >= 500:
                    # Reads and updates are retried; a create only where the system deduplicates it.
                    retried = op != "create" or connector.create_is_idempotent
                    assert (fault.fired > 1) is retried
                elif status != 401:  # a 401 may cost one token renewal before it is final
                    assert fault.fired == 1, f"HTTP {status} must not be retried"

    return ErrorTests


def secret_tests(declared: System) -> type:
    """The no-secret-shown test of one system: a base of its contract class."""

    class SecretTests:
        # -- secrets -------------------------------------------------------------------------------------

        @in_own_loop
        async def test_given_secrets_in_settings_when_syncing_and_failing_then_no_log_or_error_shows_them(
            self,
            plugin: EmulatorPlugin,
            emulator: Any,
            make_connector: ConnectorFactory,
            sqlite_store: Store,
            monkeypatch: pytest.MonkeyPatch,
            caplog: pytest.LogCaptureFixture,
        ) -> None:
            caplog.set_level(logging.DEBUG)
            errors: list[BaseException] = []
            with capture_logs() as events:
                records = [declared.customer]
                result = await sync_from_static(monkeypatch, declared, plugin, emulator, sqlite_store, records)
                async with make_connector() as connector:
                    await pull(connector)  # as a source
                    for status, op in ((401, "list"), (500, "list"), (422, "create"), (409, "update")):
                        emulator.faults.clear()
                        emulator.faults.add(
                            "error_before",
                            status=status,
                            times=None,
                            path="customers",
                            method={"list": "GET", "create": "POST"}.get(op, connector.update_method),
                        )
                        try:
                            await call(connector, op, declared.edited, next(iter(emulator.records)))
                        except ConnectorError as exc:
                            errors.append(exc)
                emulator.faults.clear()
                failed = await sync_from_static(
                    monkeypatch, declared, plugin, faulty(emulator), sqlite_store, [declared.edited]
                )

            secrets = secrets_of(make_connector().settings, emulator)
            assert secrets, "the settings hold at least one secret"
            assert (result.status, failed.status) == ("succeeded", "failed")
            assert len(errors) == 4
            assert any(e.get("event") == "run_finished" for e in events), "the engine's events were captured"
            texts = [repr(e) for e in events] + [r.getMessage() for r in caplog.records]
            texts += [f"{exc!s} {exc!r} {exc.__cause__!r}" for exc in errors] + [str(failed.error)]
            leaks = [(secret[:4], text) for secret in secrets for text in texts if secret in text]
            assert leaks == []

    return SecretTests


__all__ = ["error_tests", "secret_tests"]
