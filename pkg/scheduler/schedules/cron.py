"""Cron fields on the wall clock: parsing them and finding the next matching local time.

This module knows nothing of time zones. `CronFields.next_match` walks naive local date-times;
`financial.pkg.scheduler.schedules.dst` turns those into instants.

The fields are expanded here rather than by `croniter.expand`, which croniter 7.0 gets wrong in
ways a scheduler cannot live with: a single-value range becomes a wildcard (`0 3-3 * * *` runs
every hour, day-of-week `0-0` every day), `15W` silently reads as `15`, and a 6-field expression
is read with the seconds last. Parsing each item ourselves also lets every error name the field
and the value. The calendar terms of the day fields (`L`, `LW`, `nW`, `nB`, `LB`, `d#n`, `dL`)
are parsed and evaluated in `financial.pkg.scheduler.schedules.days`; hashed values (`H`) are
refused by name.

A schedule without calendar terms or a holiday calendar takes the path it always took: its days
come from `_month_days`, cached per (day fields, month). With terms or a calendar, `day_source`
answers instead, so the terms cost only where they are used.
"""

from __future__ import annotations

import calendar
import re
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Protocol

from financial.pkg.scheduler.schedules.days import (
    DayRule,
    DayTerms,
    RuleDays,
    is_dom_term,
    is_dow_term,
    weekday_mask,
)

# Spelled out: calendar.month_abbr follows the process's locale.
_MONTHS = "JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC"
_MONTH_NAMES = {name: i for i, name in enumerate(_MONTHS.split(), start=1)}
_DAY_NAMES = {"SUN": 0, "MON": 1, "TUE": 2, "WED": 3, "THU": 4, "FRI": 5, "SAT": 6}


@dataclass(frozen=True, slots=True)
class _Field:
    label: str
    low: int
    high: int
    names: dict[str, int]


_SECOND = _Field("second", 0, 59, {})
_MINUTE = _Field("minute", 0, 59, {})
_HOUR = _Field("hour", 0, 23, {})
_DOM = _Field("day-of-month", 1, 31, {})
_MONTH = _Field("month", 1, 12, _MONTH_NAMES)
_DOW = _Field("day-of-week", 0, 7, _DAY_NAMES)  # 7 is Sunday too

_ITEM = re.compile(r"(?P<base>\*|[0-9A-Za-z]+(?:-[0-9A-Za-z]+)?)(?:/(?P<step>[0-9]+))?")
# Hashed values (croniter, Jenkins) spread jobs by name; robfig/cron has none, so they are
# refused by name rather than read as something else.
_HASHED = re.compile(r"^H(?:$|[(/])", re.IGNORECASE)
# A calendar term written outside the day fields.
_STRAY_TERM = re.compile(r"#|^L[WB]?$|[0-9][LWB]$", re.IGNORECASE)

# The longest run of years without a given date: 29 February skips 2100 (2096 -> 2104).
_SEARCH_YEARS = 9
# With calendar terms or a holiday calendar: a month of a given shape recurs within 40 years
# (a 29-day February starting on a given weekday: 28 years apart, 40 across 2100; tested).
LONG_SEARCH_YEARS = 41


class DaySource(Protocol):
    """The days of a month a schedule with calendar terms or a holiday calendar runs on."""

    def days(self, year: int, month: int) -> tuple[int, ...]: ...


