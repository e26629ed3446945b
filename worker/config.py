"""The config file: TOML, ``${ENV}`` interpolation, typed and checked at load time.

Every error names the file and the key (``pipelines.books_to_ledger.source``)
and what is wrong; the CLI turns it into exit code 2. Connection tables are
validated by the settings model of their system's connector, so each system
declares its own credentials and a typo in a key is an error, not a silent
default.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from connectors import REGISTRY
from connectors.base import ConnectionSettings
from connectors.model import CANONICAL_FIELDS
from connectors.secrets import remember
from worker.topology import Topology

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
        conflict: in a two-way pair or ring, what a field edited on both sides
            since the last sync becomes (``hold``, the default; ``source_wins``;
            ``newest_wins``). Declared by either pipeline of a pair, it applies to both.
        owner: canonical field → the connection whose edits alone flow for it.
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
    conflict: Literal["hold", "source_wins", "newest_wins"] | None = None
    owner: dict[str, str] = Field(default_factory=dict)

    @field_validator("owner")
    @classmethod
    def _known_owned_fields(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if name not in CANONICAL_FIELDS:
                raise ValueError(f"{name!r} is not a canonical field (one of {', '.join(CANONICAL_FIELDS)})")
        return value

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
        # The very check beat makes when it builds its entries: a schedule accepted here always runs.
        from worker.schedule import cron_fields

        if value is not None:
            cron_fields(value)
        return value


class AppConfig(BaseModel):
    """The whole config file, validated."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)
    path: Path
    state: StateConfig
    broker: BrokerConfig
    connections: Mapping[str, ConnectionSettings]
    pipelines: Mapping[str, PipelineConfig]

    def topology(self) -> Topology:
        """The pairs and rings the pipelines form (:mod:`worker.topology`)."""
        return Topology(self.pipelines)

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


