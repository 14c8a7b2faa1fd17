"""Fire times across daylight-saving changes, in zones with unusual transitions.

Rules (Debian/Vixie cron, DESIGN.md section 4): a fixed-time schedule (hour field neither `*` nor a
step) runs once per matching wall time, at its first occurrence, and a skipped wall time runs at
the first instant after the gap; an elapsed-time schedule runs at every real instant whose wall
time matches (23 hourly runs on a spring-forward day, 25 on a fall-back day).

Where croniter 7.0 alone disagrees, the row says so. Its faults, found by comparing the two:
- a fixed-time schedule runs twice on a fall-back day, once per occurrence of the repeated time
  (`30 2 * * *` in Berlin at 02:30 CEST and again at 02:30 CET);
- a step in the hour field is moved out of a gap as if it were a fixed time (`0 */2 * * *` runs
  at 03:00 CEST on Berlin's spring-forward day, a wall time it does not name);
- a 6-field expression is read with the seconds LAST unless `second_at_beginning=True`.
"""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from financial.pkg.scheduler.schedules.cron import CronFields
from financial.pkg.scheduler.schedules.schedule import CronSchedule, parse_schedule

US = timedelta(microseconds=1)
MINUTE = timedelta(minutes=1)

# (zone, local wall time at which the clock changes, offset before, offset after), in hours.
TRANSITIONS = [
    ("America/Sao_Paulo", "2018-11-04 00:00", -3, -2),  # spring forward at midnight, to 01:00
    ("America/Sao_Paulo", "2019-02-17 00:00", -2, -3),  # back to 23:00 on the 16th
    ("Europe/Berlin", "2026-03-29 02:00", 1, 2),
    ("Europe/Berlin", "2026-10-25 03:00", 2, 1),
    ("America/New_York", "2026-03-08 02:00", -5, -4),
    ("America/New_York", "2026-11-01 02:00", -4, -5),
    ("Australia/Lord_Howe", "2026-04-05 02:00", 11, 10.5),  # back to 01:30
    ("Australia/Lord_Howe", "2026-10-04 02:00", 10.5, 11),  # forward to 02:30
    ("Pacific/Apia", "2011-12-30 00:00", -10, 14),  # 2011-12-29 23:59:59 -> 2011-12-31 00:00
]


def change_instant(wall: str, before: float) -> datetime:
    return datetime.fromisoformat(wall).replace(tzinfo=UTC) - timedelta(hours=before)


@pytest.mark.parametrize(("zone", "wall", "before", "after"), TRANSITIONS)
def test_zone_data(zone: str, wall: str, before: float, after: float) -> None:
    """The tables below rely on these transitions; check them against the installed tzdata."""
    instant = change_instant(wall, before)
    tz = ZoneInfo(zone)
    assert (instant - US).astimezone(tz).utcoffset() == timedelta(hours=before)
    assert instant.astimezone(tz).utcoffset() == timedelta(hours=after)


def day_ticks(expression: str, zone: str, day: str) -> list[str]:
    """The ticks whose local date is `day`, as local `HH:MM[:SS]±HH:MM`."""
    tz = ZoneInfo(zone)
    first = date.fromisoformat(day)
    # Midnight with fold=0 is the day's first instant, or the end of a gap starting at midnight.
    start = datetime.combine(first, time(), tzinfo=tz).astimezone(UTC)
    end = datetime.combine(first + timedelta(days=1), time(), tzinfo=tz).astimezone(UTC)
    assert start.astimezone(tz).date() == first
    schedule = parse_schedule(expression, zone)
    ticks, tick = [], schedule.next_after(start - US)
    while tick < end:
        ticks.append(tick)
        tick = schedule.next_after(tick)
    return [t.astimezone(tz).isoformat(timespec="minutes")[11:] for t in ticks]


SP, BER, NY, LH, APIA = (
    "America/Sao_Paulo",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",
    "Pacific/Apia",
)


