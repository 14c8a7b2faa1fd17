"""When a job is `late`: the dead-man rules, as pure functions of the schedule and the history.

A job with `alert_after` set (and enabled, and not paused) is late when either holds:

1. No success for `alert_after` after a tick was due. The reference R is the tick of the job's
   latest succeeded run (any trigger; a retry that succeeds counts for its tick), or the
   instant the job was watched from, whichever is later: history from before the job was
   watched (before its alert was turned on, while it was paused or disabled) does not count.
   The first tick after R is T; the job is late from T + `alert_after` on, unless a run of T or
   a later tick succeeded.
2. A tick that did not start by its start deadline (`JobSpec.start_by`: `start_deadline` after
   the tick, never past the next tick). Only the latest tick whose deadline has passed (by
   `START_GRACE`, so a run that started at the last moment has been written) is looked at, and
   only when it is later than R and than the instant the job was first watched. "Started" is a
   run of it that began, or a tick skipped by the overlap policy or a pause: a decision, not a
   miss. A tick that nobody claimed (every replica down) or that was recorded `missed` did not
   start.

Late since: T + `alert_after` for the first rule, the start deadline for the second, the earlier
of the two when both hold. The tick named is the one that made the job late; a success of that
tick or a later one is what recovers it (and nothing else: a late job stays late until it
succeeds again).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from financial.pkg.scheduler.alerts import Lateness
from financial.pkg.scheduler.registry import JobSpec
from financial.pkg.scheduler.schedules.schedule import ScheduleError

START_GRACE = timedelta(seconds=1)


@dataclass(slots=True)
class DeadlineTick:
    """The latest tick of a job whose start deadline passed before `now - START_GRACE`, kept
    until the following tick's deadline passes (so a pass costs no schedule arithmetic)."""

    tick: datetime | None
    valid_until: datetime


def deadline_tick(spec: JobSpec, now: datetime) -> DeadlineTick:
    """The latest tick whose start deadline is before `now - START_GRACE`, if any."""
    cutoff = now - START_GRACE
    try:
        latest = spec.schedule.previous_before(cutoff)
        if latest is None:
            tick, following = None, spec.schedule.next_after(cutoff)
        elif _start_by(spec, latest) < cutoff:
            tick, following = latest, spec.schedule.next_after(latest)
        else:  # its deadline is still ahead: the one before it, whose deadline is `latest`
            tick, following = spec.schedule.previous_before(latest), latest
        valid_until = _start_by(spec, following) + START_GRACE
    except (OverflowError, ScheduleError):
        return DeadlineTick(None, now + timedelta(hours=1))
    return DeadlineTick(tick, valid_until)


def assess(
    spec: JobSpec,
    *,
    now: datetime,
    watched_since: datetime,
    last_success_tick: datetime | None,
    checked_tick: datetime | None,
    checked_tick_started: bool | None,
) -> Lateness | None:
    """Whether the job is late now, and why (None: it is not); see the module for the rules."""
    alert_after = spec.alert_after
    if alert_after is None:
        return None
    found: list[Lateness] = []
    reference = max(last_success_tick or watched_since, watched_since)
    try:
        due = spec.schedule.next_after(reference)
    except (OverflowError, ScheduleError):
        due = None
    if due is not None and now >= due + alert_after:
        found.append(
            Lateness(
                since=due + alert_after,
                tick=due,
                reason=f"no success for the tick of {due.isoformat()} or a later one within "
                f"{_seconds(alert_after)} (alert_after)",
            )
        )
    if (
        checked_tick is not None
        and checked_tick_started is False
        and checked_tick > watched_since
        and (last_success_tick is None or checked_tick > last_success_tick)
    ):
        deadline = _start_by(spec, checked_tick)
        found.append(
            Lateness(
                since=deadline,
                tick=checked_tick,
                reason=f"the tick of {checked_tick.isoformat()} did not start by "
                f"{deadline.isoformat()} (start_deadline)",
            )
        )
    return min(found, key=lambda lateness: lateness.since, default=None)


def recovered(late_tick: datetime | None, last_success_tick: datetime | None) -> bool:
    """Whether a job late since `late_tick` has succeeded since: that tick or a later one."""
    return (
        late_tick is not None and last_success_tick is not None and last_success_tick >= late_tick
    )


def _start_by(spec: JobSpec, tick: datetime) -> datetime:
    return spec.start_by(tick, spec.schedule.next_after(tick))


def _seconds(duration: timedelta) -> str:
    return f"{duration.total_seconds():g} s"
