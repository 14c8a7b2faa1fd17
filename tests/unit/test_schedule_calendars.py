"""Holiday calendars: business days, the on_holiday policies, the issue's examples, and what is
refused."""

from __future__ import annotations

import itertools
import subprocess
import sys
from datetime import UTC, date, datetime

import pytest

from financial.pkg.scheduler.schedules.calendars import (
    CalendarError,
    HolidayCalendar,
    OnHoliday,
    closed_days,
    load_calendar,
    with_calendar,
)
from financial.pkg.scheduler.schedules.schedule import Schedule, ScheduleError, parse_schedule

SAO_PAULO = "America/Sao_Paulo"


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def on(
    expression: str,
    calendar: str | HolidayCalendar,
    policy: str = "skip",
    zone: str = SAO_PAULO,
) -> Schedule:
    loaded = load_calendar(calendar) if isinstance(calendar, str) else calendar
    return with_calendar(parse_schedule(expression, zone), loaded, OnHoliday(policy))


def local_days(schedule: Schedule, after: datetime, count: int) -> list[str]:
    return [
        t.astimezone(schedule.zone).strftime("%Y-%m-%d %H:%M")
        for t in schedule.next_n(after, count)
    ]


def test_fifth_business_day_in_brazil_counts_past_new_year() -> None:
    schedule = on("0 9 5B * *", "BR")
    ticks = schedule.next_n(utc(2026, 12, 31), 2)
    # 1 January 2027 (a Friday) is a holiday: the 4th to the 8th are the five business days.
    assert ticks == [utc(2027, 1, 8, 12), utc(2027, 2, 5, 12)]
    # Without the calendar, the 1st counts.
    assert parse_schedule("0 9 5B * *", SAO_PAULO).next_after(utc(2026, 12, 31)) == utc(
        2027, 1, 7, 12
    )


def test_last_business_day_on_the_nyse_skips_memorial_day() -> None:
    schedule = on("0 18 LB * *", "NYSE", zone="America/New_York")
    assert schedule.next_after(utc(2027, 5, 1)) == utc(2027, 5, 28, 22)


def test_previous_moves_new_year_to_the_last_day_of_december() -> None:
    schedule = on("0 7 1 * *", "BR", "previous")
    assert local_days(schedule, utc(2026, 12, 2), 2) == ["2026-12-31 07:00", "2027-02-01 07:00"]


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        # 25 Dec 2026 is a Friday, then a weekend.
        ("skip", ["2026-12-24 07:00", "2026-12-28 07:00", "2026-12-29 07:00"]),
        # Friday, Saturday and Sunday all move to Monday the 28th: it runs once there.
        ("next", ["2026-12-24 07:00", "2026-12-28 07:00", "2026-12-29 07:00"]),
        # They all move back to Thursday the 24th, which has its own 07:00: once.
        ("previous", ["2026-12-24 07:00", "2026-12-28 07:00", "2026-12-29 07:00"]),
    ],
)
def test_moved_times_landing_on_a_day_that_has_them_run_once(
    policy: str, expected: list[str]
) -> None:
    assert local_days(on("0 7 * * *", "BR", policy), utc(2026, 12, 24), 3) == expected


