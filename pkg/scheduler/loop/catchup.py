"""Catch-up at start: the latest tick missed while no replica ran, and the older ones.

For a job with a `catchup_window` (DESIGN section 6): when its most recent tick before now has no
run in the store (no replica ran it) and lies inside the window, that tick runs once now with
trigger `catchup`; the older ticks inside the window that have no run are recorded `missed` (at
most `limit` of them, the rest counted in the log). A job with no window (the default) catches
up nothing: its missed ticks are simply gone, as with cron. A job that has no run at all in the
store was never run before (a new job, a new database): it catches up nothing either, so
deploying a job does not fire it at once for a tick that predates it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from financial.pkg.scheduler.registry import JobSpec
from financial.pkg.scheduler.store import RunStore

# Missed ticks past the recorded ones are counted for the log up to this many.
COUNT_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class CatchupPlan:
    """What a job catches up at start: one tick to run, older ticks to record `missed`."""

    run: datetime | None = None
    missed: list[datetime] = field(default_factory=list)
    # Missed ticks beyond `limit`, not written one by one (counted up to a bound).
    uncounted: int = 0


async def plan_catchup(store: RunStore, spec: JobSpec, now: datetime, limit: int) -> CatchupPlan:
    """The catch-up of `spec` at `now` (reads the store; writes nothing)."""
    window = spec.options.catchup_window
    if not window:
        return CatchupPlan()
    since = now - window
    latest = spec.schedule.previous_before(now)
    if latest is None or latest < since:
        return CatchupPlan()
    recorded = await store.recorded_ticks(spec.name, since)
    if latest in recorded:
        return CatchupPlan()
    if not recorded and not await store.history(spec.name, limit=1):
        return CatchupPlan()
    older: list[datetime] = []
    uncounted = 0
    tick = spec.schedule.previous_before(latest)
    while tick is not None and tick >= since:
        if tick not in recorded:
            if len(older) < limit:
                older.append(tick)
            else:
                uncounted += 1
        if uncounted >= COUNT_LIMIT:
            break  # a seconds schedule with a window of days: the count only goes to the log
        tick = spec.schedule.previous_before(tick)
    return CatchupPlan(run=latest, missed=sorted(older), uncounted=uncounted)
