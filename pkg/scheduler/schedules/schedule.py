"""Schedules: parsing cron expressions and descriptors, and computing fire times.

`parse_schedule` accepts

- 5 fields `min hour dom month dow` and 6 fields `sec min hour dom month dow` (seconds first, as
  robfig/cron's `WithSeconds`), with names (`JAN`, `MON`), ranges, lists, steps, and `?` read as
  `*`. Day-of-week 0 and 7 are Sunday. When day-of-month and day-of-week are both restricted a day
  matching either runs (Vixie cron); a day field written `*`, `?` or `*/1` does not restrict.
- descriptors `@yearly @annually @monthly @weekly @daily @midnight @hourly`, read as the
  equivalent 5-field expressions;
- `@every <duration>` in Go's syntax (`5s`, `1h30m`, units h, m, s, ms, us, ns), a whole number of
  seconds and at least 1 s. It fires at whole multiples of the duration since the Unix epoch,
  whatever the zone, so every replica computes the same ticks and a restart does not shift them;
- a `CRON_TZ=<zone> ` or `TZ=<zone> ` prefix that overrides the default zone.

Daylight saving follows Debian/Vixie cron; see `financial.pkg.scheduler.schedules.dst`. Nothing
here reads the clock: the reference instant is always a parameter.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from financial.pkg.scheduler.schedules.cron import CronFields, parse_fields
from financial.pkg.scheduler.schedules.days import BusinessDays
from financial.pkg.scheduler.schedules.dst import next_elapsed_time, next_fixed_time

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
# previous_before searches back this far (2**28 s, about 8.5 years: beyond the 8-year gap
# between two 29 Februaries across 2100).
_MAX_LOOKBACK = timedelta(seconds=2**28)

_DESCRIPTORS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_ZONE_PREFIX = re.compile(r"(?:CRON_TZ|TZ)=(?P<zone>\S*)(?:\s+(?P<rest>.*))?", re.DOTALL)
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_NS = {"ns": 1, "us": 10**3, "µs": 10**3, "μs": 10**3, "ms": 10**6, "s": 10**9}
_UNIT_NS |= {"m": 60 * 10**9, "h": 3600 * 10**9}


class ScheduleError(ValueError):
    """An expression that is not a valid schedule; the message says what is wrong with it."""


class Schedule(ABC):
    """When a job fires: a pure function from a reference instant to fire instants.

    `expression` is the text as given (with any zone prefix); `zone` the zone it is evaluated in
    (UTC for `@every`). Instances are immutable and hashable. Results are aware datetimes in UTC.
    """

    expression: str
    zone: ZoneInfo

    @abstractmethod
    def next_after(self, after: datetime) -> datetime:
        """The first fire instant strictly after `after` (an aware datetime, any zone)."""

    def next_n(self, after: datetime, n: int) -> list[datetime]:
        """The next `n` fire instants strictly after `after`, in order."""
        ticks: list[datetime] = []
        for _ in range(n):
            after = self.next_after(after)
            ticks.append(after)
        return ticks

    def previous_before(self, before: datetime) -> datetime | None:
        """The last fire instant strictly before `before`, or None when there is none within
        about 8.5 years (a bounded search, for catch-up after downtime)."""
        before = _utc(before)
        span = timedelta(seconds=1)
        while True:  # widen the window until a tick falls in it
            try:
                best = self.next_after(before - span)
            except (OverflowError, ScheduleError):  # searched back past year 1
                return None
            if best < before:
                break
            if span >= _MAX_LOOKBACK:
                return None
            span *= 2
        # `best` is a tick before `before`; no tick lies in [high, before). Narrow by halves,
        # using only next_after, so the answer agrees with it by construction.
        high = before
        while True:
            following = self.next_after(best)
            if following >= high:
                return best
            best = following
            middle = best + (high - best) // 2
            tick = self.next_after(middle)
            if tick < high:
                best = tick
            else:
                high = middle + _MICROSECOND


@dataclass(frozen=True, eq=False, slots=True)
class CronSchedule(Schedule):
    """A cron expression (5 or 6 fields, or a descriptor) evaluated in `zone`; with a holiday
    `calendar`, on its business days by the `on_holiday` policy (see `calendars.with_calendar`,
    which binds them into `fields`)."""

    expression: str
    zone: ZoneInfo
    fields: CronFields = field(repr=False)
    calendar: BusinessDays | None = field(default=None, repr=False)
    on_holiday: str = field(default="skip", repr=False)

    def next_after(self, after: datetime) -> datetime:
        """The first fire instant strictly after `after`, in UTC (see `dst` for the DST rules)."""
        after = _utc(after)
        find = next_fixed_time if self.fields.fixed_hour else next_elapsed_time
        try:
            tick = find(self.fields, self.zone, after)
        except OverflowError:
            tick = None
        if tick is None:
            within = f" within {self.fields.search_years} years" if self.calendar else ""
            raise ScheduleError(
                f"{self.expression!r} has no fire time{within} after {after.isoformat()}"
            )
        return tick

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CronSchedule):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def _key(self) -> tuple[object, ...]:
        # A calendar is one instance per name and closed dates (`load_calendar`).
        return (self.expression, self.zone, self.calendar, self.on_holiday)


@dataclass(frozen=True, slots=True)
class EverySchedule(Schedule):
    """`@every <duration>`: whole multiples of `interval` since the Unix epoch, in UTC."""

    expression: str
    interval: timedelta
    zone: ZoneInfo = field(default=ZoneInfo("UTC"))

    def next_after(self, after: datetime) -> datetime:
        """The first multiple of the interval since the epoch strictly after `after`."""
        elapsed = _utc(after) - _EPOCH
        return _EPOCH + (elapsed // self.interval + 1) * self.interval

    def previous_before(self, before: datetime) -> datetime | None:
        """The last multiple of the interval since the epoch strictly before `before`."""
        elapsed = _utc(before) - _EPOCH - _MICROSECOND
        return _EPOCH + (elapsed // self.interval) * self.interval


def parse_schedule(expression: str, default_zone: str | ZoneInfo = "UTC") -> Schedule:
    """Parse a cron expression, descriptor or `@every` duration, with an optional `CRON_TZ=`
    (or `TZ=`) prefix that overrides `default_zone`.

    Raises ScheduleError with a short reason naming the bad field or value; the caller adds the
    job's name.
    """
    if not isinstance(expression, str):
        raise ScheduleError(f"expected a string, got {type(expression).__name__}")
    zone = default_zone if isinstance(default_zone, ZoneInfo) else _zone(default_zone)
    body = expression.strip()
    prefix = _ZONE_PREFIX.fullmatch(body)
    if prefix is not None:
        zone = _zone(prefix["zone"])
        body = (prefix["rest"] or "").strip()
        if not body:
            raise ScheduleError("expected a schedule after the time zone prefix")
    if not body:
        raise ScheduleError("empty expression")
    if body.startswith("@"):
        name, _, argument = body.replace("\t", " ").partition(" ")
        name, argument = name.lower(), argument.strip()
        if name == "@every":
            return EverySchedule(expression=expression, interval=_duration(argument))
        if name not in _DESCRIPTORS:
            known = " ".join([*_DESCRIPTORS, "@every"])
            raise ScheduleError(f"unknown descriptor {name!r} (expected one of {known})")
        if argument:
            raise ScheduleError(f"descriptor {name!r} takes no argument, got {argument!r}")
        body = _DESCRIPTORS[name]
    try:
        fields = parse_fields(body.split())
    except ValueError as exc:
        raise ScheduleError(str(exc)) from None
    return CronSchedule(expression=expression, zone=zone, fields=fields)


def _zone(name: str) -> ZoneInfo:
    if not name:
        raise ScheduleError("empty time zone name")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # ValueError and OSError: keys that are paths ("../x", a folder such as "America").
        raise ScheduleError(f"unknown time zone {name!r}") from None


def _duration(text: str) -> timedelta:
    if not text:
        raise ScheduleError("@every needs a duration, e.g. '@every 5m'")
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        raise ScheduleError(f"@every {text!r}: expected a duration such as 90s, 5m or 1h30m")
    total_ns = sum(Fraction(number) * _UNIT_NS[unit] for number, unit in parts)
    if total_ns < 10**9:
        raise ScheduleError(f"@every {text!r}: the interval must be at least 1s")
    if total_ns % 10**9:
        raise ScheduleError(f"@every {text!r}: the interval must be a whole number of seconds")
    return timedelta(seconds=int(total_ns // 10**9))


def _utc(instant: datetime) -> datetime:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"expected an aware datetime, got naive {instant.isoformat()}")
    return instant.astimezone(UTC)
