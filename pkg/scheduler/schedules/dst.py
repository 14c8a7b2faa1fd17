"""From wall-clock matches to instants, across daylight-saving changes (Debian/Vixie cron rules).

Two kinds of cron schedule, told apart by the hour field (`CronFields.fixed_hour`):

- Fixed-time (`30 2 * * *`, `0 8,20 * * *`, `0 1-3 * * *`): each matching wall time runs once,
  at the first instant the local clock reaches it. A time that a fall-back repeats runs at its first
  occurrence only; a time that a spring-forward skips runs at the first instant after the gap, the
  transition itself. Several skipped times (and the wall time the clock lands on, 03:00 after a
  02:00 -> 03:00 change) collapse into that one tick. The rule is applied the same way to gaps
  longer than a day: Pacific/Apia skipped 2011-12-30 entirely, so every fixed time of that day
  runs once, at 2011-12-31 00:00 local, the first instant after the gap.
- Elapsed-time (hour field `*` or a step: `0 * * * *`, `*/15 * * * *`): the schedule matches the
  real instants whose local wall time matches. Wall times inside a gap do not occur; wall times
  that a fall-back repeats occur twice. An hourly job runs 23 times on a spring-forward day and 25
  times on a fall-back day.

Formally, with `wall(t)` the local time at instant `t`, a fixed-time schedule fires at
`min{t : wall(t) >= w}` for each matching wall time `w` (a non-decreasing map, hence one tick per
wall time and a strictly increasing sequence), and an elapsed-time schedule at every `t` with
`wall(t)` matching. Both are pure functions of the reference instant: every replica computes the
same ticks, and recomputing a tick never yields another one.

Offset changes are found by probing `zoneinfo` (no transition table is public): an interval of at
most `_HORIZON` whose two ends have the same UTC offset is taken to contain no change. Since 1901,
no tzdb zone has two offset changes less than about four days apart (the shortest segment is
Africa/Freetown's 95 h in 1939; Brazilian and Palestinian changes a week apart come next).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from financial.pkg.scheduler.schedules.cron import CronFields

_HORIZON = timedelta(days=1)
_SECOND = timedelta(seconds=1)
_MICROSECOND = timedelta(microseconds=1)
# Offset changes crossed in one search; a match is always within _SEARCH_YEARS (cron.py), and no
# zone changes its offset more than a few times a year.
_MAX_SEGMENTS = 200


def next_fixed_time(fields: CronFields, zone: ZoneInfo, after: datetime) -> datetime | None:
    """The first tick of a fixed-time schedule strictly after `after` (aware), in UTC."""
    local = after.astimezone(zone)
    if local.fold:
        # Second pass through a repeated interval: every wall time up to where the clock was set
        # back has been reached once already, so the search resumes from there.
        first_pass = local.replace(fold=0)
        earlier = _offset_of(first_pass)
        set_back = _transition(zone, after - (earlier - _offset_of(local)), after)
        start = (set_back + earlier).replace(tzinfo=None)
    else:
        start = local.replace(tzinfo=None) + _MICROSECOND
    wall = fields.next_match(start)
    return None if wall is None else _first_reached(zone, wall)


def next_elapsed_time(fields: CronFields, zone: ZoneInfo, after: datetime) -> datetime | None:
    """The first instant strictly after `after` (aware) whose local wall time matches, in UTC."""
    start = after.astimezone(UTC) + _MICROSECOND  # inclusive from here on
    for _ in range(_MAX_SEGMENTS):
        local = start.astimezone(zone)
        offset = _offset_of(local)
        wall = fields.next_match(local.replace(tzinfo=None))
        if wall is None:
            return None
        candidate = (wall - offset).replace(tzinfo=UTC)
        # The candidate holds only if the offset does not change before it; otherwise resume at
        # the change, where the wall clock jumps (a gap) or goes back (a repeat).
        probe = start
        while True:
            step = min(candidate, probe + _HORIZON)
            if _offset_of(step.astimezone(zone)) != offset:
                start = _transition(zone, probe, step)
                break
            if step == candidate:
                return candidate
            probe = step
    return None


def _first_reached(zone: ZoneInfo, wall: datetime) -> datetime:
    """The first instant at which the local clock shows `wall` or later."""
    instant = wall.replace(tzinfo=zone).astimezone(UTC)  # fold=0: the first occurrence
    if instant.astimezone(zone).replace(tzinfo=None) == wall:
        return instant
    # `wall` is in a gap. zoneinfo reads it with the offset before the change for fold=0 and the
    # offset after for fold=1: the two instants bracket the change.
    bracket = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    return _transition(zone, bracket, instant)


def _transition(zone: ZoneInfo, low: datetime, high: datetime) -> datetime:
    """The instant of the one offset change in `(low, high]`, given different offsets at the two
    ends. tzdb changes happen on whole seconds, so the search is over whole seconds."""
    base = low.astimezone(UTC).replace(microsecond=0)
    before = _offset_of(base.astimezone(zone))
    lo, hi = 0, -(-(high - base) // _SECOND)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _offset_of((base + mid * _SECOND).astimezone(zone)) == before:
            lo = mid
        else:
            hi = mid
    return base + hi * _SECOND


def _offset_of(local: datetime) -> timedelta:
    offset = local.utcoffset()
    assert offset is not None, "a datetime in a ZoneInfo zone always has an offset"
    return offset
