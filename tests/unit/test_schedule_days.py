"""Calendar terms of the day fields (`L`, `LW`, `nW`, `nB`, `LB`, `d#n`, `dL`), without a holiday
calendar: months of every shape, lists beside plain values, the Vixie rule, refusals, daylight
saving, and croniter as an oracle where it has the term."""

from __future__ import annotations

import calendar
import itertools
from datetime import UTC, date, datetime, timedelta

import pytest
from croniter import croniter

from financial.pkg.scheduler.schedules.cron import LONG_SEARCH_YEARS
from financial.pkg.scheduler.schedules.days import DayTerms, month_shape, weekday_mask
from financial.pkg.scheduler.schedules.schedule import ScheduleError, parse_schedule


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def days_in_month(expression: str, year: int, month: int) -> list[int]:
    """The days of `year`-`month` on which `expression` (in UTC) fires."""
    schedule = parse_schedule(expression, "UTC")
    found: list[int] = []
    tick = schedule.next_after(utc(year, month, 1) - timedelta(microseconds=1))
    while (tick.year, tick.month) == (year, month):
        found.append(tick.day)
        tick = schedule.next_after(tick)
    return sorted(set(found))


# The months used, by shape: Feb 2026 (28 days from a Sunday), Feb 2028 (leap, from a Tuesday:
# five Tuesdays), Aug 2026 (31 from a Saturday: five Mondays), Mar 2026 (31 from a Sunday: five
# Mondays), Nov 2026 (30 from a Sunday), May 2026 (31 from a Friday, the 31st a Sunday), Jan 2027
# (31 from a Friday), Oct 2026 (31 from a Thursday, the 31st a Saturday), Jul 2026 (31 from a
# Wednesday: 23 weekdays).
MONTH_TABLE = [
    # L: the last day, whatever the length
    ("0 0 L * *", (2026, 2), [28]),
    ("0 0 L * *", (2028, 2), [29]),
    ("0 0 L * *", (2026, 11), [30]),
    ("0 0 L * *", (2026, 8), [31]),
    # LW: the last Monday to Friday
    ("0 0 LW * *", (2026, 2), [27]),  # the 28th is a Saturday
    ("0 0 LW * *", (2028, 2), [29]),
    ("0 0 LW * *", (2027, 1), [29]),  # the 31st is a Sunday
    ("0 0 LW * *", (2026, 10), [30]),  # the 31st is a Saturday
    ("0 0 LW * *", (2026, 8), [31]),
    # nW: the nearest weekday, never leaving the month
    ("0 0 1W * *", (2026, 8), [3]),  # Saturday the 1st: Monday the 3rd, not Friday the 31st before
    ("0 0 1W * *", (2026, 2), [2]),  # Sunday the 1st: Monday the 2nd
    ("0 0 1W * *", (2026, 5), [1]),
    ("0 0 15W * *", (2026, 2), [16]),  # Sunday: the Monday after
    ("0 0 15W * *", (2026, 8), [14]),  # Saturday: the Friday before
    ("0 0 31W * *", (2026, 5), [29]),  # Sunday the 31st: Friday the 29th, not Monday 1 June
    ("0 0 31W * *", (2026, 10), [30]),
    ("0 0 31W * *", (2026, 11), []),  # no 31st: no run
    ("0 0 31W * *", (2026, 2), []),
    ("0 0 30W * *", (2026, 11), [30]),
    ("0 0 29W * *", (2028, 2), [29]),
    ("0 0 29W * *", (2026, 2), []),
    # nB and LB without a calendar: Monday to Friday
    ("0 0 1B * *", (2026, 8), [3]),
    ("0 0 5B * *", (2026, 2), [6]),
    ("0 0 5B * *", (2026, 8), [7]),
    ("0 0 5B * *", (2026, 5), [7]),  # Fri 1, Mon 4 .. Thu 7
    ("0 0 20B * *", (2026, 2), [27]),
    ("0 0 21B * *", (2026, 2), []),  # 20 weekdays
    ("0 0 21B * *", (2028, 2), [29]),  # 21 weekdays
    ("0 0 23B * *", (2026, 7), [31]),  # 23 weekdays
    ("0 0 23B * *", (2026, 8), []),  # 21 weekdays
    ("0 0 LB * *", (2026, 10), [30]),
    # d#n: the n-th such weekday; none is no run
    ("0 0 * * 5#3", (2026, 2), [20]),
    ("0 0 * * FRI#3", (2026, 8), [21]),
    ("0 0 * * 1#5", (2026, 8), [31]),  # five Mondays
    ("0 0 * * MON#5", (2026, 3), [30]),
    ("0 0 * * 1#5", (2026, 2), []),
    ("0 0 * * 2#5", (2028, 2), [29]),  # leap February starting on a Tuesday
    ("0 0 * * 0#1", (2026, 2), [1]),
    ("0 0 * * 7#1", (2026, 2), [1]),  # 7 is Sunday too
    # dL: the last such weekday
    ("0 0 * * 5L", (2026, 2), [27]),
    ("0 0 * * 5L", (2027, 1), [29]),
    ("0 0 * * 0L", (2026, 10), [25]),
    ("0 0 * * 7L", (2026, 3), [29]),
    ("0 0 * * SUNL", (2026, 2), [22]),
    ("0 0 * * 2L", (2028, 2), [29]),
    # lists of terms and plain values
    ("0 0 1,15,L * *", (2028, 2), [1, 15, 29]),
    ("0 0 1W,15W * *", (2026, 8), [3, 14]),
    ("0 0 5B,LB * *", (2026, 2), [6, 27]),
    ("0 0 * * 1#1,5L", (2026, 8), [3, 28]),
    ("0 0 * * MON-TUE,5L", (2026, 2), [2, 3, 9, 10, 16, 17, 23, 24, 27]),
    # both day fields restricted: either one (Vixie)
    ("0 0 L * 5#1", (2026, 8), [7, 31]),
    ("0 0 13 * 5L", (2026, 2), [13, 27]),
    # one of them a wildcard: the other decides
    ("0 0 L * *", (2026, 1), [31]),
    ("0 0 ? * 5L", (2026, 1), [30]),
    # the month field still restricts
    ("0 0 L 2 *", (2026, 3), []),
    ("0 0 L 2 *", (2026, 2), [28]),
]