@pytest.mark.parametrize(
    ("expression", "policy", "after", "expected"),
    [
        # Sunday 31 May 2026 (the month's last day) moves to Monday 1 June: across the month end.
        ("0 18 L * *", "next", utc(2026, 5, 20), ["2026-06-01 18:00", "2026-06-30 18:00"]),
        # Saturday 1 August 2026 moves back to Friday 31 July.
        ("0 7 1 * *", "previous", utc(2026, 7, 20), ["2026-07-31 07:00", "2026-09-01 07:00"]),
        # Saturday 1 August, skipped.
        ("0 7 1 * *", "skip", utc(2026, 7, 20), ["2026-09-01 07:00", "2026-10-01 07:00"]),
        # Thursday 31 December 2026 is a business day: nothing moves.
        ("0 18 L * *", "next", utc(2026, 12, 20), ["2026-12-31 18:00", "2027-02-01 18:00"]),
        # Sunday 31 January 2027 moves to Monday 1 February, Sunday 28 February to 1 March.
        ("0 18 L * *", "next", utc(2027, 1, 20), ["2027-02-01 18:00", "2027-03-01 18:00"]),
        # The third Friday of April 2025 was Good Friday (18 April): moved to Monday the 21st
        # (Tiradentes, a holiday): to Tuesday the 22nd.
        ("0 9 * * 5#3", "next", utc(2025, 4, 1), ["2025-04-22 09:00", "2025-05-16 09:00"]),
        # Carnival is not a national holiday in Brazil (the B3 market closes for it, below).
        ("0 9 * * 2#2", "skip", utc(2027, 2, 1), ["2027-02-09 09:00", "2027-03-09 09:00"]),
    ],
)
def test_policies_across_month_ends_and_runs_of_holidays(
    expression: str, policy: str, after: datetime, expected: list[str]
) -> None:
    assert local_days(on(expression, "BR", policy), after, len(expected)) == expected


def test_markets_have_their_own_holidays() -> None:
    # B3 closes for Carnival (Monday and Tuesday 8-9 February 2027), BR does not.
    assert local_days(on("0 9 * * 2#2", "B3"), utc(2027, 2, 1), 1) == ["2027-03-09 09:00"]
    assert load_calendar("B3").name == load_calendar("BVMF").name.replace("BVMF", "B3")
    assert not load_calendar("ECB").is_business_day(date(2027, 3, 29))  # Easter Monday


def test_a_subdivision_adds_its_own_holidays() -> None:
    # 9 July, the Constitutionalist Revolution, is a holiday in Sao Paulo state only.
    assert load_calendar("BR").is_business_day(date(2027, 7, 9))
    assert not load_calendar("BR-SP").is_business_day(date(2027, 7, 9))
    assert load_calendar("br-sp") is load_calendar("BR-SP")


def test_extra_closed_dates_are_not_business_days() -> None:
    closed = ((date(2026, 12, 24), "office closed"),)
    calendar = load_calendar("BR", closed)
    assert calendar.closed_reason(date(2026, 12, 24)) == "office closed"
    assert calendar.closed_reason(date(2026, 12, 25)) == "Christmas Day"
    assert calendar.closed_reason(date(2026, 12, 26)) == "Saturday"
    assert calendar.closed_reason(date(2026, 12, 23)) is None
    # The last business day of December 2026: the 31st; the 24th no longer counts as one.
    schedule = on("0 7 * * *", calendar, "next")
    assert local_days(schedule, utc(2026, 12, 23, 11), 2) == [
        "2026-12-28 07:00",
        "2026-12-29 07:00",
    ]
    # A calendar with other closed dates is another calendar, and another schedule.
    assert calendar is not load_calendar("BR")
    assert schedule != on("0 7 * * *", "BR", "next")


def test_schedules_differ_by_calendar_and_policy_and_are_equal_otherwise() -> None:
    a = on("0 9 * * *", "BR")
    assert a == on("0 9 * * *", "BR")
    assert hash(a) == hash(on("0 9 * * *", "BR"))
    assert a != on("0 9 * * *", "BR", "next")
    assert a != on("0 9 * * *", "US")
    assert a != parse_schedule("0 9 * * *", SAO_PAULO)
    assert len({a, on("0 9 * * *", "BR"), on("0 9 * * *", "BR", "previous")}) == 2


def test_previous_before_agrees_with_next_after_on_a_calendar() -> None:
    for policy in OnHoliday:
        schedule = on("0 7 1,L * *", "BR", policy.value)
        ticks = schedule.next_n(utc(2026, 11, 20), 8)
        for earlier, later in itertools.pairwise(ticks):
            assert schedule.previous_before(later) == earlier


