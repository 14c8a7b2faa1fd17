"""Our fire times against croniter's, where croniter is right: UTC, no DST, plain fields.

The worker computes fire times itself (croniter's field expansion and DST handling are wrong in
the places `test_schedule.py` and `test_schedule_dst.py` name); croniter stays as an independent
oracle for everything else.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from croniter import croniter

from financial.pkg.scheduler.schedules.schedule import parse_schedule

START = datetime(2026, 1, 1, 0, 0, tzinfo=UTC)

EXPRESSIONS = [
    "0 2 * * *",
    "0 8 * * 1",
    "*/15 * * * *",
    "5,35 */3 * * *",
    "0 0 1 * *",
    "0 12 * * MON-FRI",
    "30 6 1,15 * *",
    "0 0 13 * FRI",  # both day fields restricted: either matches
    "0 0 29 2 *",
    "0 9 * JAN,JUL *",
    "10-20/5 4 * * SUN",
    "@daily",
    "@weekly",
    "@monthly",
    "@hourly",
]


@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_five_field_schedules_match_croniter_in_utc(expression: str) -> None:
    ours = parse_schedule(expression, "UTC").next_n(START, 40)
    theirs_iter = croniter(expression, START)
    theirs = [theirs_iter.get_next(datetime) for _ in range(40)]
    assert ours == theirs


@pytest.mark.parametrize("expression", ["*/10 * * * * *", "30 */5 * * * *", "0 0 2 * * *"])
def test_six_field_schedules_match_croniter_with_seconds_first(expression: str) -> None:
    ours = parse_schedule(expression, "UTC").next_n(START, 40)
    theirs_iter = croniter(expression, START, second_at_beginning=True)
    theirs = [theirs_iter.get_next(datetime) for _ in range(40)]
    assert ours == theirs