@dataclass(frozen=True, slots=True)
class CronFields:
    """The expanded fields of a cron expression, as sorted tuples, plus the two flags that decide
    how days and daylight saving are treated.

    `dom_any`/`dow_any`: the day-of-month/day-of-week field is written as a wildcard (`*`, `?`,
    `*/1`). When both day fields are restricted, a day matching either one matches (Vixie cron).
    `fixed_hour`: the hour field is neither a wildcard nor a step, so the schedule names fixed wall
    times and runs once per matching wall time across daylight-saving changes.
    """

    seconds: tuple[int, ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: tuple[int, ...]
    months: tuple[int, ...]
    weekdays: tuple[int, ...]  # 0 = Sunday
    dom_any: bool
    dow_any: bool
    fixed_hour: bool
    # Calendar terms of the day fields (None: plain values only) and what answers for the days
    # of a month in their place (None: `_month_days`, the plain path).
    rule: DayRule | None = None
    day_source: DaySource | None = field(default=None, repr=False, compare=False)
    search_years: int = _SEARCH_YEARS
    _day_key: tuple[int, int, bool, bool] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        day_key = (_mask(self.days), _mask(self.weekdays), self.dom_any, self.dow_any)
        object.__setattr__(self, "_day_key", day_key)

    def month_days(self, year: int, month: int) -> tuple[int, ...]:
        """The days of `year`-`month` the day fields select, in order."""
        if self.day_source is None:
            return _month_days(self._day_key, year, month)
        return self.day_source.days(year, month)

    def next_match(self, start: datetime) -> datetime | None:
        """The first whole-second naive wall time at or after `start` that matches, or None when
        there is none within the datetime range."""
        if start.microsecond:
            start = start.replace(microsecond=0) + timedelta(seconds=1)
        y, mo, d, h, mi, s = (
            start.year,
            start.month,
            start.day,
            start.hour,
            start.minute,
            start.second,
        )
        last_year = min(start.year + self.search_years, datetime.max.year)
        months, hours, minutes, seconds = self.months, self.hours, self.minutes, self.seconds
        source, day_key = self.day_source, self._day_key
        while y <= last_year:
            i = bisect_left(months, mo)
            if i == len(months):
                y, mo, d, h, mi, s = y + 1, months[0], 1, 0, 0, 0
                continue
            if months[i] != mo:
                mo, d, h, mi, s = months[i], 1, 0, 0, 0
            days = _month_days(day_key, y, mo) if source is None else source.days(y, mo)
            i = bisect_left(days, d)
            if i == len(days):
                y, mo, d, h, mi, s = (y + 1, 1, 1, 0, 0, 0) if mo == 12 else (y, mo + 1, 1, 0, 0, 0)
                continue
            if days[i] != d:
                d, h, mi, s = days[i], 0, 0, 0
            i = bisect_left(hours, h)
            if i == len(hours):
                d, h, mi, s = d + 1, 0, 0, 0  # past the month's end: the day lookup moves on
                continue
            if hours[i] != h:
                h, mi, s = hours[i], 0, 0
            i = bisect_left(minutes, mi)
            if i == len(minutes):
                h, mi, s = h + 1, 0, 0
                continue
            if minutes[i] != mi:
                mi, s = minutes[i], 0
            i = bisect_left(seconds, s)
            if i == len(seconds):
                mi, s = mi + 1, 0
                continue
            return datetime(y, mo, d, h, mi, seconds[i])
        return None


def _mask(values: Sequence[int]) -> int:
    bits = 0
    for value in values:
        bits |= 1 << value
    return bits


@lru_cache(maxsize=1024)
def _month_days(key: tuple[int, int, bool, bool], year: int, month: int) -> tuple[int, ...]:
    dom_mask, dow_mask, dom_any, dow_any = key
    first_weekday, length = calendar.monthrange(year, month)  # Monday = 0
    first_dow = (first_weekday + 1) % 7  # cron: Sunday = 0
    result = []
    for day in range(1, length + 1):
        dom_hit = bool(dom_mask >> day & 1)
        dow_hit = bool(dow_mask >> ((first_dow + day - 1) % 7) & 1)
        # One day field left as a wildcard: the other decides. Both restricted: either (Vixie).
        if (dom_hit and dow_hit) if dom_any or dow_any else (dom_hit or dow_hit):
            result.append(day)
    return tuple(result)


def parse_fields(fields: Sequence[str]) -> CronFields:
    """Parse 5 fields (`min hour dom month dow`) or 6 (`sec min hour dom month dow`).

    Raises ValueError with a short reason naming the field and its value.
    """
    if len(fields) not in (5, 6):
        raise ValueError(f"expected 5 or 6 fields, got {len(fields)}")
    if len(fields) == 5:
        fields = ["0", *fields]
    specs = (_SECOND, _MINUTE, _HOUR, _DOM, _MONTH, _DOW)
    terms = DayTerms()
    values = [
        _expand(text, spec, terms if spec in (_DOM, _DOW) else None)
        for text, spec in zip(fields, specs, strict=True)
    ]
    seconds, minutes, hours, days, months, weekdays = values
    weekdays = tuple(sorted({d % 7 for d in weekdays}))
    dom_any, dow_any = _is_wildcard(fields[3]), _is_wildcard(fields[5])
    rule = terms.rule(_mask(days), _mask(weekdays), dom_any, dow_any) if terms else None
    result = CronFields(
        seconds=seconds,
        minutes=minutes,
        hours=hours,
        days=days,
        months=months,
        weekdays=weekdays,
        dom_any=dom_any,
        dow_any=dow_any,
        fixed_hour=not any(c in fields[2] for c in "*?/"),
        rule=rule,
        day_source=None if rule is None else RuleDays(rule),
        search_years=_SEARCH_YEARS if rule is None else LONG_SEARCH_YEARS,
    )
    if rule is None:
        _check_feasible(result, fields[3], fields[4])
    else:
        _check_rule_feasible(rule, months, fields)
    return result


def _expand(text: str, spec: _Field, terms: DayTerms | None = None) -> tuple[int, ...]:
    """The sorted values of one field; ValueError naming the field and what is wrong.

    In the day fields (`terms` given), calendar terms go to `terms` instead of the values.
    """
    where = f"{spec.label} field {text!r}"
    # Open ranges (`*`, `N/step`) end on 6 for day-of-week: 7 only repeats Sunday.
    high = 6 if spec is _DOW else spec.high
    values: set[int] = set()
    for item in text.split(","):
        if not item:
            raise ValueError(f"{where}: empty list item")
        if _HASHED.search(item):
            raise ValueError(f"{where}: hashed values ('H') are not supported")
        if terms is not None and (is_dom_term(item) if spec is _DOM else is_dow_term(item)):
            add = terms.add_dom if spec is _DOM else terms.add_dow
            try:
                add(item)
            except ValueError as exc:
                within = "" if item == text else f"{item!r}: "
                raise ValueError(f"{where}: {within}{exc}") from None
            continue
        if _STRAY_TERM.search(item):
            raise ValueError(
                f"{where}: 'L', 'W', 'B' and '#' belong in the day-of-month and day-of-week fields"
            )
        match = _ITEM.fullmatch(item.replace("?", "*"))
        if match is None:
            raise ValueError(f"{where}: expected a value, range, list or step")
        base, step_text = match["base"], match["step"]
        if base == "*":
            start, end = spec.low, high
        else:
            bounds = [_value(token, spec, where) for token in base.split("-")]
            start, end = bounds[0], bounds[-1]
            if len(bounds) == 1 and step_text is not None:
                end = max(high, start)  # `N/step` is `N-max/step` (robfig/cron, Vixie cron)
            if spec is _DOW and start > end == 0 and base.upper().endswith("-SUN"):
                end = 7  # `MON-SUN`: SUN is 0, yet the range means the whole week
            if start > end:
                raise ValueError(f"{where}: range start {start} is after its end {end}")
        step = 1 if step_text is None else int(step_text)
        span = high - spec.low + 1
        if not 1 <= step <= span:
            raise ValueError(
                f"{where}: step {step} out of range 1-{span} (use @every for longer intervals)"
            )
        values.update(range(start, end + 1, step))
    return tuple(sorted(values))


def _value(token: str, spec: _Field, where: str) -> int:
    if token.isdigit():
        value = int(token)
    elif token.upper() in spec.names:
        value = spec.names[token.upper()]
    elif spec.names:
        raise ValueError(f"{where}: unknown name {token!r}")
    else:
        raise ValueError(f"{where}: {token!r} is not a number")
    if not spec.low <= value <= spec.high:
        raise ValueError(f"{where}: value {value} out of range {spec.low}-{spec.high}")
    return value


def _is_wildcard(text: str) -> bool:
    # `*`, `?` and `*/1` leave the day unrestricted; `*/2` restricts it, as in robfig/cron.
    return text in ("*", "?", "*/1", "?/1")


def _check_feasible(fields: CronFields, dom_text: str, month_text: str) -> None:
    # Only a day-of-month restriction on its own can rule out every date (30 February).
    if fields.dom_any or not fields.dow_any:
        return
    longest = {month: calendar.monthrange(2000, month)[1] for month in fields.months}  # leap year
    if all(fields.days[0] > length for length in longest.values()):
        raise ValueError(
            f"day-of-month field {dom_text!r} never occurs in month field {month_text!r}: "
            "the schedule would never fire"
        )


def _check_rule_feasible(rule: DayRule, months: Sequence[int], fields: Sequence[str]) -> None:
    # Every shape of month (its length, the weekday of its 1st) recurs: the rule fires if it
    # selects a day in one shape of one allowed month. Business days here are Monday to Friday;
    # a holiday calendar that rules out the rest is caught when the job is registered.
    for month in months:
        lengths = (28, 29) if month == 2 else (calendar.monthrange(2001, month)[1],)
        for length in lengths:
            for first_dow in range(7):
                if rule.shape_mask(first_dow, length, weekday_mask(first_dow, length)):
                    return
    raise ValueError(
        f"day-of-month field {fields[3]!r} and day-of-week field {fields[5]!r} select no day "
        f"in month field {fields[4]!r}: the schedule would never fire"
    )
