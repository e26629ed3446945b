"""The config file: TOML, ``${ENV}`` interpolation, typed and checked at load time.

Every error names the file and the key (``pipelines.books_to_ledger.source``)
and what is wrong; the CLI turns it into exit code 2. Connection tables are
validated by the settings model of their system's connector, so each system
declares its own credentials and a typo in a key is an error, not a silent
default.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from connectors import REGISTRY
from connectors.base import ConnectionSettings
from connectors.model import CANONICAL_FIELDS

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class ConfigError(Exception):
    """The config file is wrong; the message names the file and the key."""


class StateConfig(BaseModel):
    """``[state]``: where the state store lives."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    url: str = "sqlite:///custsync.db"


class BrokerConfig(BaseModel):
    """``[broker]``: the Celery broker and result backend."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    url: str = "redis://localhost:6379/0"
    result_backend: str | None = None


class PipelineConfig(BaseModel):
    """``[pipelines.NAME]``: one direction of replication.

    Attributes:
        source: connection name to read from.
        target: connection name to write to.
        schedule: cron expression; ``None`` for on-demand only.
        archive: propagate inactive / archived records.
        defaults: canonical values for fields the target requires and the source lacks.
        match_on: natural keys that find an existing target record when no
            link exists; ``None`` means the target's own (tax_id, email) where
            the target has no identity slot, and none where it has one.
        truncate: cut over-long text to the target's limit instead of quarantining.
        propagate_deletes: archive target records whose source record vanished.
        max_delete_share: refuse to archive more than this share of the
            target's linked records in one run because of deletions.
        delete_on_archive: for targets with no archived state (Timbrix),
            delete the record instead of keeping it. Off by default.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    source: str
    target: str
    schedule: str | None = None
    archive: bool = True
    defaults: dict[str, str] = Field(default_factory=dict)
    match_on: list[str] | None = None
    truncate: bool = False
    propagate_deletes: bool = False
    max_delete_share: float = Field(default=0.1, ge=0, le=1)
    delete_on_archive: bool = False

    @field_validator("defaults")
    @classmethod
    def _known_default_fields(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if name not in CANONICAL_FIELDS or name in {"active"}:
                raise ValueError(f"{name!r} is not a canonical field (one of {', '.join(CANONICAL_FIELDS[:-1])})")
        return value

    @field_validator("match_on")
    @classmethod
    def _known_keys(cls, value: list[str] | None) -> list[str] | None:
        for name in value or []:
            if name not in {"tax_id", "email"}:
                raise ValueError(f"{name!r} cannot be matched on; use tax_id and/or email")
        return value

    @field_validator("schedule")
    @classmethod
    def _valid_cron(cls, value: str | None) -> str | None:
        if value is not None and not croniter.is_valid(value):
            raise ValueError(f"{value!r} is not a cron expression (e.g. '*/15 * * * *')")
        return value


class AppConfig(BaseModel):
    """The whole config file, validated."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)
    path: Path
    state: StateConfig
    broker: BrokerConfig
    connections: Mapping[str, ConnectionSettings]
    pipelines: Mapping[str, PipelineConfig]

    def pipeline(self, name: str) -> PipelineConfig:
        """A pipeline by name.

        Raises:
            ConfigError: no such pipeline; the message lists the known ones.
        """
        try:
            return self.pipelines[name]
        except KeyError:
            known = ", ".join(sorted(self.pipelines)) or "none"
            raise ConfigError(f"{self.path}: no pipeline {name!r} (known: {known})") from None


def interpolate(value: Any, *, where: str, path: Path, environ: Mapping[str, str]) -> Any:
    """Replace ``${NAME}`` in every string of a TOML value."""
    if isinstance(value, str):

        def sub(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in environ:
                raise ConfigError(f"{path}: {where}: environment variable {name} is not set")
            return environ[name]

        return _VAR.sub(sub, value)
    if isinstance(value, dict):
        return {
            k: interpolate(v, where=f"{where}.{k}" if where else k, path=path, environ=environ)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [interpolate(v, where=f"{where}[{i}]", path=path, environ=environ) for i, v in enumerate(value)]
    return value


def load_config(
    path: Path,
    *,
    environ: Mapping[str, str] | None = None,
    state_url: str | None = None,
    broker_url: str | None = None,
) -> AppConfig:
    """Read, interpolate and validate a config file.

    Args:
        path: the TOML file.
        environ: variables for ``${NAME}`` (default: the process environment).
        state_url: overrides ``[state] url`` (``CUSTSYNC_STATE_URL``).
        broker_url: overrides ``[broker] url`` (``CUSTSYNC_BROKER_URL``).

    Raises:
        ConfigError: anything wrong, naming the file and key.
    """
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file (use --config or $CUSTSYNC_CONFIG)") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_config(
        raw, path=path, environ=os.environ if environ is None else environ, state_url=state_url, broker_url=broker_url
    )


def parse_config(
    raw: Mapping[str, Any],
    *,
    path: Path,
    environ: Mapping[str, str],
    state_url: str | None = None,
    broker_url: str | None = None,
) -> AppConfig:
    """Validate an already-parsed config (see :func:`load_config`)."""
    unknown = set(raw) - {"state", "broker", "connections", "pipelines"}
    if unknown:
        raise ConfigError(
            f"{path}: {sorted(unknown)[0]}: unknown section (expected state, broker, connections, pipelines)"
        )
    values = interpolate(dict(raw), where="", path=path, environ=environ)
    state = _model(StateConfig, values.get("state", {}), "state", path)
    broker = _model(BrokerConfig, values.get("broker", {}), "broker", path)
    if state_url:
        state = StateConfig(url=state_url)
    if broker_url:
        broker = BrokerConfig(url=broker_url, result_backend=broker.result_backend)
    connections: dict[str, ConnectionSettings] = {}
    for name, table in _tables(values, "connections", path).items():
        system = table.get("system")
        if system not in REGISTRY:
            known = ", ".join(sorted(REGISTRY))
            raise ConfigError(f"{path}: connections.{name}.system: unknown system {system!r} (known: {known})")
        connections[name] = _model(REGISTRY[system].settings_model, table, f"connections.{name}", path)
    pipelines: dict[str, PipelineConfig] = {}
    for name, table in _tables(values, "pipelines", path).items():
        pipeline = _model(PipelineConfig, table, f"pipelines.{name}", path)
        for role in ("source", "target"):
            ref = getattr(pipeline, role)
            if ref not in connections:
                known = ", ".join(sorted(connections)) or "none"
                raise ConfigError(f"{path}: pipelines.{name}.{role}: no connection {ref!r} (known: {known})")
        if pipeline.source == pipeline.target:
            raise ConfigError(f"{path}: pipelines.{name}: source and target are the same connection")
        pipelines[name] = pipeline
    return AppConfig(path=path, state=state, broker=broker, connections=connections, pipelines=pipelines)


def _tables(values: Mapping[str, Any], section: str, path: Path) -> dict[str, dict[str, Any]]:
    tables = values.get(section, {})
    if not isinstance(tables, dict):
        raise ConfigError(f"{path}: {section}: must be a table of tables")
    for name, table in tables.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: {section}.{name}: must be a table")
    return tables


def _model(model: type[BaseModel], table: Any, where: str, path: Path) -> Any:
    try:
        return model.model_validate(table)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(p) for p in (where, *error["loc"]))
        kind = error["type"]
        message = "unknown key" if kind == "extra_forbidden" else "missing" if kind == "missing" else error["msg"]
        raise ConfigError(f"{path}: {key}: {message}") from None


__all__ = ["AppConfig", "BrokerConfig", "ConfigError", "PipelineConfig", "StateConfig", "load_config", "parse_config"]
