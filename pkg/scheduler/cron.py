"""Cron fields on the wall clock: parsing them and finding the next matching local time.

This module knows nothing of time zones. `CronFields.next_match` walks naive local date-times;
`financial.pkg.scheduler.dst` turns those into instants. croniter expands each field (names,
ranges, lists, steps); we check the field text first so that an error names the field and the
value, and refuse croniter extensions that robfig/cron (the Go worker's library) did not have.
"""

from __future__ import annotations

import calendar
import re
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache

from croniter import croniter

_MONTH_NAMES = {name.upper(): i for i, name in enumerate(calendar.month_abbr) if name}
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
# croniter extensions (last day, nearest weekday, nth weekday, hashed values): robfig/cron has
# none of them, and croniter reads `15W` silently as `15`, so they are refused by name.
_EXTENSION = re.compile(r"#|^L|\dL$|W$|^H(?:$|[(/])", re.IGNORECASE)

# The longest run of years without a given date: 29 February skips 2100 (2096 -> 2104).
_SEARCH_YEARS = 9


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
    _day_key: tuple[int, int, bool, bool] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        day_key = (_mask(self.days), _mask(self.weekdays), self.dom_any, self.dow_any)
        object.__setattr__(self, "_day_key", day_key)

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
        last_year = min(start.year + _SEARCH_YEARS, datetime.max.year)
        months, hours, minutes, seconds = self.months, self.hours, self.minutes, self.seconds
        while y <= last_year:
            i = bisect_left(months, mo)
            if i == len(months):
                y, mo, d, h, mi, s = y + 1, months[0], 1, 0, 0, 0
                continue
            if months[i] != mo:
                mo, d, h, mi, s = months[i], 1, 0, 0, 0
            days = _month_days(self._day_key, y, mo)
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
    specs = [_MINUTE, _HOUR, _DOM, _MONTH, _DOW]
    if len(fields) == 6:
        specs.insert(0, _SECOND)
    normalized = [_check_field(text, spec) for text, spec in zip(fields, specs, strict=True)]
    try:
        # croniter reads a 6-field expression with the seconds LAST unless told otherwise.
        expanded, nth_weekday = croniter.expand(
            " ".join(normalized), second_at_beginning=len(fields) == 6
        )
    except Exception as exc:  # croniter's own checks, should ours have let something through
        raise ValueError(f"invalid expression: {exc}") from None
    if nth_weekday:
        raise ValueError("day-of-week field: '#' is not supported")
    # croniter returns the seconds last whatever order it read them in.
    if len(fields) == 6:
        expanded.insert(0, expanded.pop())
    else:
        expanded.insert(0, [0])
        specs.insert(0, _SECOND)
        fields = ["0", *fields]
    values = [_values(field, spec) for field, spec in zip(expanded, specs, strict=True)]
    seconds, minutes, hours, days, months, weekdays = values
    weekdays = tuple(sorted({d % 7 for d in weekdays}))
    result = CronFields(
        seconds=seconds,
        minutes=minutes,
        hours=hours,
        days=days,
        months=months,
        weekdays=weekdays,
        dom_any=_is_wildcard(fields[3]),
        dow_any=_is_wildcard(fields[5]),
        fixed_hour=not any(c in fields[2] for c in "*?/"),
    )
    _check_feasible(result, fields[3], fields[4])
    return result


def _check_field(text: str, spec: _Field) -> str:
    """Validate one field's text; return it with `?` read as `*` and names upper-cased."""
    where = f"{spec.label} field {text!r}"
    items = []
    for item in text.split(","):
        if not item:
            raise ValueError(f"{where}: empty list item")
        if _EXTENSION.search(item):
            raise ValueError(f"{where}: 'L', 'W', '#' and 'H' are not supported")
        item = item.replace("?", "*")
        match = _ITEM.fullmatch(item)
        if match is None:
            raise ValueError(f"{where}: expected a value, range, list or step")
        base = match["base"]
        bounds = [] if base == "*" else [_value(v, spec, where) for v in base.split("-")]
        if len(bounds) == 2 and bounds[0] > bounds[1]:
            raise ValueError(f"{where}: range start {bounds[0]} is after its end {bounds[1]}")
        if match["step"] is not None:
            step = int(match["step"])
            span = spec.high - spec.low + 1 - (spec is _DOW)  # 0-6, as 7 repeats 0
            if not 1 <= step <= span:
                raise ValueError(
                    f"{where}: step {step} out of range 1-{span} (use @every for longer intervals)"
                )
        items.append(item.upper())
    return ",".join(items)


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


def _values(expanded: Sequence[int | str], spec: _Field) -> tuple[int, ...]:
    if expanded == ["*"]:
        high = 6 if spec is _DOW else spec.high
        return tuple(range(spec.low, high + 1))
    return tuple(sorted({int(v) for v in expanded}))


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
