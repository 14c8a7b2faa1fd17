"""Schedule parsing and fire times away from daylight saving (see test_schedule_dst.py for DST)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from financial.pkg.scheduler.schedules.schedule import (
    CronSchedule,
    EverySchedule,
    Schedule,
    ScheduleError,
    parse_schedule,
)

US = timedelta(microseconds=1)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, us: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, us, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("*/15 * * * *", utc(2026, 5, 4, 10, 7), ["10:15", "10:30", "10:45", "11:00"]),
        ("5/15 * * * *", utc(2026, 5, 4, 10, 7), ["10:20", "10:35", "10:50", "11:05"]),
        ("5,10 0 * * *", utc(2026, 5, 4, 10, 7), ["05-05 00:05", "05-05 00:10", "05-06 00:05"]),
        ("0 9-17/4 * * *", utc(2026, 5, 4, 0), ["09:00", "13:00", "17:00", "05-05 09:00"]),
        ("0 0 1 jan,JUL *", utc(2026, 5, 4), ["2026-07-01 00:00", "2027-01-01 00:00"]),
        ("0 0 * * MON-FRI", utc(2026, 5, 8), ["05-11 00:00", "05-12 00:00"]),  # Fri 8 May
        ("0 12 ? * ?", utc(2026, 5, 4, 13), ["05-05 12:00", "05-06 12:00"]),
        ("0 0 * * sun", utc(2026, 5, 4), ["05-10 00:00"]),
        ("0 0 * * 0", utc(2026, 5, 4), ["05-10 00:00"]),
        ("0 0 * * 7", utc(2026, 5, 4), ["05-10 00:00"]),
        ("0 0 * * 5-7", utc(2026, 5, 4), ["05-08 00:00", "05-09 00:00", "05-10 00:00"]),
        ("0 0 * * FRI-SUN", utc(2026, 5, 4), ["05-08 00:00", "05-09 00:00", "05-10 00:00"]),
        ("0 0 * * sat-sun/1", utc(2026, 5, 4), ["05-09 00:00", "05-10 00:00", "05-16 00:00"]),
        ("0 0 * * SUN-SUN", utc(2026, 5, 4), ["05-10 00:00", "05-17 00:00"]),
        ("0 0 * * MON-SUN", utc(2026, 5, 4), ["05-05 00:00", "05-06 00:00"]),
        # croniter.expand reads a one-value range as a wildcard: `0 3-3 * * *` hourly.
        ("0 3-3 * * *", utc(2026, 5, 4, 10), ["05-05 03:00", "05-06 03:00"]),
        ("5-5 * * * *", utc(2026, 5, 4, 10), ["10:05", "11:05"]),
        ("0 0 * * 0-0", utc(2026, 5, 4), ["05-10 00:00", "05-17 00:00"]),
        ("0 0 * * 7-7", utc(2026, 5, 4), ["05-10 00:00", "05-17 00:00"]),
        ("0 0 * * 7/2", utc(2026, 5, 4), ["05-10 00:00", "05-17 00:00"]),
        ("0 0 * * MON/2", utc(2026, 5, 4), ["05-06 00:00", "05-08 00:00", "05-11 00:00"]),
        ("0 0 * * 1-7/2", utc(2026, 5, 4), ["05-06 00:00", "05-08 00:00", "05-10 00:00"]),
        ("0 0 1/10 * *", utc(2026, 5, 4), ["05-11 00:00", "05-21 00:00", "05-31 00:00"]),
        ("0 0 31 * *", utc(2026, 4, 1), ["2026-05-31 00:00", "2026-07-31 00:00"]),
        # 6 fields: the seconds come first.
        ("*/20 * * * * *", utc(2026, 5, 4, 10, 0, 5), ["10:00:20", "10:00:40", "10:01:00"]),
        ("30 0 2 * * *", utc(2026, 5, 4, 10), ["05-05 02:00:30", "05-06 02:00:30"]),
        ("0 30 2 * * *", utc(2026, 5, 4, 10), ["05-05 02:30:00"]),
        ("* * * * * *", utc(2026, 5, 4, 23, 59, 58), ["23:59:59", "05-05 00:00:00"]),
        # Strictly after: a reference on a tick gives the next one.
        ("0 * * * *", utc(2026, 5, 4, 10), ["11:00"]),
        ("0 * * * *", utc(2026, 5, 4, 10) - US, ["10:00"]),
    ],
)
def test_cron_fields(expression: str, after: datetime, expected: list[str]) -> None:
    ticks = parse_schedule(expression).next_n(after, len(expected))
    assert [
        _short(tick, expected_text) for tick, expected_text in zip(ticks, expected, strict=True)
    ] == expected


def _short(tick: datetime, like: str) -> str:
    """Format `tick` with as much precision as the expected text shows."""
    formats = {5: "%H:%M", 8: "%H:%M:%S", 11: "%m-%d %H:%M", 14: "%m-%d %H:%M:%S"}
    return tick.strftime(formats.get(len(like), "%Y-%m-%d %H:%M"))


@pytest.mark.parametrize(
    ("descriptor", "equivalent"),
    [
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        ("@monthly", "0 0 1 * *"),
        ("@weekly", "0 0 * * 0"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@hourly", "0 * * * *"),
        ("@DAILY", "0 0 * * *"),
    ],
)
def test_descriptors(descriptor: str, equivalent: str) -> None:
    after = utc(2026, 5, 4, 10, 7)
    schedule = parse_schedule(descriptor, "Europe/Berlin")
    assert schedule.expression == descriptor
    assert schedule.next_n(after, 5) == parse_schedule(equivalent, "Europe/Berlin").next_n(after, 5)


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("@every 1h30m", utc(2026, 1, 1, 0, 10), [utc(2026, 1, 1, 1, 30), utc(2026, 1, 1, 3)]),
        ("@every 5s", utc(2026, 1, 1, 12, 0, 3, 500000), [utc(2026, 1, 1, 12, 0, 5)]),
        ("@every 1h", utc(2026, 1, 1, 10), [utc(2026, 1, 1, 11)]),
        ("@every 1.5h", utc(2026, 1, 1, 0, 10), [utc(2026, 1, 1, 1, 30)]),
        ("@every 90s", utc(2026, 1, 1, 0, 0, 1), [utc(2026, 1, 1, 0, 1, 30)]),
        ("@every 1500ms1500ms", utc(2026, 1, 1), [utc(2026, 1, 1, 0, 0, 3)]),
        # Multiples of 420 s since the epoch: 2026-01-02 00:00 UTC is 1767312000 s, 300 s past one.
        ("@every 7m", utc(2026, 1, 2), [utc(2026, 1, 2, 0, 2), utc(2026, 1, 2, 0, 9)]),
        # Elapsed time: a zone prefix does not move the ticks.
        ("CRON_TZ=Asia/Kolkata @every 1h", utc(2026, 1, 1, 0, 10), [utc(2026, 1, 1, 1)]),
        (
            "@every 24h",
            datetime(2026, 1, 1, 0, 10, tzinfo=ZoneInfo("Asia/Kolkata")),
            [utc(2026, 1, 1)],
        ),
    ],
)
def test_every_is_aligned_to_the_epoch(
    expression: str, after: datetime, expected: list[datetime]
) -> None:
    schedule = parse_schedule(expression, "America/New_York")
    assert isinstance(schedule, EverySchedule)
    assert schedule.zone == ZoneInfo("UTC")
    assert schedule.next_n(after, len(expected)) == expected
    assert schedule.previous_before(expected[0]) == expected[0] - schedule.interval


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        # Both day fields restricted: the 13th OR a Friday (Vixie cron).
        ("0 0 13 * 5", utc(2026, 3, 1), [utc(2026, 3, 6), utc(2026, 3, 13), utc(2026, 3, 20)]),
        ("0 0 13 * FRI", utc(2026, 2, 10), [utc(2026, 2, 13), utc(2026, 2, 20)]),
        # One of them a wildcard (`*`, `?`, `*/1`): only the other restricts.
        ("0 0 * * 5", utc(2026, 3, 1), [utc(2026, 3, 6), utc(2026, 3, 13), utc(2026, 3, 20)]),
        ("0 0 13 * *", utc(2026, 3, 1), [utc(2026, 3, 13), utc(2026, 4, 13)]),
        ("0 0 13 * ?", utc(2026, 3, 1), [utc(2026, 3, 13), utc(2026, 4, 13)]),
        ("0 0 ? * MON", utc(2026, 3, 1), [utc(2026, 3, 2), utc(2026, 3, 9)]),
        ("0 0 */1 * MON", utc(2026, 3, 1), [utc(2026, 3, 2), utc(2026, 3, 9)]),
        # `1-31` is written as a restriction, so the OR applies and every day matches.
        ("0 0 1-31 * MON", utc(2026, 3, 1), [utc(2026, 3, 2), utc(2026, 3, 3)]),
    ],
)
def test_day_of_month_or_day_of_week(
    expression: str, after: datetime, expected: list[datetime]
) -> None:
    assert parse_schedule(expression).next_n(after, len(expected)) == expected


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("0 0 29 2 *", utc(2026, 1, 1), [utc(2028, 2, 29), utc(2032, 2, 29)]),
        ("0 0 29 2 *", utc(2028, 2, 29), [utc(2032, 2, 29)]),
        # 2100 is not a leap year: eight years between two 29 Februaries.
        ("0 0 29 2 *", utc(2097, 1, 1), [utc(2104, 2, 29)]),
        # 29 February OR a Monday in February.
        ("0 0 29 2 MON", utc(2027, 2, 20), [utc(2027, 2, 22), utc(2028, 2, 7)]),
    ],
)
def test_leap_day(expression: str, after: datetime, expected: list[datetime]) -> None:
    schedule = parse_schedule(expression)
    assert schedule.next_n(after, len(expected)) == expected


def test_leap_day_previous_before() -> None:
    schedule = parse_schedule("0 0 29 2 *")
    assert schedule.previous_before(utc(2026, 1, 1)) == utc(2024, 2, 29)
    assert schedule.previous_before(utc(2104, 2, 29)) == utc(2096, 2, 29)
    assert schedule.previous_before(utc(2024, 2, 29)) == utc(2020, 2, 29)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("", "empty expression"),
        ("   ", "empty expression"),
        ("* * *", "expected 5 or 6 fields, got 3"),
        ("* * * * * * *", "expected 5 or 6 fields, got 7"),
        ("61 * * * *", "minute field '61': value 61 out of range 0-59"),
        ("1,61 * * * *", "minute field '1,61': value 61 out of range 0-59"),
        ("0 24 * * *", "hour field '24': value 24 out of range 0-23"),
        ("0 0 0 * *", "day-of-month field '0': value 0 out of range 1-31"),
        ("0 0 32 * *", "day-of-month field '32': value 32 out of range 1-31"),
        ("0 0 * 13 *", "month field '13': value 13 out of range 1-12"),
        ("0 0 * * 8", "day-of-week field '8': value 8 out of range 0-7"),
        ("60 0 0 * * *", "second field '60': value 60 out of range 0-59"),
        ("0 0 * FOO *", "month field 'FOO': unknown name 'FOO'"),
        ("0 0 * * Sunday", "day-of-week field 'Sunday': unknown name 'Sunday'"),
        ("x * * * *", "minute field 'x': 'x' is not a number"),
        ("5-1 * * * *", "minute field '5-1': range start 5 is after its end 1"),
        ("0 0 * * FRI-MON", "day-of-week field 'FRI-MON': range start 5 is after its end 1"),
        ("0 0 * * 5-0", "day-of-week field '5-0': range start 5 is after its end 0"),
        ("*/0 * * * *", "minute field '*/0': step 0 out of range 1-60"),
        ("*/90 * * * *", "minute field '*/90': step 90 out of range 1-60 (use @every"),
        ("1,,2 * * * *", "minute field '1,,2': empty list item"),
        ("-1 * * * *", "minute field '-1': expected a value, range, list or step"),
        ("0 0 1-2-3 * *", "day-of-month field '1-2-3': expected a value, range, list or step"),
        ("H * * * *", "minute field 'H': hashed values ('H') are not supported"),
        ("0 0 H * *", "day-of-month field 'H': hashed values ('H') are not supported"),
        ("0 0 30 2 *", "day-of-month field '30' never occurs in month field '2'"),
        ("0 0 31 4,6,9,11 *", "day-of-month field '31' never occurs in month field '4,6,9,11'"),
        ("@reboot", "unknown descriptor '@reboot'"),
        ("@daily 5", "descriptor '@daily' takes no argument, got '5'"),
        ("@every", "@every needs a duration"),
        ("@every 500ms", "@every '500ms': the interval must be at least 1s"),
        ("@every 0s", "@every '0s': the interval must be at least 1s"),
        ("@every 1500ms", "@every '1500ms': the interval must be a whole number of seconds"),
        ("@every 5d", "@every '5d': expected a duration such as 90s, 5m or 1h30m"),
        ("@every -5s", "@every '-5s': expected a duration"),
        ("@every 1h 30m", "@every '1h 30m': expected a duration"),
        ("CRON_TZ=Mars/Base 0 8 * * 1", "unknown time zone 'Mars/Base'"),
        ("TZ=../../etc/passwd 0 8 * * 1", "unknown time zone '../../etc/passwd'"),
        ("TZ=America 0 8 * * 1", "unknown time zone 'America'"),
        ("CRON_TZ= 0 8 * * 1", "empty time zone name"),
        ("CRON_TZ=UTC", "expected a schedule after the time zone prefix"),
    ],
)
def test_invalid_expressions(expression: str, message: str) -> None:
    with pytest.raises(ScheduleError) as raised:
        parse_schedule(expression)
    assert str(raised.value).startswith(message)
    assert isinstance(raised.value, ValueError)


def test_unknown_default_zone() -> None:
    with pytest.raises(ScheduleError, match=r"^unknown time zone 'Mars/Base'$"):
        parse_schedule("0 0 * * *", "Mars/Base")


@pytest.mark.parametrize(
    ("expression", "zone"),
    [
        ("CRON_TZ=America/Sao_Paulo 0 8 * * 1", "America/Sao_Paulo"),
        ("TZ=America/Sao_Paulo 0 8 * * 1", "America/Sao_Paulo"),
        ("  CRON_TZ=Asia/Tokyo   0 8 * * 1 ", "Asia/Tokyo"),
        ("0 8 * * 1", "Europe/Berlin"),  # the default zone
    ],
)
def test_zone_prefix_overrides_the_default(expression: str, zone: str) -> None:
    schedule = parse_schedule(expression, ZoneInfo("Europe/Berlin"))
    assert schedule.expression == expression
    assert schedule.zone == ZoneInfo(zone)
    # Monday 4 May 2026, 08:00 on the zone's wall clock; zoneinfo supplies the offset.
    expected = datetime(2026, 5, 4, 8, tzinfo=ZoneInfo(zone)).astimezone(UTC)
    assert schedule.next_after(utc(2026, 5, 1)) == expected


def test_results_are_utc_whatever_the_reference_zone() -> None:
    schedule = parse_schedule("0 2 * * *", "Europe/Berlin")
    in_tokyo = datetime(2026, 5, 4, 9, tzinfo=ZoneInfo("Asia/Tokyo"))  # 00:00 UTC
    in_fixed = datetime(2026, 5, 3, 20, tzinfo=timezone(timedelta(hours=-4)))
    tick = schedule.next_after(in_tokyo)
    assert tick == utc(2026, 5, 5, 0)  # 02:00 CEST
    assert tick.tzinfo is UTC
    assert schedule.next_after(in_fixed) == tick


def test_naive_reference_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        parse_schedule("0 2 * * *").next_after(datetime(2026, 5, 4))


@pytest.mark.parametrize(
    "expression",
    ["*/7 * * * *", "0 2 * * *", "0 8 * * 1", "*/5 * * * * *", "0 0 13 * 5", "@every 1h30m"],
)
def test_previous_before_agrees_with_next_after(expression: str) -> None:
    schedule = parse_schedule(expression, "Europe/Berlin")
    ticks = schedule.next_n(utc(2026, 5, 4, 10, 7, 3), 6)
    for earlier, later in itertools.pairwise(ticks):
        assert schedule.previous_before(later) == earlier
        assert schedule.previous_before(later - US) == earlier
        assert schedule.previous_before(earlier + (later - earlier) / 2) == earlier
        assert schedule.previous_before(earlier + US) == earlier


def test_schedules_are_values() -> None:
    a = parse_schedule("0 2 * * *", "Europe/Berlin")
    assert a == parse_schedule("0 2 * * *", "Europe/Berlin")
    assert a != parse_schedule("0 2 * * *", "UTC")
    assert len({a, parse_schedule("0 2 * * *", "Europe/Berlin"), parse_schedule("@every 5s")}) == 2
    assert isinstance(a, Schedule)
    assert isinstance(a, CronSchedule)
    assert (
        repr(a)
        == "CronSchedule(expression='0 2 * * *', zone=zoneinfo.ZoneInfo(key='Europe/Berlin'))"
    )
    with pytest.raises(AttributeError):
        a.expression = "0 3 * * *"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("expression", "fixed"),
    [
        ("30 2 * * *", True),
        ("0 8,20 * * *", True),
        ("0 1-3 * * *", True),
        ("* 2 * * *", True),
        ("@daily", True),
        ("@weekly", True),
        ("0 * * * *", False),
        ("*/15 * * * *", False),
        ("0 */2 * * *", False),
        ("0 1-5/2 * * *", False),
        ("0 ? * * *", False),
        ("@hourly", False),
        ("* * * * * *", False),
        ("0 0 2 * * *", True),
    ],
)
def test_fixed_time_or_elapsed_time(expression: str, fixed: bool) -> None:
    schedule = parse_schedule(expression)
    assert isinstance(schedule, CronSchedule)
    assert schedule.fields.fixed_hour is fixed


@pytest.mark.parametrize("zone", ["UTC", "America/New_York", "Asia/Tokyo"])
def test_edges_of_the_datetime_range(zone: str) -> None:
    schedule = parse_schedule("0 0 1 1 *", zone)
    with pytest.raises(ScheduleError, match="has no fire time after 9999-06-01"):
        schedule.next_after(utc(9999, 6, 1))
    assert schedule.previous_before(utc(1, 1, 1, 5)) is None