@pytest.mark.parametrize(
    ("zone", "day", "expression", "expected"),
    [
        # Berlin, spring forward 02:00 CET -> 03:00 CEST: the skipped times run at 03:00 CEST.
        (BER, "2026-03-29", "30 2 * * *", ["03:00+02:00"]),
        (BER, "2026-03-29", "0 2 * * *", ["03:00+02:00"]),
        (BER, "2026-03-29", "0 30 2 * * *", ["03:00+02:00"]),
        (BER, "2026-03-29", "0 2,3 * * *", ["03:00+02:00"]),  # two wall times, one tick
        (BER, "2026-03-29", "*/20 2 * * *", ["03:00+02:00"]),
        # Elapsed time: 02:00 does not occur. croniter adds a run at 03:00 CEST.
        (
            BER,
            "2026-03-29",
            "0 */2 * * *",
            ["00:00+01:00"] + [f"{h:02}:00+02:00" for h in range(4, 24, 2)],
        ),
        # Berlin, fall back 03:00 CEST -> 02:00 CET: the repeated times run once, in CEST.
        (BER, "2026-10-25", "30 2 * * *", ["02:30+02:00"]),  # croniter: also 02:30+01:00
        (BER, "2026-10-25", "0 2 * * *", ["02:00+02:00"]),  # croniter: also 02:00+01:00
        (BER, "2026-10-25", "0 2,3 * * *", ["02:00+02:00", "03:00+01:00"]),  # croniter: 3 runs
        (
            BER,
            "2026-10-25",
            "0 */2 * * *",
            ["00:00+02:00", "02:00+02:00", "02:00+01:00"]
            + [f"{h:02}:00+01:00" for h in range(4, 24, 2)],
        ),
        # New York
        (NY, "2026-03-08", "0 2 * * *", ["03:00-04:00"]),
        (NY, "2026-03-08", "30 2 * * *", ["03:00-04:00"]),
        (NY, "2026-11-01", "30 1 * * *", ["01:30-04:00"]),  # croniter: also 01:30-05:00
        (NY, "2026-11-01", "0 2 * * *", ["02:00-05:00"]),
        # Sao Paulo, DST from midnight: the day starts at 01:00 and midnight runs then.
        (SP, "2018-11-03", "0 0 * * *", ["00:00-03:00"]),
        (SP, "2018-11-04", "0 0 * * *", ["01:00-02:00"]),
        (SP, "2018-11-04", "30 0 * * *", ["01:00-02:00"]),
        (SP, "2018-11-04", "30 2 * * *", ["02:30-02:00"]),
        (SP, "2018-11-05", "0 0 * * *", ["00:00-02:00"]),
        # Sao Paulo, back at midnight: 23:00-23:59 on the 16th happens twice.
        (SP, "2019-02-16", "30 23 * * *", ["23:30-02:00"]),  # croniter: also 23:30-03:00
        (SP, "2019-02-16", "0 0 * * *", ["00:00-02:00"]),
        (SP, "2019-02-17", "0 0 * * *", ["00:00-03:00"]),
        # Lord Howe, back half an hour, 02:00 +11 -> 01:30 +10:30.
        (LH, "2026-04-05", "45 1 * * *", ["01:45+11:00"]),  # croniter: also 01:45+10:30
        (LH, "2026-04-05", "30 1 * * *", ["01:30+11:00"]),
        (LH, "2026-04-05", "0 2 * * *", ["02:00+10:30"]),
        # Lord Howe, forward half an hour, 02:00 +10:30 -> 02:30 +11.
        (LH, "2026-10-04", "0 2 * * *", ["02:30+11:00"]),
        (LH, "2026-10-04", "15 2 * * *", ["02:30+11:00"]),
        (LH, "2026-10-04", "30 2 * * *", ["02:30+11:00"]),
        (LH, "2026-10-04", "*/15 2 * * *", ["02:30+11:00", "02:45+11:00"]),
        # Apia skipped 2011-12-30: its fixed times run once, at the first instant after the gap.
        (APIA, "2011-12-29", "0 12 * * *", ["12:00-10:00"]),
        (APIA, "2011-12-31", "0 12 * * *", ["00:00+14:00", "12:00+14:00"]),
        (APIA, "2011-12-31", "30 2 * * *", ["00:00+14:00", "02:30+14:00"]),
        (APIA, "2011-12-31", "0 0 * * *", ["00:00+14:00"]),  # 30th and 31st midnight: one tick
        (APIA, "2011-12-31", "0 8 * * FRI", ["00:00+14:00"]),  # Friday the 30th
        (APIA, "2012-01-01", "0 0 * * *", ["00:00+14:00"]),
    ],
)
def test_ticks_on_transition_days(
    zone: str, day: str, expression: str, expected: list[str]
) -> None:
    assert day_ticks(expression, zone, day) == expected


