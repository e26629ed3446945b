"""When beat next sends a run: computed from the wall clock, so the clock is frozen (freezegun)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from freezegun import freeze_time

from worker.render import next_run


@pytest.mark.parametrize(
    ("frozen", "schedule", "expected"),
    [
        ("2026-12-02 10:07:31", "*/15 * * * *", datetime(2026, 12, 2, 10, 15, tzinfo=UTC)),
        ("2026-12-02 10:15:00", "*/15 * * * *", datetime(2026, 12, 2, 10, 30, tzinfo=UTC)),
        ("2026-12-31 23:59:59", "@daily", datetime(2027, 1, 1, 0, 0, tzinfo=UTC)),
        # Sunday is 0 (and 7) as in cron: the next Sunday after Wednesday 2 December is the 6th.
        ("2026-12-02 12:00:00", "0 9 * * 0", datetime(2026, 12, 6, 9, 0, tzinfo=UTC)),
    ],
)
def test_given_a_schedule_when_the_clock_reads_a_moment_then_next_run_is_the_following_slot_in_utc(
    frozen: str, schedule: str, expected: datetime
) -> None:
    with freeze_time(frozen):
        assert next_run(schedule) == expected


def test_given_no_schedule_when_asked_then_there_is_no_next_run() -> None:
    with freeze_time("2026-12-02 10:07:31"):
        assert next_run(None) is None
        assert next_run("") is None
