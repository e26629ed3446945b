"""The no-op fast path: pages listed as a quiet run listed them are not planned again.

A page's plan is a pure function of the page as listed, the state store, and
the pipeline's configuration with the code that shapes records
(:mod:`worker.engine.plan`). A run that **wrote nothing at all** (the store's
stamp, :meth:`state.memos.Memos.stamp`, the same at its end as at its start)
planned every page against one state; each page whose records all came out
unchanged is remembered by its digest (:class:`connectors.reading.Fetched`).

A later run skips planning a page only when all of these hold:

- the memo's configuration digest is this run's (pipeline, both connections with
  their secrets masked, the pair's rules, both systems' specs, custsync's version);
- the store's stamp now is the one the quiet run ended with: nothing wrote to it since;
- the page at the same position was listed with the same digest (its raw bytes,
  its listing, the records the walk kept), and none of its ids was listed earlier in this run;
- the run is a plain one: not a dry run, ``--full``, ``retry`` or ``backfill --since``.

A skipped page counts its records as unchanged and as seen (the vanished step
still runs on every id). Anything else (a changed record, a write by another
pipeline, an upgrade) replans the page, as without the fast path. The first
re-sync after a sync that wrote records plans every page: it is the run that
proves them quiet.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, is_dataclass
from importlib import metadata
from typing import Any

import structlog
from pydantic import BaseModel

from connectors.base import Connector
from connectors.reading import Fetched
from connectors.settings import masked_url
from state.memos import Memo
from state.store import Store
from worker.config import PipelineConfig
from worker.engine.identity import usable_id
from worker.topology import Rules

log = structlog.get_logger("custsync.sync")


def config_digest(pipeline: PipelineConfig, source: Connector, target: Connector, rules: Rules) -> str:
    """What a plan depends on besides the page and the store, as one digest (secrets masked)."""
    parts = {
        "custsync": _version(),
        "pipeline": pipeline.model_dump(mode="json"),
        "rules": _plain(rules),
        "connections": [_connection(source), _connection(target)],
    }
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


class PageMemory:
    """One run's side of the fast path: which pages it may skip, and the memo it leaves.

    Args:
        store: the state store.
        pipeline: the pipeline's name.
        config: :func:`config_digest` of this run.
    """

    @staticmethod
    def nothing() -> PageMemory:
        """The memory of a run that is not a plain one: it skips no page, and leaves or forgets no memo."""
        return _Nothing()

    def __init__(self, store: Store, pipeline: str, config: str) -> None:
        self.store, self.pipeline, self.config = store, pipeline, config
        self.stamp = store.stamp()
        memo = store.page_memo(pipeline)
        usable = memo is not None and memo.config == config and memo.stamp == self.stamp
        self._before: Sequence[str | None] = memo.pages if memo is not None and usable else ()
        self._now: list[str | None] = []
        self.skipped = 0
        if memo is not None and not usable:
            log.debug("page_memo_stale", changed="config" if memo.config != config else "store")

    def skippable(self, fetched: Fetched, seen: set[str]) -> list[str] | None:
        """The ids of a page that need no plan (its records all unchanged), or ``None``: plan it."""
        position = len(self._now)
        if fetched.digest is None or position >= len(self._before) or self._before[position] != fetched.digest:
            return None
        ids: list[str] = []
        for remote_id in fetched.ids:  # read by the walk, which already dropped the page's repeats
            if remote_id is None or not usable_id(remote_id) or remote_id in seen:
                return None
            ids.append(remote_id)
        if len(ids) != len(fetched.records):
            return None
        self.skipped += 1
        return ids

    def note(self, fetched: Fetched, *, quiet: bool) -> None:
        """The page's place in the memo this run leaves: its digest when every record was unchanged."""
        self._now.append(fetched.digest if quiet else None)

    def leave(self, *, complete: bool) -> None:
        """At the end of a run: keep the memo if the run wrote nothing to the store, else forget it.

        Args:
            complete: the source was walked to its end and the run's every step succeeded.
        """
        stamp = self.store.stamp()
        if complete and stamp == self.stamp:
            self.store.save_page_memo(self.pipeline, Memo(self.config, stamp, tuple(self._now)))
        else:
            self.store.save_page_memo(self.pipeline, None)
        if self.skipped:
            log.info("pages_unchanged_skipped", pages=self.skipped, listed=len(self._now))


class _Nothing(PageMemory):
    """The memory of a run that is not a plain one: no page is skipped, no memo is left or forgotten."""

    def __init__(self) -> None:
        self.skipped = 0

    def skippable(self, fetched: Fetched, seen: set[str]) -> list[str] | None:
        return None

    def note(self, fetched: Fetched, *, quiet: bool) -> None:
        return None

    def leave(self, *, complete: bool) -> None:
        return None


def _connection(connector: Connector) -> dict[str, Any]:
    settings = connector.settings.model_dump(mode="json")  # SecretStr values come out masked
    if isinstance(settings.get("base_url"), str):
        settings["base_url"] = masked_url(settings["base_url"])
    return {"name": connector.name, "system": connector.system, "settings": settings, "spec": _plain(connector.spec)}


def _plain(value: Any) -> Any:
    """A value as JSON in one order whatever the process (sets sorted: their order follows str hashing)."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if is_dataclass(value) and not isinstance(value, type):
        return _plain(asdict(value))
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, set | frozenset):
        return sorted(_plain(v) for v in value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _version() -> str:
    try:
        return metadata.version("custsync")
    except metadata.PackageNotFoundError:  # pragma: no cover - the package is installed wherever it runs
        return "unknown"


__all__ = ["PageMemory", "config_digest"]
