"""Next fire time: microseconds per call, ours and APScheduler's triggers, same instants.

Each schedule is asked for the next fire time after the same 2,000 instants, spread at random
(fixed seed) over 2026 and 2027 with microsecond precision, in UTC (`WORKER_TIMEZONE`'s
default). The figure is the best of five passes, divided by the number of calls. The calendar
rows (`L`, `#`, `B`, and `LB` on the NYSE's holidays) have an APScheduler peer where it has the
term (`day="last"`, `day="3rd fri"`); business days have none.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from benchmarks.common import Result
from financial.pkg.scheduler.schedules.calendars import OnHoliday, load_calendar, with_calendar
from financial.pkg.scheduler.schedules.schedule import Schedule, parse_schedule

# Ours as written in the jobs; APScheduler's equivalent trigger for each. APScheduler 3 counts
# weekdays from Monday = 0, so `0 8 * * 1` is spelt with a name rather than from_crontab.
SCHEDULES: dict[str, str] = {
    "database_cleanup": "0 2 * * *",
    "report_generator": "0 8 * * 1",
    "outbox_relay": "@every 5s",
    "leap day": "0 0 29 2 *",
    "last day (L)": "0 18 L * *",
    "third Friday (#)": "0 9 * * 5#3",
    "fifth business day (B)": "0 9 5B * *",
    "last business day, NYSE": "0 18 LB * *",
}
# Rows run on a holiday calendar, and APScheduler's spelling of the terms it has.
CALENDARS = {"last business day, NYSE": "NYSE"}
PEER_DAYS = {"L": {"day": "last"}, "5#3": {"day": "3rd fri", "day_of_week": "*"}}
CALLS = 2000
PASSES = 5


def _instants() -> list[datetime]:
    rng = random.Random(6)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    span_us = int(timedelta(days=730).total_seconds() * 1e6)
    return [start + timedelta(microseconds=rng.randrange(span_us)) for _ in range(CALLS)]


def _ours(label: str, expression: str) -> Schedule:
    schedule = parse_schedule(expression, "UTC")
    calendar = CALENDARS.get(label)
    if calendar is None:
        return schedule
    return with_calendar(schedule, load_calendar(calendar), OnHoliday.SKIP)


def _peer_trigger(expression: str) -> Any:
    from apscheduler.triggers.cron import (  # type: ignore[import-untyped, import-not-found, unused-ignore]
        CronTrigger,
    )
    from apscheduler.triggers.interval import (  # type: ignore[import-untyped, import-not-found, unused-ignore]
        IntervalTrigger,
    )

    if expression == "@every 5s":
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        return IntervalTrigger(seconds=5, start_date=epoch, timezone=UTC)
    minute, hour, day, month, dow = expression.split()
    days = PEER_DAYS.get(day if day != "*" else dow)
    if days is None and ("B" in day or "#" in dow or "L" in day + dow):
        return None  # a term APScheduler does not have
    fields = days or {"day": day, "day_of_week": {"1": "mon", "*": "*"}[dow]}
    return CronTrigger(minute=minute, hour=hour, month=month, timezone=UTC, **fields)


def _per_call_us(fn: Callable[[datetime], object], instants: list[datetime]) -> float:
    best = float("inf")
    for _ in range(PASSES):
        began = time.perf_counter()
        for at in instants:
            fn(at)
        best = min(best, time.perf_counter() - began)
    return best / len(instants) * 1e6


async def next_fire_time(peer: bool) -> Result:
    """Microseconds per call for each schedule, ours and (when `peer`) APScheduler's."""
    instants = _instants()
    rows: dict[str, dict[str, float | str]] = {}
    for label, expression in SCHEDULES.items():
        ours = _ours(label, expression)
        row: dict[str, float | str] = {
            "expression": expression,
            "ours_us": _per_call_us(ours.next_after, instants),
        }
        trigger = _peer_trigger(expression) if peer and label not in CALENDARS else None
        if trigger is not None:
            # `now` is inclusive for APScheduler and exclusive for us: the instants have
            # microseconds, so no instant is itself a fire time and the answers agree.
            for at in instants[:50]:
                theirs = trigger.get_next_fire_time(None, at)
                if theirs != ours.next_after(at):
                    raise AssertionError(f"{expression}: {theirs} != {ours.next_after(at)}")
            row["peer_us"] = _per_call_us(partial(trigger.get_next_fire_time, None), instants)
        rows[label] = row
    return {"schedules": rows}
