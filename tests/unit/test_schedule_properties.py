"""Properties of calendar schedules, with hypothesis: `next_after` agrees with a brute-force scan
of the days, written straight from the definitions (no bit masks, no month cache); fire times
strictly increase and never fall on a day the policy leaves out."""

from __future__ import annotations

import calendar
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache, lru_cache
from zoneinfo import ZoneInfo

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from financial.pkg.scheduler.schedules.calendars import (
    HolidayCalendar,
    OnHoliday,
    load_calendar,
    with_calendar,
)
from financial.pkg.scheduler.schedules.schedule import Schedule, ScheduleError, parse_schedule

ZONES = ["UTC", "America/Sao_Paulo", "Europe/Berlin", "Australia/Sydney", "America/New_York"]
AT = time(9, 0)  # never inside a daylight-saving gap or overlap in these zones
DAY_NAMES = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]

DomItem = tuple[str, int]
DowItem = tuple[str, int, int]

dom_items = st.one_of(
    st.tuples(st.just("plain"), st.integers(1, 31)),
    st.tuples(st.sampled_from(["L", "LW", "LB"]), st.just(0)),
    st.tuples(st.just("W"), st.integers(1, 31)),
    st.tuples(st.just("B"), st.integers(1, 23)),
)
dow_items = st.one_of(
    st.tuples(st.just("plain"), st.integers(0, 7), st.just(0)),
    st.tuples(st.just("#"), st.integers(0, 7), st.integers(1, 5)),
    st.tuples(st.just("L"), st.integers(0, 7), st.just(0)),
)


@dataclass(frozen=True)
class Case:
    dom: tuple[DomItem, ...]  # empty: `*`
    dow: tuple[DowItem, ...]  # empty: `*`
    zone: str
    calendar: str | None
    policy: OnHoliday

    @property
    def expression(self) -> str:
        dom = ",".join(_dom_text(item) for item in self.dom) or "*"
        dow = ",".join(_dow_text(item) for item in self.dow) or "*"
        return f"0 9 {dom} * {dow}"


def _dom_text(item: DomItem) -> str:
    kind, n = item
    return {"plain": str(n), "W": f"{n}W", "B": f"{n}B"}.get(kind, kind)


def _dow_text(item: DowItem) -> str:
    kind, day, n = item
    name = str(day) if day % 2 else DAY_NAMES[day % 7]  # numbers and names alike
    return {"plain": name, "#": f"{name}#{n}", "L": f"{name}L"}[kind]


cases = st.builds(
    Case,
    dom=st.lists(dom_items, max_size=3).map(tuple),
    dow=st.lists(dow_items, max_size=2).map(tuple),
    zone=st.sampled_from(ZONES),
    calendar=st.sampled_from([None, "BR", "BR-SP", "NYSE"]),
    policy=st.sampled_from(list(OnHoliday)),
).filter(lambda case: case.calendar is not None or case.policy is OnHoliday.SKIP)

instants = st.datetimes(
    min_value=datetime(2024, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)
)


@cache
def _calendar(name: str | None) -> HolidayCalendar | None:
    return None if name is None else load_calendar(name)


def _is_business(day: date, name: str | None) -> bool:
    holidays = _calendar(name)
    if day.weekday() >= 5:
        return False
    return holidays is None or day not in holidays.holidays(day.year)


@lru_cache(maxsize=4096)
def _month(year: int, month: int, name: str | None) -> tuple[list[int], list[int]]:
    """The month's weekdays and business days, by definition."""
    length = calendar.monthrange(year, month)[1]
    days = [date(year, month, d) for d in range(1, length + 1)]
    weekdays = [d.day for d in days if d.weekday() < 5]
    business = [d.day for d in days if _is_business(d, name)]
    return weekdays, business


def _selects(case: Case, day: date) -> bool:
    """Whether the day fields select `day`, by the definitions of each term."""
    length = calendar.monthrange(day.year, day.month)[1]
    weekdays, business = _month(day.year, day.month, case.calendar)
    cron_weekday = day.isoweekday() % 7

    def dom_hit(item: DomItem) -> bool:
        kind, n = item
        if kind == "plain":
            return day.day == n
        if kind == "L":
            return day.day == length
        if kind == "LW":
            return day.day == weekdays[-1]
        if kind == "W":
            return n <= length and day.day == min(weekdays, key=lambda d: abs(d - n))
        if kind == "B":
            return len(business) >= n and day.day == business[n - 1]
        return bool(business) and day.day == business[-1]  # LB

    def dow_hit(item: DowItem) -> bool:
        kind, weekday, n = item
        if cron_weekday != weekday % 7:
            return False
        if kind == "#":
            return (day.day - 1) // 7 + 1 == n
        if kind == "L":
            return day.day + 7 > length
        return True

    dom_any, dow_any = not case.dom, not case.dow
    dom = dom_any or any(dom_hit(item) for item in case.dom)
    dow = dow_any or any(dow_hit(item) for item in case.dow)
    return (dom and dow) if dom_any or dow_any else (dom or dow)


def _fires_on(case: Case, day: date) -> bool:
    """Whether the schedule runs on local `day`, by the policy's definition."""
    if case.calendar is None:
        return _selects(case, day)
    if not _is_business(day, case.calendar):
        return False
    if _selects(case, day):
        return True
    if case.policy is OnHoliday.SKIP:
        return False
    step = timedelta(days=-1 if case.policy is OnHoliday.NEXT else 1)
    other = day + step
    while not _is_business(other, case.calendar):  # the run of closed days moved onto `day`
        if _selects(case, other):
            return True
        other += step
    return False


def _brute_next(case: Case, after: datetime) -> datetime | None:
    zone = ZoneInfo(case.zone)
    day = after.astimezone(zone).date()
    for _ in range(366 * 12):
        if _fires_on(case, day):
            tick = datetime.combine(day, AT, tzinfo=zone).astimezone(UTC)
            if tick > after:
                return tick
        day += timedelta(days=1)
    return None


def _schedule(case: Case) -> Schedule:
    try:
        schedule = parse_schedule(case.expression, case.zone)
    except ScheduleError:
        assume(False)  # a rule that selects no day in any month: refused at parse time
        raise
    return with_calendar(schedule, _calendar(case.calendar), case.policy)


def _ticks_or_reject(fn: Callable[[], list[datetime]]) -> list[datetime]:
    try:
        return fn()
    except ScheduleError:
        assume(False)
        raise


@settings(max_examples=300, deadline=None)
@given(case=cases, after=instants)
def test_next_after_agrees_with_a_scan_of_the_days(case: Case, after: datetime) -> None:
    schedule = _schedule(case)
    expected = _brute_next(case, after)
    assume(expected is not None)  # nothing in 12 years: next_after searches further
    assert schedule.next_after(after) == expected, case.expression


@settings(max_examples=150, deadline=None)
@given(case=cases, after=instants)
def test_fire_times_increase_and_never_fall_on_a_day_left_out(case: Case, after: datetime) -> None:
    schedule = _schedule(case)
    ticks = _ticks_or_reject(lambda: schedule.next_n(after, 12))
    assert ticks[0] > after
    assert all(a < b for a, b in itertools.pairwise(ticks))
    zone = ZoneInfo(case.zone)
    for tick in ticks:
        local = tick.astimezone(zone)
        assert local.time() == AT
        assert _fires_on(case, local.date()), (case.expression, local)
        if case.calendar is not None:
            assert _is_business(local.date(), case.calendar)