@pytest.mark.parametrize(("expression", "month", "expected"), MONTH_TABLE)
def test_terms_select_the_days_of_every_shape_of_month(
    expression: str, month: tuple[int, int], expected: list[int]
) -> None:
    assert days_in_month(expression, *month) == expected


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        # Times and steps beside the terms: every 6 hours on the last day.
        (
            "0 */6 L * *",
            utc(2026, 2, 27, 23),
            [utc(2026, 2, 28, h) for h in (0, 6, 12, 18)] + [utc(2026, 3, 31, 0)],
        ),
        # A 6-field expression (seconds first) with a term.
        (
            "30 0 9 * * 5#3",
            utc(2026, 1, 1),
            [utc(2026, 1, 16, 9, 0, 30), utc(2026, 2, 20, 9, 0, 30)],
        ),
        # Across a year end.
        ("0 18 LB * *", utc(2026, 12, 31, 18), [utc(2027, 1, 29, 18), utc(2027, 2, 26, 18)]),
        # The fifth Thursday of February: leap years whose February starts on a Thursday only.
        # 2052 is the first after 2026: beyond the 9 years a plain schedule is searched for.
        ("0 0 * 2 4#5", utc(2026, 1, 1), [utc(2052, 2, 29), utc(2080, 2, 29)]),
    ],
)
def test_terms_beside_other_fields(
    expression: str, after: datetime, expected: list[datetime]
) -> None:
    assert parse_schedule(expression, "UTC").next_n(after, len(expected)) == expected


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("0 0 * * L", "'L' alone in day-of-week is ambiguous: write '6L' for the last Saturday"),
        ("0 0 L/2 * *", "'L', 'LW', 'nW', 'nB' and 'LB' take no range or step"),
        ("0 0 1W-5W * *", "take no range or step"),
        ("0 0 1,L-3 * *", "'L-3': offsets from the last day ('L-n') are not supported"),
        ("0 0 0W * *", "day 0 out of range 1-31"),
        ("0 0 32W * *", "day 32 out of range 1-31"),
        ("0 0 24B * *", "business day 24 out of range 1-23"),
        ("0 0 0B * *", "business day 0 out of range 1-23"),
        ("0 0 W * *", "expected a day before 'W', e.g. '15W'"),
        ("0 0 15L * *", "expected 'L', 'LW' or 'LB' with no number before it"),
        ("0 0 5#3 * *", "'d#n' belongs in the day-of-week field"),
        ("0 0 * * 5W", "'W', 'LW', 'B' and 'LB' belong in the day-of-month field"),
        ("0 0 * * LB", "belong in the day-of-month field"),
        ("0 0 * * 5#6", "occurrence 6 out of range 1-5"),
        ("0 0 * * 5#0", "occurrence 0 out of range 1-5"),
        ("0 0 * * 8#1", "weekday 8 out of range 0-7"),
        ("0 0 * * XYZ#1", "unknown day name 'XYZ'"),
        ("0 0 * * 5#3/2", "'d#n' and 'dL' take no range or step"),
        ("0 L * * *", "hour field 'L': 'L', 'W', 'B' and '#' belong in the day-of-month"),
        ("0 0 * 2#1 *", "month field '2#1': 'L', 'W', 'B' and '#' belong in the day-of-month"),
        ("0 0 30W 2 *", "select no day in month field '2': the schedule would never fire"),
        ("0 0 22B 2 *", "the schedule would never fire"),
        ("0 0 * 2 1#5,2#6", "occurrence 6 out of range 1-5"),
    ],
)
def test_ambiguous_or_misplaced_terms_are_refused_saying_why(expression: str, message: str) -> None:
    with pytest.raises(ScheduleError, match=_literal(message)):
        parse_schedule(expression)


