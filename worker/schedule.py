"""The beat schedule, as plain data: one entry per pipeline that has a ``schedule``.

Schedules are standard five-field cron expressions (minute, hour, day of
month, month, day of week), read in UTC, plus the ``@hourly``-style
aliases. Beat reads them from the config when it starts, so a changed
schedule takes effect on restart; celery-redbeat drops entries whose
pipeline lost its schedule.

Each scheduled message expires when the next one is due: if the workers
were down, the queue holds one run per pipeline, not a backlog of them
(every run scans the whole source, so the newest one does all the work).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from celery.schedules import crontab
from croniter import croniter

from worker.config import AppConfig, ConfigError

TASK = "custsync.sync_pipeline"
ENTRY_PREFIX = "custsync.sync:"
_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_RANGE_TO_SEVEN = re.compile(r"^(\d)-7$")
# A fixed start, so the computed expiry does not depend on when beat starts.
_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class ScheduledRun:
    """One pipeline's place in the beat schedule.

    Attributes:
        pipeline: the pipeline's name.
        cron: its five cron fields.
        expires_s: the shortest gap between two runs; a message not started
            within it is dropped, since the next one is due.
    """

    pipeline: str
    cron: tuple[str, str, str, str, str]
    expires_s: int

    @property
    def entry_name(self) -> str:
        """The beat entry's name (celery-redbeat's key)."""
        return ENTRY_PREFIX + self.pipeline

    def crontab(self) -> crontab:
        """The Celery schedule (UTC)."""
        minute, hour, day_of_month, month_of_year, day_of_week = self.cron
        return crontab(
            minute=minute, hour=hour, day_of_month=day_of_month, month_of_year=month_of_year, day_of_week=day_of_week
        )


def cron_fields(expression: str) -> tuple[str, str, str, str, str]:
    """Split a cron expression into the five fields Celery understands.

    The one check of a schedule: the config validates ``schedule`` with it,
    and beat builds its entries with it, so the two never disagree.

    Args:
        expression: ``*/15 * * * *`` or an alias such as ``@hourly``.

    Raises:
        ValueError: not five fields, or something Celery's crontab cannot
            express (``L``, ``#``, seconds, day of month *and* day of week).
    """
    text = _ALIASES.get(expression.strip().lower(), expression.strip())
    fields = text.split()
    if len(fields) != 5:
        raise ValueError(f"{expression!r}: five cron fields expected (minute hour day month weekday)")
    minute, hour, day_of_month, month_of_year, day_of_week = fields
    if day_of_month != "*" and day_of_week != "*":
        # cron runs when either matches, Celery when both do: refuse rather than differ.
        raise ValueError(f"{expression!r}: restrict the day of month or the day of week, not both")
    day_of_week = ",".join(_sunday_as_zero(part) for part in day_of_week.split(","))
    cron = (minute, hour, day_of_month, month_of_year, day_of_week)
    try:
        crontab(
            minute=minute, hour=hour, day_of_month=day_of_month, month_of_year=month_of_year, day_of_week=day_of_week
        )
        croniter(" ".join(cron))  # the expiry is computed with croniter: it must read it too
    except (ValueError, KeyError) as exc:
        raise ValueError(f"{expression!r}: not a cron schedule beat can run ({exc})") from None
    return cron


def parse_cron(expression: str, *, where: str) -> tuple[str, str, str, str, str]:
    """:func:`cron_fields`, with the config key in the error.

    Raises:
        ConfigError: the expression is refused (see :func:`cron_fields`).
    """
    try:
        return cron_fields(expression)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def scheduled_runs(config: AppConfig) -> list[ScheduledRun]:
    """Every pipeline with a schedule, in name order.

    Raises:
        ConfigError: a schedule beat cannot run (see :func:`parse_cron`).
    """
    runs: list[ScheduledRun] = []
    for name in sorted(config.pipelines):
        expression = config.pipelines[name].schedule
        if expression is None:
            continue
        cron = parse_cron(expression, where=f"{config.path}: pipelines.{name}.schedule")
        runs.append(ScheduledRun(name, cron, _shortest_gap_s(" ".join(cron))))
    return runs


def beat_schedule(config: AppConfig) -> dict[str, dict[str, Any]]:
    """Celery's ``beat_schedule``: one ``custsync.sync_pipeline`` entry per scheduled pipeline."""
    return {
        run.entry_name: {
            "task": TASK,
            "schedule": run.crontab(),
            "args": (run.pipeline,),
            "options": {"expires": run.expires_s},
        }
        for run in scheduled_runs(config)
    }


def _sunday_as_zero(part: str) -> str:
    # cron accepts 7 for Sunday; Celery only 0.
    if part == "7":
        return "0"
    match = _RANGE_TO_SEVEN.match(part)
    if match:
        return f"{match[1]}-6,0"
    return part


def _shortest_gap_s(cron: str, samples: int = 12) -> int:
    times = croniter(cron, _EPOCH)
    previous = times.get_next(datetime)
    gaps = []
    for _ in range(samples):
        current = times.get_next(datetime)
        gaps.append((current - previous).total_seconds())
        previous = current
    return max(1, int(min(gaps)))


__all__ = ["ENTRY_PREFIX", "TASK", "ScheduledRun", "beat_schedule", "cron_fields", "parse_cron", "scheduled_runs"]