@pytest.mark.parametrize(
    ("zone", "day", "hourly", "quarterly", "at_2_30"),
    [
        (BER, "2026-03-28", 24, 96, 1),
        (BER, "2026-03-29", 23, 92, 1),
        (BER, "2026-10-25", 25, 100, 1),
        (NY, "2026-03-08", 23, 92, 1),
        (NY, "2026-11-01", 25, 100, 1),
        (SP, "2018-11-04", 23, 92, 1),
        (SP, "2019-02-16", 25, 100, 1),
        # A 24.5-hour day: 01:30-01:59 twice, but 02:00 +11 never shows, so still 24 hourly runs.
        (LH, "2026-04-05", 24, 98, 1),
        # A 23.5-hour day: 02:00-02:29 never shows.
        (LH, "2026-10-04", 23, 94, 1),
        (APIA, "2011-12-29", 24, 96, 1),
        # The 31st also holds the skipped 30th's run, at 00:00.
        (APIA, "2011-12-31", 24, 96, 2),
    ],
)
def test_counts_per_local_day(
    zone: str, day: str, hourly: int, quarterly: int, at_2_30: int
) -> None:
    assert len(day_ticks("0 * * * *", zone, day)) == hourly
    assert len(day_ticks("@hourly", zone, day)) == hourly
    assert len(day_ticks("*/15 * * * *", zone, day)) == quarterly
    # Fixed time: once per local day, whatever the day's length.
    assert len(day_ticks("30 2 * * *", zone, day)) == at_2_30
    assert len(day_ticks("@daily", zone, day)) == 1


def test_every_second_across_apias_skipped_day() -> None:
    schedule = parse_schedule("* * * * * *", APIA)
    before_gap = datetime(2011, 12, 29, 23, 59, 58, tzinfo=ZoneInfo(APIA))
    assert [t.astimezone(ZoneInfo(APIA)).isoformat() for t in schedule.next_n(before_gap, 2)] == [
        "2011-12-29T23:59:59-10:00",
        "2011-12-31T00:00:00+14:00",
    ]


def test_elapsed_time_from_inside_a_repeated_hour() -> None:
    tz = ZoneInfo(BER)
    # 02:10 CET, the second pass through 02:00-02:59.
    second_pass = datetime(2026, 10, 25, 2, 10, fold=1, tzinfo=tz)
    quarterly = parse_schedule("*/15 * * * *", BER).next_n(second_pass, 4)
    assert [t.astimezone(tz).isoformat(timespec="minutes")[11:] for t in quarterly] == [
        "02:15+01:00",
        "02:30+01:00",
        "02:45+01:00",
        "03:00+01:00",
    ]
    # A fixed time in the repeated hour already ran in the first pass: tomorrow's is next.
    fixed = parse_schedule("30 2 * * *", BER).next_after(second_pass)
    assert fixed.astimezone(tz).isoformat() == "2026-10-26T02:30:00+01:00"
    assert parse_schedule("0 3 * * *", BER).next_after(second_pass) == datetime(
        2026, 10, 25, 3, tzinfo=tz
    )


