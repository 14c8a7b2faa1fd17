"""The fault suite's shared history check, on rows made up here: it passes on a truthful
history and names each way a history can be wrong."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.integration.faults.records import assert_one_final_record_per_tick, last_tick

SECOND = timedelta(seconds=1)
T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def row(offset_s: int, status: str = "succeeded", attempt: int = 1) -> dict[str, Any]:
    return {
        "job": "heartbeat",
        "scheduled_at": T0 + offset_s * SECOND,
        "attempt": attempt,
        "status": status,
        "duration_ms": 1.0,
        "error_type": None,
        "error_message": None,
    }


def test_a_truthful_history_passes() -> None:
    rows = [row(0), row(1, "missed"), row(2, "skipped"), row(3, "abandoned"), row(4)]
    assert_one_final_record_per_tick(rows, SECOND)
    assert_one_final_record_per_tick(rows, SECOND, first=T0, last=T0 + 4 * SECOND)


@pytest.mark.parametrize(
    ("rows", "last", "expected"),
    [
        ([row(0), row(2)], None, "1 ticks between"),
        ([row(0), row(1)], T0 + 3 * SECOND, "2 ticks between"),
        ([row(0), row(1), row(1, "failed", attempt=2)], None, "more than once"),
        ([row(0), row(1, "running")], None, "no final status"),
        ([row(0), row(1, "pending")], None, "no final status"),
        ([], None, "no run recorded"),
    ],
    ids=["gap", "lost at the end", "twice", "running", "pending", "nothing"],
)
def test_each_wrong_history_is_named(
    rows: list[dict[str, Any]], last: datetime | None, expected: str
) -> None:
    with pytest.raises(AssertionError, match=expected):
        assert_one_final_record_per_tick(rows, SECOND, last=last)


def test_last_tick_is_on_the_schedule_and_before_the_instant() -> None:
    assert last_tick(T0 + timedelta(seconds=7.9), SECOND) == T0 + 7 * SECOND
    assert last_tick(T0 + timedelta(seconds=7.9), 5 * SECOND) == T0 + 5 * SECOND