def test_closed_days_say_why_and_where_each_went() -> None:
    schedule = on("0 7 * * *", "BR", "next")
    found = list(closed_days(schedule, date(2026, 12, 24), date(2026, 12, 28)))
    assert [(c.day.day, c.reason, c.moved_to) for c in found] == [
        (25, "Christmas Day", date(2026, 12, 28)),
        (26, "Saturday", date(2026, 12, 28)),
        (27, "Sunday", date(2026, 12, 28)),
    ]
    assert (
        list(closed_days(parse_schedule("0 7 * * *"), date(2026, 12, 24), date(2026, 12, 28))) == []
    )


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("XX", "unknown calendar 'XX': expected a country (BR), a subdivision (BR-SP) or a"),
        ("BR-XX", "unknown calendar 'BR-XX': BR has no subdivision 'XX' (known: AC, AL,"),
        ("", "calendar '': expected a country, subdivision or market code"),
        ("none", "calendar 'none': expected a country, subdivision or market code"),
    ],
)
def test_unknown_calendars_are_refused_naming_the_value(name: str, message: str) -> None:
    with pytest.raises(CalendarError) as caught:
        load_calendar(name)
    assert str(caught.value).startswith(message)


def test_years_the_installed_data_does_not_cover_are_an_error_not_an_empty_calendar() -> None:
    calendar = load_calendar("BR")
    assert 2026 in calendar.years
    with pytest.raises(CalendarError, match=r"calendar 'BR' has no holiday data for 2101 \("):
        calendar.holidays(2101)
    schedule = on("0 9 * * *", "BR")
    with pytest.raises(CalendarError, match="no holiday data for 2101"):
        schedule.next_after(utc(2100, 12, 31, 13))


def test_a_schedule_the_holidays_rule_out_has_no_fire_time() -> None:
    # 1 January is always a holiday in Brazil: skipped every year.
    with pytest.raises(ScheduleError, match="has no fire time within 41 years"):
        on("0 9 1 1 *", "BR").next_after(utc(2026, 1, 2))
    moved = on("0 9 1 1 *", "BR", "next")
    assert moved.next_n(utc(2026, 1, 1), 2) == [utc(2026, 1, 2, 12), utc(2027, 1, 4, 12)]


def test_every_schedules_and_policies_without_a_calendar_are_refused() -> None:
    with pytest.raises(ScheduleError, match="a holiday calendar applies to cron schedules"):
        with_calendar(parse_schedule("@every 5m"), load_calendar("BR"), OnHoliday.SKIP)
    with pytest.raises(ScheduleError, match="on_holiday='next' needs a holiday calendar"):
        with_calendar(parse_schedule("0 9 * * *"), None, OnHoliday.NEXT)
    plain = parse_schedule("0 9 * * *")
    assert with_calendar(plain, None, OnHoliday.SKIP) is plain


def test_holiday_data_is_imported_only_when_a_calendar_is_used() -> None:
    code = (
        "import sys\n"
        "import financial.pkg.jobs, financial.pkg.scheduler.registry\n"
        "import financial.pkg.scheduler.loop.scheduler\n"
        "from financial.pkg.scheduler.schedules.schedule import parse_schedule\n"
        "from datetime import datetime, UTC\n"
        "parse_schedule('0 9 5B * *').next_after(datetime(2026, 1, 1, tzinfo=UTC))\n"
        "assert 'holidays' not in sys.modules, 'imported without a calendar'\n"
        "from financial.pkg.scheduler.schedules.calendars import load_calendar\n"
        "load_calendar('BR')\n"
        "assert 'holidays' in sys.modules\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stderr


def test_business_mask_leaves_out_weekends_and_holidays() -> None:
    may = load_calendar("NYSE").business_mask(2027, 5)
    assert not may >> 31 & 1  # Memorial Day
    assert not may >> 29 & 1  # a Saturday
    assert may >> 28 & 1
