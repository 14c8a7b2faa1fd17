"""Holiday calendars and business days: a job's `calendar` and its `on_holiday` policy.

A calendar is a country (`BR`), a subdivision (`BR-SP`, `US-NY`) or a financial market (`NYSE`,
`B3`, `ECB`, any code the installed `holidays` package lists), plus the worker's own closed
dates (`WORKER_CLOSED_DATES`, `WORKER_CLOSED_DATES_FILE`: a company's days off). With one, a
day is a business day when it is a Monday to Friday that is neither a holiday of the calendar
nor a closed date; days are local days in the job's zone.

What happens to a fire time on a day that is not a business day (`OnHoliday`):

- `skip` (the default): it does not run.
- `next`: it runs on the next business day at the same local time; `previous`: on the
  previous one. The move crosses month and year ends (`0 7 1 * *` with `previous` runs on
  31 December for a 1 January holiday): a fire time is moved, whichever month it lands in.
  Schedules that must stay within their month say so with `LB` or `nB` instead. A moved time
  landing on a day that already has that time runs once.

All of it works on whole days: the time fields and the daylight-saving rules of `dst` are
untouched, so a moved time in a DST gap or overlap behaves as any other time that day.

`holidays` is imported on the first calendar used (its import and first entity cost about
0.1 s, which a worker without calendars never pays). Holidays are computed once per
(calendar, year) and business days once per (calendar, month).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import Any

from financial.pkg.scheduler.schedules.cron import LONG_SEARCH_YEARS, CronFields
from financial.pkg.scheduler.schedules.days import RuleDays, mask_days, month_shape, weekday_mask
from financial.pkg.scheduler.schedules.schedule import CronSchedule, Schedule, ScheduleError

NO_CALENDAR = "none"  # a job's way to opt out of the worker-wide default calendar
# A run of closed days longer than this is taken to be a misconfiguration, not a calendar.
_MAX_CLOSED_RUN = 366
_LANGUAGE = "en_US"  # holiday names as the CLI shows them; else the entity's own language
_WEEKEND = {5: "Saturday", 6: "Sunday"}  # date.weekday()


class OnHoliday(StrEnum):
    """What a fire time on a day that is not a business day does."""

    SKIP = "skip"
    """It does not run (the default)."""
    NEXT = "next"
    """It runs on the next business day at the same local time."""
    PREVIOUS = "previous"
    """It runs on the previous business day at the same local time."""


class CalendarError(ScheduleError):
    """An unknown calendar name, or a year its installed data does not cover."""


@dataclass(frozen=True, eq=False, slots=True)
class HolidayCalendar:
    """The business days of one calendar: Monday to Friday, less its holidays and the extra
    closed dates. Built by `load_calendar`, which gives one instance per name and dates."""

    name: str
    closed: dict[date, str]
    _entity: Any = field(repr=False)
    _subdiv: str | None = field(repr=False)
    _years: dict[int, dict[date, str]] = field(default_factory=dict, repr=False)
    _months: dict[tuple[int, int], int] = field(default_factory=dict, repr=False)

    @property
    def years(self) -> range:
        """The years the installed data covers."""
        return range(self._entity.start_year, self._entity.end_year + 1)

    def holidays(self, year: int) -> dict[date, str]:
        """The calendar's holidays and the extra closed dates of `year`, with their names.
        CalendarError when the installed data does not cover the year."""
        found = self._years.get(year)
        if found is None:
            if year not in self.years:
                raise CalendarError(
                    f"calendar {self.name!r} has no holiday data for {year} (the installed "
                    f"holidays package covers {self.years.start}-{self.years.stop - 1})"
                )
            supported = self._entity.supported_languages
            entity = self._entity(
                years=year,
                subdiv=self._subdiv,
                language=_LANGUAGE if _LANGUAGE in supported else self._entity.default_language,
            )
            found = {day: str(name) for day, name in entity.items() if day.year == year}
            found |= {day: label for day, label in self.closed.items() if day.year == year}
            self._years[year] = found
        return found

    def closed_reason(self, day: date) -> str | None:
        """Why `day` is not a business day (`Saturday`, a holiday's name, a closed date's
        label), or None when it is one."""
        return _WEEKEND.get(day.weekday()) or self.holidays(day.year).get(day)

    def business_mask(self, year: int, month: int) -> int:
        """The business days of `year`-`month`: bit `d` set when day `d` is one."""
        bits = self._months.get((year, month))
        if bits is None:
            bits = weekday_mask(*month_shape(year, month))
            for day in self.holidays(year):
                if day.month == month:
                    bits &= ~(1 << day.day)
            self._months[year, month] = bits
        return bits

    def is_business_day(self, day: date) -> bool:
        return bool(self.business_mask(day.year, day.month) >> day.day & 1)


def load_calendar(name: str, closed: tuple[tuple[date, str], ...] = ()) -> HolidayCalendar:
    """The calendar `name` (a country, `COUNTRY-SUBDIVISION` or a market code, any case) with
    the extra `closed` dates; CalendarError naming the value when the package has no such
    calendar."""
    key = name.strip().upper()
    if not key or key == NO_CALENDAR.upper():
        raise CalendarError(f"calendar {name!r}: expected a country, subdivision or market code")
    return _load(key, closed)


@lru_cache(maxsize=64)
def _load(key: str, closed: tuple[tuple[date, str], ...]) -> HolidayCalendar:
    # Lazily: importing holidays costs about 60 ms, which only a worker with calendars pays.
    import holidays
    from holidays.registry import EntityLoader

    if key in set(EntityLoader.get_financial_codes()):
        return HolidayCalendar(key, dict(closed), getattr(holidays, key), None)
    country, _, subdiv = key.partition("-")
    if country not in set(EntityLoader.get_country_codes()):
        raise CalendarError(
            f"unknown calendar {key!r}: expected a country (BR), a subdivision (BR-SP) or a "
            "financial market (NYSE, B3, ECB) known to the installed holidays package"
        )
    entity = getattr(holidays, country)
    if subdiv:
        try:
            entity(subdiv=subdiv, years=())
        except (NotImplementedError, ValueError):
            known = ", ".join(entity.subdivisions) or "none"
            raise CalendarError(
                f"unknown calendar {key!r}: {country} has no subdivision {subdiv!r} "
                f"(known: {known})"
            ) from None
    return HolidayCalendar(key, dict(closed), entity, subdiv or None)


@dataclass(frozen=True, eq=False, slots=True)
class HolidayDays:
    """The days a schedule runs on under a calendar: the days its fields select (`base`,
    whose business-day terms count this calendar's business days), with `policy` applied to
    those that are not business days. What `CronFields.day_source` asks for a month."""

    base: CronFields
    calendar: HolidayCalendar
    policy: OnHoliday
    _cache: dict[tuple[int, int], tuple[int, ...]] = field(default_factory=dict, repr=False)

    def days(self, year: int, month: int) -> tuple[int, ...]:
        found = self._cache.get((year, month))
        if found is None:
            found = self._cache[year, month] = mask_days(self.mask(year, month))
        return found

    def base_mask(self, year: int, month: int) -> int:
        bits = 0
        for day in self.base.month_days(year, month):
            bits |= 1 << day
        return bits

    def mask(self, year: int, month: int) -> int:
        selected = self.base_mask(year, month)
        open_days = self.calendar.business_mask(year, month)
        result = selected & open_days
        if self.policy is OnHoliday.SKIP or not open_days:
            return result
        forward = self.policy is OnHoliday.NEXT
        for day in mask_days(selected & ~open_days):
            # Within the month: the nearest business day on the policy's side, if any.
            side = open_days >> (day + 1) << (day + 1) if forward else open_days & ((1 << day) - 1)
            if side:
                result |= side & -side if forward else 1 << (side.bit_length() - 1)
        first = date(year, month, 1)
        outside = first - timedelta(days=1) if forward else _month_after(first)
        if self._carried(outside, forward):
            result |= open_days & -open_days if forward else 1 << (open_days.bit_length() - 1)
        return result

    def _carried(self, day: date, forward: bool) -> bool:
        """Whether a fire day in the run of closed days that ends (`forward`) or starts at
        `day`, outside the month, is moved into the month."""
        step = timedelta(days=-1 if forward else 1)
        for _ in range(_MAX_CLOSED_RUN):
            if self.calendar.is_business_day(day):
                return False
            if self.base_mask(day.year, day.month) >> day.day & 1:
                return True
            day += step
        return False

    def moved_to(self, day: date) -> date | None:
        """Where a fire time on the closed `day` runs (None: skipped)."""
        if self.policy is OnHoliday.SKIP:
            return None
        step = timedelta(days=1 if self.policy is OnHoliday.NEXT else -1)
        for _ in range(_MAX_CLOSED_RUN):
            day += step
            if self.calendar.is_business_day(day):
                return day
        return None


def _month_after(first: date) -> date:
    return date(first.year + first.month // 12, first.month % 12 + 1, 1)


def with_calendar(
    schedule: Schedule, calendar: HolidayCalendar | None, on_holiday: OnHoliday
) -> Schedule:
    """`schedule` run on `calendar`'s business days with the `on_holiday` policy.

    Without a calendar the schedule is returned as it is (its `nB`/`LB` count Monday to Friday),
    and a policy other than `skip` is refused: it would do nothing. ScheduleError for an
    `@every` schedule, which runs on elapsed time, not days.
    """
    if calendar is None:
        if on_holiday is not OnHoliday.SKIP:
            raise ScheduleError(f"on_holiday={on_holiday.value!r} needs a holiday calendar")
        return schedule
    if not isinstance(schedule, CronSchedule):
        raise ScheduleError(
            f"calendar {calendar.name!r}: a holiday calendar applies to cron schedules; "
            "'@every' runs on elapsed time, not on days"
        )
    fields = schedule.fields
    base = fields
    if fields.rule is not None:  # its nB and LB count this calendar's business days
        base = replace(fields, day_source=RuleDays(fields.rule, calendar))
    days = HolidayDays(base, calendar, OnHoliday(on_holiday))
    # Holidays can rule out a date for years (a 1 January job that skips holidays: forever);
    # registration asks for the next fire time, so such a schedule is refused there.
    bound = replace(fields, day_source=days, search_years=LONG_SEARCH_YEARS)
    return replace(schedule, fields=bound, calendar=calendar, on_holiday=days.policy.value)


@dataclass(frozen=True, slots=True)
class ClosedDay:
    """A day the schedule's fields select that is not a business day, and what became of it."""

    day: date
    reason: str
    moved_to: date | None  # None: skipped


def closed_days(schedule: Schedule, first: date, last: date) -> Iterator[ClosedDay]:
    """The selected days from `first` to `last` (local dates) that are not business days."""
    if not isinstance(schedule, CronSchedule) or not isinstance(
        schedule.fields.day_source, HolidayDays
    ):
        return
    days = schedule.fields.day_source
    day = first
    while day <= last:
        if days.base_mask(day.year, day.month) >> day.day & 1:
            reason = days.calendar.closed_reason(day)
            if reason is not None:
                yield ClosedDay(day, reason, days.moved_to(day))
        day += timedelta(days=1)
