"""Wrappers around one attempt of a job, composed in one declared order.

Each wrapper takes a `Step` (an attempt that returns an `Outcome`) and returns one. The order,
outermost first, is `default_chain` below: logging sees the final outcome of the attempt, the
end of the body gives its slot back before anything else is done, recovery turns any exception
into a `failed` outcome, the timeout cancels the body at the run's deadline. Tracing and metrics
slot in as further wrappers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from financial.pkg.jobs.context import JobContext
from financial.pkg.jobs.errors import ExpectedFailure
from financial.pkg.jobs.job import Job, job_caller
from financial.pkg.jobs.model import RunStatus
from financial.pkg.observability.trace_ids import current_trace_id
from financial.pkg.scheduler.clock import Clock

if TYPE_CHECKING:
    from financial.pkg.scheduler.executors import Executor


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one attempt ended; `error` holds the exception of a failed or timed-out attempt,
    `duration_s` the job's own time (set by the recovery wrapper, which sees every ending)."""

    status: RunStatus
    error: BaseException | None = None
    duration_s: float | None = None


SUCCEEDED = Outcome(RunStatus.SUCCEEDED)

Step = Callable[[JobContext], Awaitable[Outcome]]
Wrapper = Callable[[Step], Step]


class RunTimeoutError(TimeoutError):
    """The run went past its deadline and was cancelled."""


def invoke(job: Job, executor: Executor | None = None) -> Step:
    """The innermost step: run the job on `executor`; exceptions propagate to the wrappers."""

    call = job_caller(job) if executor is None else executor.caller(job)

    async def step(ctx: JobContext) -> Outcome:
        await call(ctx)
        return SUCCEEDED

    return step


def with_timeout(clock: Clock) -> Wrapper:
    """Cancel the attempt at `ctx.deadline`: outcome `timed_out`.

    A blocking job in a worker thread cannot be cancelled: its await is abandoned, the run is
    recorded `timed_out`, and the thread finishes on its own.
    """

    def wrap(step: Step) -> Step:
        async def timed(ctx: JobContext) -> Outcome:
            scope = clock.timeout_at(ctx.deadline)
            try:
                async with scope:
                    outcome = await step(ctx)
            except TimeoutError as exc:
                if not scope.expired():
                    raise  # the job's own TimeoutError: a failure, not our timeout
                return Outcome(RunStatus.TIMED_OUT, _timeout_error(ctx, exc))
            if scope.expired() or (
                outcome.status is RunStatus.SUCCEEDED and clock.now() >= ctx.deadline
            ):
                # The body swallowed the cancellation and returned after its deadline, or it
                # held the event loop past its deadline, so the timer could not even fire.
                return Outcome(RunStatus.TIMED_OUT, _timeout_error(ctx, None))
            return outcome

        return timed

    return wrap


def _timeout_error(ctx: JobContext, cause: BaseException | None) -> RunTimeoutError:
    err = RunTimeoutError(f"run of {ctx.job_name!r} passed its deadline {ctx.deadline.isoformat()}")
    err.__cause__ = cause
    return err


def worker_cancelled() -> bool:
    """Whether the current task is being cancelled by the worker (shutdown, a `replace` tick, a
    lost lease, a timeout scope): a `CancelledError` a job raises by itself is not that."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def with_recovery(clock: Clock) -> Wrapper:
    """Anything the job raises becomes a `failed` outcome: every exception, and `SystemExit`,
    `KeyboardInterrupt`, `GeneratorExit` or any other `BaseException` too, so a job can end
    neither the worker nor its own run's record. Sets the outcome's `duration_s`.

    Only the worker's own cancellation propagates (shutdown, `replace` overlap, a lost lease).
    """

    def wrap(step: Step) -> Step:
        async def recovered(ctx: JobContext) -> Outcome:
            started = clock.now()
            try:
                outcome = await step(ctx)
            except asyncio.CancelledError as exc:
                if worker_cancelled():
                    raise
                outcome = Outcome(RunStatus.FAILED, exc)
            except BaseException as exc:  # a job's SystemExit is its failure
                outcome = Outcome(RunStatus.FAILED, exc)
            duration_s = (clock.now() - started).total_seconds()
            return Outcome(outcome.status, outcome.error, duration_s)

        return recovered

    return wrap


def with_logging(clock: Clock) -> Wrapper:
    """`job_started` (DEBUG), then `job_succeeded` (INFO) / `job_failed` (with traceback, but
    for an `ExpectedFailure`) / `job_timed_out` (ERROR).

    A successful run is one INFO line, which carries its start lateness (start minus tick):
    at thousands of runs a second a second line per run would double the worker's CPU and
    delay the runs behind it. `LOG_LEVEL=DEBUG` shows each start as well.
    """

    def wrap(step: Step) -> Step:
        async def logged(ctx: JobContext) -> Outcome:
            lateness_ms = round((clock.now() - ctx.scheduled_at).total_seconds() * 1000.0, 3)
            ctx.log.debug("job_started", trigger=ctx.trigger.value, lateness_ms=lateness_ms)
            outcome = await step(ctx)
            duration_ms = round((outcome.duration_s or 0.0) * 1000.0, 3)
            if outcome.status is RunStatus.SUCCEEDED:
                ctx.log.info(
                    "job_succeeded",
                    trigger=ctx.trigger.value,
                    lateness_ms=lateness_ms,
                    duration_ms=duration_ms,
                )
            elif outcome.status is RunStatus.TIMED_OUT:
                ctx.log.error("job_timed_out", duration_ms=duration_ms, error=str(outcome.error))
            else:
                ctx.log.error(
                    "job_failed",
                    duration_ms=duration_ms,
                    error_type=type(outcome.error).__name__,
                    error=str(outcome.error),
                    exc_info=None if isinstance(outcome.error, ExpectedFailure) else outcome.error,
                )
            return outcome

        return logged

    return wrap


StartHook = Callable[[JobContext, str | None], Awaitable[None]]


def with_run_started(mark_started: StartHook) -> Wrapper:
    """Mark the run `running` (with the trace id of the span around it when tracing is on)
    before the job starts. `mark_started` raises when the run must not go on (lost to another
    worker, or the run store failed): the job is then not called at all."""

    def wrap(step: Step) -> Step:
        async def started(ctx: JobContext) -> Outcome:
            await mark_started(ctx, current_trace_id())
            return await step(ctx)

        return started

    return wrap


BodyDone = Callable[[], Awaitable[None]]


def with_body_done(body_done: BodyDone) -> Wrapper:
    """Once the body has an outcome (recovered, timed), call `body_done` before the outer
    wrappers do their part: the runner gives the slot back and lets the runs still to start go
    first (`starts_first.py`), so a run's log line, span and record never delay another's start.
    A cancellation propagates without it."""

    def wrap(step: Step) -> Step:
        async def done(ctx: JobContext) -> Outcome:
            outcome = await step(ctx)
            await body_done()
            return outcome

        return done

    return wrap


def compose(step: Step, wrappers: Sequence[Wrapper]) -> Step:
    """Wrap `step` so that `wrappers[0]` is the outermost."""
    for wrapper in reversed(wrappers):
        step = wrapper(step)
    return step


def default_chain(
    mark_started: StartHook, body_done: BodyDone, clock: Clock, extra: Sequence[Wrapper] = ()
) -> list[Wrapper]:
    """The declared order, outermost first: extra (tracing, metrics), recording the start,
    logging, the end of the body, recovery, timeout."""
    return [
        *extra,
        with_run_started(mark_started),
        with_logging(clock),
        with_body_done(body_done),
        with_recovery(clock),
        with_timeout(clock),
    ]
