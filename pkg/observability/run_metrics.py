"""The chain hook that measures each attempt of a run into `Metrics`."""

from __future__ import annotations

import asyncio
from datetime import datetime

from financial.pkg.jobs.context import JobContext
from financial.pkg.jobs.model import RunStatus, Trigger
from financial.pkg.observability.metrics import Metrics
from financial.pkg.scheduler.clock import Clock
from financial.pkg.scheduler.execution.chain import Around, Outcome

__all__ = ["with_metrics"]


def with_metrics(metrics: Metrics, clock: Clock) -> Around:
    """Measure one attempt: in flight while it runs, its duration, its status, its lateness.

    Lateness is recorded for the first attempt of a `schedule` run only: a catch-up run is late by
    design (hours, perhaps) and would swamp the histogram, and a manual run has no tick. A
    cancelled attempt counts as `interrupted`, an exception escaping the call (none does past
    recovery) as `failed`. A hook of the run's chain, next to tracing.
    """
    return _Measured(metrics, clock)


class _Measured(Around):
    __slots__ = ("_clock", "_metrics")

    def __init__(self, metrics: Metrics, clock: Clock) -> None:
        self._metrics = metrics
        self._clock = clock

    def enter(self, ctx: JobContext) -> datetime:
        started = self._clock.now()
        if ctx.attempt == 1 and ctx.trigger is Trigger.SCHEDULE:
            self._metrics.record_lateness(
                ctx.job_name, (started - ctx.scheduled_at).total_seconds()
            )
        self._metrics.add_in_flight(ctx.job_name, 1)
        return started

    def exit(
        self,
        ctx: JobContext,
        token: object,
        outcome: Outcome | None,
        error: BaseException | None,
    ) -> None:
        assert isinstance(token, datetime)
        if outcome is not None:
            status = outcome.status
        elif isinstance(error, asyncio.CancelledError):
            status = RunStatus.INTERRUPTED
        else:
            status = RunStatus.FAILED
        job = ctx.job_name
        finished = self._clock.now()
        self._metrics.add_in_flight(job, -1)
        duration_s = outcome.duration_s if outcome is not None else None
        if duration_s is None:  # the job's own time when recovery measured it
            duration_s = (finished - token).total_seconds()
        self._metrics.record_attempt(job, status, duration_s)
        if status is RunStatus.SUCCEEDED:
            self._metrics.observe_last_success(job, finished)