def _literal(text: str) -> str:
    return "".join(f"\\{c}" if c in ".^$*+?{}[]\\|()" else c for c in text)


def test_a_field_error_names_the_item_within_a_list() -> None:
    with pytest.raises(ScheduleError) as caught:
        parse_schedule("0 0 1,40W * *")
    assert str(caught.value) == "day-of-month field '1,40W': '40W': day 40 out of range 1-31"


def test_names_and_numbers_are_the_same_term() -> None:
    after = utc(2026, 1, 1)
    for a, b in [("0 0 * * FRI#3", "0 0 * * 5#3"), ("0 0 * * sunl", "0 0 * * 0L")]:
        assert parse_schedule(a).next_n(after, 12) == parse_schedule(b).next_n(after, 12)
    assert parse_schedule("0 0 lw * *").next_n(after, 6) == parse_schedule("0 0 LW * *").next_n(
        after, 6
    )


def test_daylight_saving_applies_unchanged_to_the_last_sunday_in_berlin() -> None:
    schedule = parse_schedule("30 2 * * 0L", "Europe/Berlin")
    # March 2026: 02:30 does not occur on the 29th; it runs at 03:00 CEST, the first instant
    # after the gap.
    march = schedule.next_after(utc(2026, 3, 1))
    assert march == utc(2026, 3, 29, 1, 0)
    assert march.astimezone(schedule.zone).strftime("%H:%M %Z") == "03:00 CEST"
    # October 2026: 02:30 occurs twice on the 25th; it runs once, at the first (CEST).
    october = schedule.next_after(utc(2026, 10, 1))
    assert october == utc(2026, 10, 25, 0, 30)
    assert october.astimezone(schedule.zone).strftime("%H:%M %Z") == "02:30 CEST"
    assert schedule.next_after(october) == utc(2026, 11, 29, 1, 30)


