"""`financial schedule EXPR`: the next fire times of an expression, with the holiday rules of a
calendar when one is given, saying which dates were skipped or moved and why."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from financial.pkg.scheduler.schedules.calendars import (
    NO_CALENDAR,
    ClosedDay,
    OnHoliday,
    closed_days,
    load_calendar,
    with_calendar,
)
from financial.pkg.scheduler.schedules.schedule import (
    CronSchedule,
    Schedule,
    ScheduleError,
    parse_schedule,
)

EX_OK, EX_USAGE, EX_CONFIG = 0, 2, 78
# How far a fire time can be moved: a longer run of closed days is refused by the calendar.
_SCAN_MARGIN = timedelta(days=31)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("expression", help="e.g. '0 2 * * *', '@every 5s', 'CRON_TZ=... ...'")
    parser.add_argument("--tz", help="time zone (default WORKER_TIMEZONE)")
    parser.add_argument(
        "--calendar",
        help="holiday calendar: BR, BR-SP, NYSE, B3, ECB, ... (default WORKER_CALENDAR; "
        "'none' for none)",
    )
    parser.add_argument(
        "--on-holiday",
        choices=[policy.value for policy in OnHoliday],
        default=OnHoliday.SKIP.value,
        help="what a fire time on a non-business day does (default skip)",
    )
    parser.add_argument("--after", help="ISO 8601 instant to count from (default now)")
    parser.add_argument("--count", type=int, default=5, help="how many (default 5)")
    parser.add_argument("--json", action="store_true", help="print JSON")


@dataclass(slots=True)
class _Fire:
    at: datetime
    skipped_before: list[ClosedDay] = field(default_factory=list)
    moved_here: list[ClosedDay] = field(default_factory=list)


def show(args: argparse.Namespace) -> int:
    """Print the fire times; 2 for a bad argument, 78 for a bad WORKER_TIMEZONE, WORKER_CALENDAR
    or closed dates.

    A light command: the zone and the calendar's name are read alone (`configs/quick.py`); the
    whole settings load (for the closed dates) only when a calendar is used, which imports the
    holiday data anyway."""
    from financial.configs.quick import raw_setting, worker_timezone

    try:
        zone_name = args.tz or worker_timezone()
    except ValueError as exc:
        return _fail(f"configuration error: {exc}", EX_CONFIG)
    try:
        schedule = parse_schedule(args.expression, zone_name)
    except ScheduleError as exc:
        return _fail(f"schedule {args.expression!r}: {exc}", EX_USAGE)
    if args.count < 1:
        return _fail(f"--count {args.count}: expected a positive number", EX_USAGE)
    try:
        after = _parse_instant(args.after, schedule.zone) if args.after else datetime.now(UTC)
    except ValueError as exc:
        return _fail(f"--after {args.after!r}: {exc}", EX_USAGE)
    # The worker's default calendar applies as it does to a job: to cron schedules only.
    name, source = args.calendar, "--calendar"
    if name is None and isinstance(schedule, CronSchedule):
        name, source = (raw_setting("WORKER_CALENDAR") or "").strip() or None, "WORKER_CALENDAR"
    if name is not None and name.strip().lower() == NO_CALENDAR:
        name = None
    try:
        calendar = None if name is None else load_calendar(name, _closed_dates())
        schedule = with_calendar(schedule, calendar, OnHoliday(args.on_holiday))
        times = schedule.next_n(after, args.count)
    except _SettingsProblem as exc:
        return _fail(f"configuration error: {exc}", EX_CONFIG)
    except ScheduleError as exc:
        code = EX_CONFIG if source == "WORKER_CALENDAR" and name is not None else EX_USAGE
        where = f"{source}={name!r}: " if name is not None else ""
        return _fail(f"{where}{exc}", code)
    fires = _explain(schedule, after, times)
    if args.json:
        print(json.dumps(_as_json(schedule, after, fires), indent=2))
    else:
        print(_text(schedule, fires))
    return EX_OK


class _SettingsProblem(Exception):
    """The settings the closed dates come from did not load (exit 78)."""


def _closed_dates() -> tuple[tuple[date, str], ...]:
    from financial.configs import SettingsError, load_settings

    try:
        return load_settings().closed_dates()
    except SettingsError as exc:
        raise _SettingsProblem(str(exc)) from None


def _fail(message: str, code: int) -> int:
    print(f"financial: {message}", file=sys.stderr)
    return code


def _explain(schedule: Schedule, after: datetime, times: list[datetime]) -> list[_Fire]:
    """The fire times, each with the closed days skipped since the one before it and the closed
    days whose fire time was moved onto its date."""
    zone = schedule.zone
    fires = [_Fire(t) for t in times]
    first = after.astimezone(zone).date()
    last = times[-1].astimezone(zone).date()
    by_date: dict[date, _Fire] = {}
    for fire in fires:
        by_date.setdefault(fire.at.astimezone(zone).date(), fire)
    for closed in closed_days(schedule, first - _SCAN_MARGIN, last + _SCAN_MARGIN):
        if closed.moved_to is not None:
            target = by_date.get(closed.moved_to)
            if target is not None:
                target.moved_here.append(closed)
        elif first <= closed.day <= last:
            later = (f for f in fires if f.at.astimezone(zone).date() > closed.day)
            following = next(later, fires[-1])
            following.skipped_before.append(closed)
    return fires


def _text(schedule: Schedule, fires: list[_Fire]) -> str:
    zone = schedule.zone
    lines = [f"  Expression: {schedule.expression}", f"        Zone: {zone}"]
    if isinstance(schedule, CronSchedule) and schedule.calendar is not None:
        lines.append(f"    Calendar: {schedule.calendar.name} (on holiday: {schedule.on_holiday})")
    for n, fire in enumerate(fires, 1):
        for closed in fire.skipped_before:
            lines.append(f"     Skipped: {closed.day:%a %Y-%m-%d} ({closed.reason})")
        label = "Next elapse" if n == 1 else f"Iteration #{n}"
        local = fire.at.astimezone(zone)
        line = f"{label:>12}: {local:%a %Y-%m-%d %H:%M:%S %z} ({local.tzname()})  {_utc(fire.at)}"
        moved = ", ".join(f"{c.day:%a %Y-%m-%d} ({c.reason})" for c in fire.moved_here)
        lines.append(f"{line}  moved here from {moved}" if moved else line)
    return "\n".join(lines)


def _as_json(schedule: Schedule, after: datetime, fires: list[_Fire]) -> dict[str, Any]:
    zone = schedule.zone
    calendar = schedule.calendar if isinstance(schedule, CronSchedule) else None
    return {
        "expression": schedule.expression,
        "zone": str(zone),
        "calendar": None if calendar is None else calendar.name,
        "on_holiday": schedule.on_holiday if isinstance(schedule, CronSchedule) else "skip",
        "after": after.isoformat(),
        "next": [
            {
                "local": fire.at.astimezone(zone).isoformat(),
                "utc": _utc(fire.at),
                "moved_from": [_closed(c) for c in fire.moved_here],
            }
            for fire in fires
        ],
        "skipped": [_closed(c) for fire in fires for c in fire.skipped_before],
    }


def _closed(day: ClosedDay) -> dict[str, str]:
    return {"date": day.day.isoformat(), "reason": day.reason}


def _parse_instant(text: str, zone: ZoneInfo) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)  # a wall time in the schedule's zone
    return value


def _utc(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