def interpolate(
    value: Any, *, where: str, path: Path, environ: Mapping[str, str], errors: list[str] | None = None
) -> Any:
    """Replace ``${NAME}`` in every string of a TOML value.

    Args:
        value: a TOML value (table, list, string...).
        where: its key, for messages.
        path: the config file, for messages.
        environ: the variables.
        errors: collects one line per unset or empty variable (the reference is
            left as it is); without it the first one raises.

    Raises:
        ConfigError: a variable is unset or empty (only when ``errors`` is None).
    """
    if isinstance(value, str):

        def sub(match: re.Match[str]) -> str:
            name = match.group(1)
            problem = None
            if name not in environ:
                problem = f"{path}: {where}: environment variable {name} is not set"
            elif not environ[name].strip():
                problem = f"{path}: {where}: environment variable {name} is empty"
            if problem is None:
                return environ[name]
            if errors is None:
                raise ConfigError(problem)
            errors.append(problem)
            return match.group(0)

        return _VAR.sub(sub, value)
    if isinstance(value, dict):
        return {
            k: interpolate(v, where=f"{where}.{k}" if where else k, path=path, environ=environ, errors=errors)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [
            interpolate(v, where=f"{where}[{i}]", path=path, environ=environ, errors=errors)
            for i, v in enumerate(value)
        ]
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
        ConfigError: anything wrong, naming the file and key; one line per problem.
    """
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file (use --config or $CUSTSYNC_CONFIG)") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a config file (use --config FILE)") from None
    except PermissionError:
        raise ConfigError(f"{path}: cannot read the config file (permission denied)") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); save the config file as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror or type(exc).__name__})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_config(
        raw, path=path, environ=os.environ if environ is None else environ, state_url=state_url, broker_url=broker_url
    )


_SECTIONS = ("state", "broker", "connections", "pipelines")


def parse_config(
    raw: Mapping[str, Any],
    *,
    path: Path,
    environ: Mapping[str, str],
    state_url: str | None = None,
    broker_url: str | None = None,
) -> AppConfig:
    """Validate an already-parsed config (see :func:`load_config`).

    Every problem is reported at once, one line each. Every secret of every
    connection is remembered (:mod:`connectors.secrets`), so that no string
    leaving custsync shows it, even one an API echoes back.

    Raises:
        ConfigError: one line per problem, each naming the file and the key.
    """
    errors: list[str] = []
    for name in sorted(set(raw) - set(_SECTIONS)):
        errors.append(
            f"{path}: {name}: unknown section (expected {', '.join(_SECTIONS)}){_did_you_mean(name, _SECTIONS)}"
        )
    values = interpolate(
        {k: v for k, v in raw.items() if k in _SECTIONS}, where="", path=path, environ=environ, errors=errors
    )
    state = _model(StateConfig, values.get("state", {}), "state", path, errors)
    broker = _model(BrokerConfig, values.get("broker", {}), "broker", path, errors)
    if state_url:
        state = StateConfig(url=state_url)
    elif state is not None:
        state = StateConfig(url=resolve_sqlite_url(state.url, path.parent))
    if broker_url:
        broker = BrokerConfig(url=broker_url, result_backend=broker.result_backend if broker else None)
    connections: dict[str, ConnectionSettings] = {}
    for name, table in _tables(values, "connections", path, errors).items():
        where = f"connections.{name}"
        system = table.get("system")
        if not isinstance(system, str) or system not in REGISTRY:
            known = ", ".join(sorted(REGISTRY))
            errors.append(f"{path}: {where}.system: unknown system {system!r} (known: {known})")
            continue
        settings = _model(REGISTRY[system].settings_model, table, where, path, errors)
        if settings is None:
            continue
        _remember_secrets(settings)
        if problem := _base_url_problem(settings.base_url):
            errors.append(f"{path}: {where}.base_url: {problem}")
        connections[name] = settings
    pipelines: dict[str, PipelineConfig] = {}
    for name, table in _tables(values, "pipelines", path, errors).items():
        pipeline = _model(PipelineConfig, table, f"pipelines.{name}", path, errors)
        if pipeline is None:
            continue
        for role in ("source", "target"):
            ref = getattr(pipeline, role)
            if ref not in connections and ref not in values.get("connections", {}):
                known = ", ".join(sorted(values.get("connections", {}))) or "none"
                errors.append(
                    f"{path}: pipelines.{name}.{role}: no connection {ref!r} (known: {known})"
                    + _did_you_mean(ref, values.get("connections", {}))
                )
        if pipeline.source == pipeline.target:
            errors.append(f"{path}: pipelines.{name}: source and target are the same connection")
        for field_name, owner in pipeline.owner.items():
            if owner not in (pipeline.source, pipeline.target):
                errors.append(
                    f"{path}: pipelines.{name}.owner.{field_name}: {owner!r} is neither this pipeline's source "
                    f"({pipeline.source!r}) nor its target ({pipeline.target!r})"
                )
        pipelines[name] = pipeline
    errors.extend(f"{path}: {problem}" for problem in Topology(pipelines).problems())
    if errors:
        raise ConfigError("\n".join(dict.fromkeys(errors)))
    assert state is not None
    assert broker is not None
    return AppConfig(path=path, state=state, broker=broker, connections=connections, pipelines=pipelines)


def resolve_sqlite_url(url: str, folder: Path) -> str:
    """A relative SQLite file resolved against ``folder`` (the config file's), not the working directory.

    ``custsync status`` run from another folder must read the same database,
    not create an empty one where it stands.
    """
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        return url
    database, sep, query = url[len(prefix) :].partition("?")
    if not database or database == ":memory:" or database.startswith(("file:", "/")) or Path(database).is_absolute():
        return url
    return f"{prefix}{(folder / database).resolve()}{sep}{query}"


def _remember_secrets(settings: BaseModel) -> None:
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            remember(value.get_secret_value())


def _base_url_problem(url: str) -> str | None:
    if "${" in url:
        return None  # its variable is already reported
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"}:
        return f"{url!r} is not an http(s) URL (e.g. https://api.example.com)"
    if not parts.hostname:
        return f"{url!r} has no host"
    return None


def _did_you_mean(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" (did you mean `{close[0]}`?)" if close else ""


def _tables(values: Mapping[str, Any], section: str, path: Path, errors: list[str]) -> dict[str, dict[str, Any]]:
    tables = values.get(section, {})
    if not isinstance(tables, dict):
        errors.append(f"{path}: {section}: must be a table of tables")
        return {}
    good: dict[str, dict[str, Any]] = {}
    for name, table in tables.items():
        if isinstance(table, dict):
            good[name] = table
        else:
            errors.append(f"{path}: {section}.{name}: must be a table")
    return good


def _model(model: type[BaseModel], table: Any, where: str, path: Path, errors: list[str]) -> Any:
    """``model`` validated from ``table``, or ``None`` with one line per problem added to ``errors``."""
    try:
        return model.model_validate(table)
    except ValidationError as exc:
        for error in exc.errors():
            key = ".".join(str(p) for p in (where, *error["loc"]))
            kind = error["type"]
            if kind == "extra_forbidden":
                unknown = str(error["loc"][-1]) if error["loc"] else ""
                message = "unknown key" + _did_you_mean(unknown, model.model_fields)
            elif kind == "missing":
                message = "missing"
            else:
                message = error["msg"].removeprefix("Value error, ")
            errors.append(f"{path}: {key}: {message}")
        return None


__all__ = [
    "AppConfig",
    "BrokerConfig",
    "ConfigError",
    "PipelineConfig",
    "StateConfig",
    "load_config",
    "parse_config",
    "resolve_sqlite_url",
]