PROPERTY_EXPRESSIONS = [
    "30 2 * * *",
    "0 0 * * *",
    "45 1 * * *",
    "0 2,3 * * *",
    "*/20 1-3 * * *",
    "30 23 * * *",
    "0 * * * *",
    "*/15 * * * *",
    "0 */2 * * *",
]


def window(wall: str, before: float) -> tuple[datetime, datetime]:
    instant = change_instant(wall, before)
    return instant - timedelta(hours=10), instant + timedelta(hours=10)


@pytest.mark.parametrize(("zone", "wall", "before", "after"), TRANSITIONS)
def test_deterministic_from_any_reference(
    zone: str, wall: str, before: float, after: float
) -> None:
    """Any reference between two ticks gives the later one; the sequence strictly increases."""
    start, end = window(wall, before)
    tz = ZoneInfo(zone)
    for expression in PROPERTY_EXPRESSIONS:
        schedule = parse_schedule(expression, zone)
        ticks = [schedule.next_after(start)]
        while ticks[-1] < end:
            ticks.append(schedule.next_after(ticks[-1]))
        for tick, following in itertools.pairwise(ticks):
            assert tick < following
            assert schedule.next_after(tick - US) == tick
            assert schedule.next_after(tick + US) == following
            middle = tick + (following - tick) / 2
            assert schedule.next_after(middle) == following
            assert schedule.next_after(middle.astimezone(tz)) == following  # fold and all
            assert schedule.next_after(following - US) == following
        # previous_before is a search over next_after; check it where the clock changes.
        near = [t for t in ticks if abs(t - change_instant(wall, before)) < timedelta(hours=3)]
        for tick, following in itertools.pairwise(near):
            assert schedule.previous_before(following) == tick


@pytest.mark.parametrize(("zone", "wall", "before", "after"), TRANSITIONS)
def test_matches_a_minute_by_minute_model(
    zone: str, wall: str, before: float, after: float
) -> None:
    """Compare with a brute-force reading of the rules: walk every minute of the window (these
    zones change on whole minutes) and fire where the rule says."""
    start, end = window(wall, before)
    tz = ZoneInfo(zone)
    minutes = [start + i * MINUTE for i in range((end - start) // MINUTE)]
    walls = [m.astimezone(tz).replace(tzinfo=None) for m in minutes]
    for expression in PROPERTY_EXPRESSIONS:
        schedule = parse_schedule(expression, zone)
        assert isinstance(schedule, CronSchedule)
        expected = model_ticks(schedule.fields, minutes, walls)
        actual = schedule.next_n(minutes[0] - US, len(expected) + 1)
        assert actual[:-1] == expected, expression
        assert actual[-1] > minutes[-1]


def model_ticks(
    fields: CronFields, minutes: list[datetime], walls: list[datetime]
) -> list[datetime]:
    def matches(wall: datetime) -> bool:
        day_ok = (
            wall.day in fields.days
            if fields.dow_any
            else (wall.isoweekday() % 7 in fields.weekdays)
            if fields.dom_any
            else wall.day in fields.days or wall.isoweekday() % 7 in fields.weekdays
        )
        return (
            wall.minute in fields.minutes
            and wall.hour in fields.hours
            and wall.month in fields.months
            and day_ok
        )

    if not fields.fixed_hour:
        # Elapsed time: every instant whose wall time matches.
        return [m for m, wall in zip(minutes, walls, strict=True) if matches(wall)]
    # Fixed time: fire when the clock first reaches (or jumps past) a matching wall time.
    ticks, highest = [], walls[0] - MINUTE
    for instant, wall in zip(minutes, walls, strict=True):
        if wall > highest:
            reached = (highest + k * MINUTE for k in range(1, (wall - highest) // MINUTE + 1))
            if any(matches(w) for w in reached):
                ticks.append(instant)
            highest = wall
    return ticks
