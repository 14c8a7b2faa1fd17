"""A job's spec replaced while the scheduler runs (runtime settings, `financial jobs set`).

The loop keeps a heap of (next fire time, sequence, spec). Applying a new spec takes the job's
entry out and, when the job is enabled, puts the new spec back: at the fire time it had when its
timeline (schedule, zone, calendar) is unchanged, so a timeout change never moves or drops a
tick that is about to come; else at the new schedule's first tick after now. A disabled job gets
no entry, so no more ticks; a run already going finishes with the spec it started with, and the
next run takes the new timeout.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from datetime import datetime

import structlog

from financial.pkg.scheduler.registry import JobSpec

log = structlog.get_logger("financial.scheduler")

HeapEntry = tuple[datetime, int, JobSpec]


def same_timeline(old: JobSpec, new: JobSpec) -> bool:
    """Whether both specs fire at the same instants."""
    return (old.schedule.expression, old.zone_name, old.calendar, old.options.on_holiday) == (
        new.schedule.expression,
        new.zone_name,
        new.calendar,
        new.options.on_holiday,
    )


def apply_spec(
    heap: list[HeapEntry],
    specs: dict[str, JobSpec],
    spec: JobSpec,
    now: datetime,
    seq: Iterator[int],
) -> datetime | None:
    """Put `spec` in place of its job's current one in `heap` and `specs` (the enabled jobs by
    name); returns the job's next fire time, None when it is disabled."""
    old = specs.pop(spec.name, None)
    kept_at = next((at for at, _, queued in heap if queued.name == spec.name), None)
    if kept_at is not None:
        heap[:] = [entry for entry in heap if entry[2].name != spec.name]
        heapq.heapify(heap)
    if not spec.options.enabled:
        if old is not None:
            log.info("job_disabled", job=spec.name)
        return None
    specs[spec.name] = spec
    if old is not None and kept_at is not None and same_timeline(old, spec):
        at = kept_at
    else:
        at = spec.schedule.next_after(now)
    heapq.heappush(heap, (at, next(seq), spec))
    log.info(
        "job_rescheduled" if old is not None else "job_enabled",
        job=spec.name,
        schedule=spec.schedule.expression,
        timeout_s=spec.timeout.total_seconds(),
        calendar=spec.calendar,
        next_at=at.isoformat(),
    )
    return at
