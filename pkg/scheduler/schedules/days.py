"""Calendar terms of the day fields: `L`, `LW`, `nW`, `nB`, `LB` (day-of-month), `d#n` and `dL`
(day-of-week), and the days of a month they select.

Everything here works on one month at a time, as bit masks (bit `d` set: day `d` of the month
matches), because every term is defined within its month: `nW` never leaves it, `d#5` in a
month with four such weekdays selects nothing, `nB` counts the month's own business days.

Choices the terms leave open, made as Quartz makes them where it has the term:

- `nW` is the weekday (Monday to Friday) nearest day `n`, whatever the holiday calendar: a
  Saturday moves to the Friday before and a Sunday to the Monday after, unless that leaves the
  month (`1W` on a Saturday is Monday the 3rd, `31W` on a Sunday Friday the 29th). A month
  without day `n` (`30W` in February) has no run. `LW` is the month's last weekday.
- `nB` is the n-th business day of the month (`1B` to `23B`: no month has more than 23
  weekdays), `LB` its last: Monday to Friday, minus the job's holiday calendar when it has one.
  A month with fewer than `n` business days has no `nB` run; nothing spills into the next month.
- Terms take no range or step (`L/2`, `1W-5W` mean nothing) but mix with plain values in a
  list: `1,15,L` is the 1st, the 15th and the last day; `1#1,5L` the first Monday and the last
  Friday.
- A term restricts its field like any value, so the Vixie rule holds unchanged: with the other
  day field `*` (`0 9 5B * *`) the term alone decides; with both day fields restricted, a day
  matching either runs (`0 9 LB * MON` is the last business day and every Monday).
- `L` alone in day-of-week is refused: Quartz reads it as Saturday, a reader of this project's
  expressions (where 0 is Sunday) could read it as anything; `6L` says the last Saturday.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass, field
from typing import Protocol

_DAY_NAMES = {"SUN": 0, "MON": 1, "TUE": 2, "WED": 3, "THU": 4, "FRI": 5, "SAT": 6}
MAX_BUSINESS_DAY = 23  # 31 days starting on a Monday, Tuesday or Wednesday: 23 weekdays

_DOM_TOKEN = re.compile(r"(?P<n>[0-9]+)?(?P<kind>L|LW|LB|W|B)", re.IGNORECASE)
_DOW_TOKEN = re.compile(r"(?P<day>[0-9]+|[A-Z]{3})(?:#(?P<n>[0-9]+)|(?P<last>L))", re.IGNORECASE)
# Anything that looks like a term: in day-of-month any L, W, B or #; in day-of-week a `#`, a
# trailing L, or a W/B after a digit (`WED` is a name, not a term).
_DOM_TERMISH = re.compile(r"[LWB#]", re.IGNORECASE)
_DOW_TERMISH = re.compile(r"#|L$|^L|[0-9][WB]$", re.IGNORECASE)


class BusinessDays(Protocol):
    """Which days of a month are business days: `name` says whose, `business_mask(year, month)`
    has bit `d` set when day `d` is one."""

    @property
    def name(self) -> str: ...

    def business_mask(self, year: int, month: int) -> int: ...


@dataclass(frozen=True, slots=True)
class _Weekdays:
    """Monday to Friday: the business days of a job without a holiday calendar."""

    name: str = "weekdays"

    def business_mask(self, year: int, month: int) -> int:
        first_dow, length = month_shape(year, month)
        return weekday_mask(first_dow, length)


WEEKDAYS: BusinessDays = _Weekdays()


@dataclass(frozen=True, slots=True)
class DayRule:
    """The day fields of an expression that uses calendar terms, ready to evaluate per month.

    `dom_mask` and `weekdays` hold the plain values of each field (bit per day, bit per weekday
    with 0 = Sunday); the other fields hold the terms. `dom_any`/`dow_any` as in `CronFields`.
    """

    dom_mask: int = 0
    weekdays: int = 0
    last_day: bool = False
    last_weekday: bool = False
    last_business: bool = False
    nearest: tuple[int, ...] = ()  # nW
    business: tuple[int, ...] = ()  # nB
    nth: tuple[tuple[int, int], ...] = ()  # d#n as (weekday, n)
    last_of: tuple[int, ...] = ()  # dL
    dom_any: bool = False
    dow_any: bool = False

    @property
    def uses_business_days(self) -> bool:
        return bool(self.business) or self.last_business

    def mask(self, year: int, month: int, business: BusinessDays) -> int:
        """The days of `year`-`month` this rule selects, as a bit mask."""
        first_dow, length = month_shape(year, month)
        open_days = business.business_mask(year, month) if self.uses_business_days else 0
        return self.shape_mask(first_dow, length, open_days)

    def shape_mask(self, first_dow: int, length: int, open_days: int) -> int:
        """The days selected in a month whose 1st is weekday `first_dow` (0 = Sunday), of
        `length` days, whose business days are the bits of `open_days`."""
        full = ((1 << length) - 1) << 1
        dom = self.dom_mask & full
        if self.last_day:
            dom |= 1 << length
        if self.last_weekday:
            day = length
            while (first_dow + day - 1) % 7 in (0, 6):
                day -= 1
            dom |= 1 << day
        for n in self.nearest:
            if n <= length:
                dom |= 1 << _nearest_weekday(n, first_dow, length)
        for n in self.business:
            day = _nth_bit(open_days, n)
            if day:
                dom |= 1 << day
        if self.last_business and open_days:
            dom |= 1 << (open_days.bit_length() - 1)
        dow = 0
        for weekday in range(7):
            if self.weekdays >> weekday & 1:
                dow |= _weekday_days(weekday, first_dow, length)
        for weekday, n in self.nth:
            day = 1 + (weekday - first_dow) % 7 + 7 * (n - 1)
            if day <= length:
                dow |= 1 << day
        for weekday in self.last_of:
            day = 1 + (weekday - first_dow) % 7
            dow |= 1 << (day + 7 * ((length - day) // 7))
        # One day field left as a wildcard: the other decides. Both restricted: either (Vixie).
        return dom & dow if self.dom_any or self.dow_any else dom | dow


@dataclass(frozen=True, eq=False, slots=True)
class RuleDays:
    """`DayRule` bound to whose business days count, with a month cache: what `CronFields`
    asks for the days of a month."""

    rule: DayRule
    business: BusinessDays = WEEKDAYS
    _cache: dict[tuple[int, int], tuple[int, ...]] = field(default_factory=dict, repr=False)

    def mask(self, year: int, month: int) -> int:
        return self.rule.mask(year, month, self.business)

    def days(self, year: int, month: int) -> tuple[int, ...]:
        found = self._cache.get((year, month))
        if found is None:
            found = self._cache[year, month] = mask_days(self.mask(year, month))
        return found


def month_shape(year: int, month: int) -> tuple[int, int]:
    """(weekday of the 1st with 0 = Sunday, number of days)."""
    first_weekday, length = calendar.monthrange(year, month)  # Monday = 0
    return (first_weekday + 1) % 7, length


def weekday_mask(first_dow: int, length: int) -> int:
    """The Mondays to Fridays of a month of this shape, as a bit mask."""
    bits = 0
    for weekday in range(1, 6):
        bits |= _weekday_days(weekday, first_dow, length)
    return bits


def mask_days(bits: int) -> tuple[int, ...]:
    """The days whose bits are set, in order."""
    return tuple(day for day in range(1, bits.bit_length()) if bits >> day & 1)


def _weekday_days(weekday: int, first_dow: int, length: int) -> int:
    bits = 0
    for day in range(1 + (weekday - first_dow) % 7, length + 1, 7):
        bits |= 1 << day
    return bits


def _nearest_weekday(n: int, first_dow: int, length: int) -> int:
    weekday = (first_dow + n - 1) % 7
    if weekday == 6:  # Saturday: the Friday before, or Monday the 3rd for the 1st
        return n - 1 if n > 1 else n + 2
    if weekday == 0:  # Sunday: the Monday after, or the Friday before for the month's last day
        return n + 1 if n < length else n - 2
    return n


def _nth_bit(bits: int, n: int) -> int:
    """The day of the n-th set bit (1-based), or 0 when there are fewer."""
    for day in range(1, bits.bit_length()):
        if bits >> day & 1:
            n -= 1
            if n == 0:
                return day
    return 0


def is_dom_term(item: str) -> bool:
    """Whether a day-of-month list item is (or tries to be) a calendar term."""
    return _DOM_TERMISH.search(item) is not None


def is_dow_term(item: str) -> bool:
    """Whether a day-of-week list item is (or tries to be) a calendar term."""
    return _DOW_TERMISH.search(item) is not None


@dataclass(slots=True)
class DayTerms:
    """The calendar terms of an expression's two day fields, collected while parsing."""

    last_day: bool = False
    last_weekday: bool = False
    last_business: bool = False
    nearest: set[int] = field(default_factory=set)
    business: set[int] = field(default_factory=set)
    nth: set[tuple[int, int]] = field(default_factory=set)
    last_of: set[int] = field(default_factory=set)

    def __bool__(self) -> bool:
        return any((self.last_day, self.last_weekday, self.last_business)) or any(
            (self.nearest, self.business, self.nth, self.last_of)
        )

    def rule(self, dom_mask: int, weekdays: int, dom_any: bool, dow_any: bool) -> DayRule:
        """The rule of these terms beside the plain values of each field."""
        return DayRule(
            dom_mask=dom_mask,
            weekdays=weekdays,
            last_day=self.last_day,
            last_weekday=self.last_weekday,
            last_business=self.last_business,
            nearest=tuple(sorted(self.nearest)),
            business=tuple(sorted(self.business)),
            nth=tuple(sorted(self.nth)),
            last_of=tuple(sorted(self.last_of)),
            dom_any=dom_any,
            dow_any=dow_any,
        )

    def add_dom(self, item: str) -> None:
        """Parse a day-of-month term; ValueError saying what is wrong."""
        match = _DOM_TOKEN.fullmatch(item)
        if match is None:
            raise ValueError(_dom_error(item))
        kind, number = match["kind"].upper(), match["n"]
        if kind in ("L", "LW", "LB"):
            if number is not None:
                raise ValueError("expected 'L', 'LW' or 'LB' with no number before it")
            self.last_day |= kind == "L"
            self.last_weekday |= kind == "LW"
            self.last_business |= kind == "LB"
            return
        if number is None:
            raise ValueError(f"expected a day before '{kind}', e.g. '15{kind}'")
        n = int(number)
        if kind == "W":
            if not 1 <= n <= 31:
                raise ValueError(f"day {n} out of range 1-31")
            self.nearest.add(n)
        else:
            if not 1 <= n <= MAX_BUSINESS_DAY:
                raise ValueError(
                    f"business day {n} out of range 1-{MAX_BUSINESS_DAY} "
                    f"(no month has more than {MAX_BUSINESS_DAY} weekdays)"
                )
            self.business.add(n)

    def add_dow(self, item: str) -> None:
        """Parse a day-of-week term (`d#n`, `dL`); ValueError saying what is wrong."""
        if item.upper() == "L":
            raise ValueError(
                "'L' alone in day-of-week is ambiguous: write '6L' for the last "
                "Saturday, or 'L' in day-of-month for the last day of the month"
            )
        match = _DOW_TOKEN.fullmatch(item)
        if match is None:
            raise ValueError(_dow_error(item))
        day_text = match["day"].upper()
        if day_text.isdigit():
            weekday = int(day_text)
            if not 0 <= weekday <= 7:
                raise ValueError(f"weekday {weekday} out of range 0-7")
        elif day_text in _DAY_NAMES:
            weekday = _DAY_NAMES[day_text]
        else:
            raise ValueError(f"unknown day name {match['day']!r}")
        weekday %= 7  # 7 is Sunday too
        if match["last"]:
            self.last_of.add(weekday)
            return
        n = int(match["n"])
        if not 1 <= n <= 5:
            raise ValueError(f"occurrence {n} out of range 1-5")
        self.nth.add((weekday, n))


def _dom_error(item: str) -> str:
    if "#" in item:
        return "'d#n' belongs in the day-of-week field"
    if re.fullmatch(r"L-[0-9]+", item, re.IGNORECASE):
        return "offsets from the last day ('L-n') are not supported; use 'L' or 'LW'"
    if "/" in item or "-" in item or "," in item:
        return "'L', 'LW', 'nW', 'nB' and 'LB' take no range or step"
    return f"expected 'L', 'LW', 'LB', 'nW' (1-31) or 'nB' (1-{MAX_BUSINESS_DAY})"


def _dow_error(item: str) -> str:
    if re.fullmatch(r"[0-9]*(LW|LB|W|B)", item, re.IGNORECASE):
        return "'W', 'LW', 'B' and 'LB' belong in the day-of-month field"
    if "/" in item or "-" in item:
        return "'d#n' and 'dL' take no range or step"
    return "expected 'd#n' (the n-th such weekday, e.g. 'FRI#3') or 'dL' (the last)"
