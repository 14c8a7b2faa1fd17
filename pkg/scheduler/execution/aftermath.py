"""After a run's attempt: the job's own hooks, and the dead-letter event of a run that failed
for good. Neither may end the worker nor hold the run: a hook's exceptions are logged, and the
event has a time limit."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from financial.pkg.jobs.context import JobContext
from financial.pkg.jobs.job import Job, call_hook
from financial.pkg.jobs.model import RunStatus
from financial.pkg.scheduler.clock import Clock
from financial.pkg.scheduler.execution.chain import worker_cancelled
from financial.pkg.scheduler.store import RunError, RunRecord, describe

log = structlog.get_logger("financial.scheduler")

# How long the dead-letter event of a run that failed for good may take to be written (the
# outbox is in the database: a frozen one must not hold the run, and the drain, forever).
FINAL_FAILURE_TIMEOUT = timedelta(seconds=10)


@dataclass(frozen=True, slots=True)
class FinalFailure:
    """A run that failed after its last attempt: what the dead-letter event carries."""

    job: str
    run_id: str
    scheduled_at: datetime
    attempts: int
    status: RunStatus
    error: RunError


FailureHandler = Callable[[FinalFailure], Awaitable[None]]


async def run_hook(job: Job, hook: str, *args: object) -> None:
    """Call the job's `hook` (`on_success`, `on_error`); whatever it raises is logged, a
    `SystemExit` included. Only the worker's own cancellation propagates."""
    try:
        await call_hook(job, hook, *args)
    except asyncio.CancelledError:
        if worker_cancelled():
            raise
        log.exception("job_hook_failed", hook=hook)
    except BaseException:  # a hook's SystemExit must not end the worker
        log.exception("job_hook_failed", hook=hook)


async def report_final_failure(
    clock: Clock,
    handler: FailureHandler | None,
    job: Job,
    record: RunRecord,
    error: BaseException | None,
    ctx: JobContext,
) -> None:
    """The run failed for good: the job's `on_error`, then the dead-letter event."""
    cause = error or RuntimeError(record.status.value)
    await run_hook(job, "on_error", ctx, cause)
    if handler is None:
        return
    failure = FinalFailure(
        job=record.job,
        run_id=record.run_id,
        scheduled_at=record.scheduled_at,
        attempts=record.attempt,
        status=record.status,
        error=RunError.of(cause),
    )
    try:
        async with clock.timeout_at(clock.now() + FINAL_FAILURE_TIMEOUT):
            await handler(failure)
    except Exception as exc:
        log.error("final_failure_not_recorded", job=record.job, error=describe(exc))