@pytest.mark.parametrize(
    ("expression", "zone", "after", "expected"),
    [
        # Sydney: summer time starts on the first Sunday of October at 02:00 (-> 03:00) and
        # ends on the first Sunday of April at 03:00 (-> 02:00).
        ("30 2 * * 0#1", "Australia/Sydney", utc(2026, 9, 30), utc(2026, 10, 3, 16, 0)),
        ("30 2 * * 0#1", "Australia/Sydney", utc(2026, 3, 20), utc(2026, 4, 4, 15, 30)),
        # Sao Paulo's clocks went forward at midnight on Sunday 4 November 2018: midnight of
        # the first Sunday ran at 01:00 -02, the transition.
        ("0 0 * * 0#1", "America/Sao_Paulo", utc(2018, 10, 10), utc(2018, 11, 4, 3, 0)),
        # Lord Howe moves by 30 minutes (02:00 -> 02:30 on 4 October 2026, the first Sunday).
        ("15 2 * * SUN#1", "Australia/Lord_Howe", utc(2026, 9, 30), utc(2026, 10, 3, 15, 30)),
        # An hourly schedule on the last Sunday of October 2026 in Berlin: 25 runs that day.
        ("0 * * * 0L", "Europe/Berlin", utc(2026, 10, 24, 21, 59), utc(2026, 10, 24, 22, 0)),
    ],
)
def test_terms_in_zones_with_daylight_saving(
    expression: str, zone: str, after: datetime, expected: datetime
) -> None:
    assert parse_schedule(expression, zone).next_after(after) == expected


def test_an_hourly_schedule_on_a_fall_back_day_runs_25_times() -> None:
    schedule = parse_schedule("0 * * * 0L", "Europe/Berlin")
    ticks = schedule.next_n(utc(2026, 10, 24, 21, 59), 26)
    on_the_day = [t for t in ticks if t.astimezone(schedule.zone).date() == date(2026, 10, 25)]
    assert len(on_the_day) == 25


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        ("0 9 L * *", "0 9 L * *"),
        ("0 9 L 2 *", "0 9 L 2 *"),
        ("30 6 * * 5#3", "30 6 * * 5#3"),
        ("0 0 * * 0#5", "0 0 * * 0#5"),
        ("0 12 * * FRI#1", "0 12 * * FRI#1"),
        ("0 9 * * 5L", "0 9 * * L5"),  # croniter writes the last Friday `L5`
        ("0 9 * * 0L", "0 9 * * L0"),
        ("0 9 15W * *", "0 9 15W * *"),
        ("0 9 1W * *", "0 9 1W * *"),
    ],
)
def test_terms_match_croniter_in_utc(ours: str, theirs: str) -> None:
    start = utc(2024, 1, 1)
    mine = parse_schedule(ours, "UTC").next_n(start, 60)
    iterator = croniter(theirs, start)
    assert mine == [iterator.get_next(datetime) for _ in range(60)]


def test_every_month_shape_recurs_within_the_long_search() -> None:
    # What the longer search of term schedules rests on: any (month, length, first weekday)
    # seen in the Gregorian calendar recurs within LONG_SEARCH_YEARS, across 2100 included.
    seen: dict[tuple[int, int, int], int] = {}
    widest = 0
    for year, month in itertools.product(range(1990, 2420), range(1, 13)):
        shape = (month, *month_shape(year, month))
        if shape in seen:
            widest = max(widest, year - seen[shape])
        seen[shape] = year
    assert 28 <= widest < LONG_SEARCH_YEARS


def test_business_days_without_a_calendar_are_monday_to_friday() -> None:
    for year, month in itertools.product((2026, 2027, 2028), range(1, 13)):
        first_dow, length = month_shape(year, month)
        expected = [day for day in range(1, length + 1) if calendar.weekday(year, month, day) < 5]
        mask = weekday_mask(first_dow, length)
        assert [d for d in range(1, 32) if mask >> d & 1] == expected


def test_day_terms_are_empty_until_one_is_added() -> None:
    terms = DayTerms()
    assert not terms
    terms.add_dom("LB")
    assert terms
    assert terms.rule(0, 0, dom_any=False, dow_any=True).last_business
