"""The dead-man rules on a daily cron schedule: which tick's start deadline is looked at, and
when each rule makes the job late."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from financial.pkg.scheduler.alerts import Lateness
from financial.pkg.scheduler.alerts.rules import assess, deadline_tick, recovered
from tests.unit.late_checking import spec_of

DAY = timedelta(days=1)
TWO_AM = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)
NIGHTLY = spec_of(schedule="0 2 * * *", alert_after=3600, start_deadline=60)


def test_the_deadline_tick_is_the_latest_whose_deadline_passed() -> None:
    # Today's deadline (02:01) has not passed (with the 1 s grace): yesterday's tick.
    assert deadline_tick(NIGHTLY, TWO_AM + timedelta(seconds=30)).tick == TWO_AM - DAY
    assert deadline_tick(NIGHTLY, TWO_AM + timedelta(seconds=61)).tick == TWO_AM - DAY
    assert deadline_tick(NIGHTLY, TWO_AM + timedelta(seconds=62)).tick == TWO_AM
    assert deadline_tick(NIGHTLY, TWO_AM + 20 * timedelta(hours=1)).tick == TWO_AM


def test_the_deadline_tick_is_kept_until_the_next_ticks_deadline() -> None:
    found = deadline_tick(NIGHTLY, TWO_AM + timedelta(hours=3))
    assert found.valid_until == TWO_AM + DAY + timedelta(seconds=61)


def test_a_daily_job_is_late_alert_after_its_tick_without_a_success() -> None:
    watched = TWO_AM - DAY + timedelta(hours=5)  # yesterday 07:00, after yesterday's tick

    def at(now: datetime) -> Lateness | None:
        return assess(
            NIGHTLY,
            now=now,
            watched_since=watched,
            last_success_tick=None,
            checked_tick=None,
            checked_tick_started=None,
        )

    almost, late = at(TWO_AM + timedelta(minutes=59)), at(TWO_AM + timedelta(hours=1))

    assert almost is None
    assert late is not None
    assert (late.since, late.tick) == (TWO_AM + timedelta(hours=1), TWO_AM)


def test_a_tick_that_did_not_start_is_late_from_its_deadline() -> None:
    late = assess(
        NIGHTLY,
        now=TWO_AM + timedelta(minutes=2),
        watched_since=TWO_AM - 3 * DAY,
        last_success_tick=TWO_AM - DAY,
        checked_tick=TWO_AM,
        checked_tick_started=False,
    )
    assert late is not None
    assert (late.since, late.tick) == (TWO_AM + timedelta(seconds=60), TWO_AM)
    assert "did not start" in late.reason


def test_a_tick_before_the_last_success_or_the_watch_is_not_looked_at() -> None:
    for watched, success in ((TWO_AM - 3 * DAY, TWO_AM), (TWO_AM + timedelta(seconds=1), None)):
        assert (
            assess(
                NIGHTLY,
                now=TWO_AM + timedelta(minutes=2),
                watched_since=watched,
                last_success_tick=success,
                checked_tick=TWO_AM,
                checked_tick_started=False,
            )
            is None
        )


def test_only_a_success_of_the_late_tick_or_a_later_one_recovers() -> None:
    assert recovered(TWO_AM, TWO_AM)
    assert recovered(TWO_AM, TWO_AM + DAY)
    assert not recovered(TWO_AM, TWO_AM - DAY)
    assert not recovered(TWO_AM, None)


def test_without_alert_after_nothing_is_late() -> None:
    quiet = spec_of(schedule="0 2 * * *", alert_after=None)
    assert (
        assess(
            quiet,
            now=TWO_AM + 30 * DAY,
            watched_since=TWO_AM - DAY,
            last_success_tick=None,
            checked_tick=TWO_AM + 29 * DAY,
            checked_tick_started=False,
        )
        is None
    )
