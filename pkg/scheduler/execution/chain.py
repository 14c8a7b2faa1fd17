"""What is done around one attempt of a job: the call's own wrappers, and the hooks around it.

Two kinds, both composed in one declared order:

- **The call's wrappers** (`Wrapper`: a `Step` in, a `Step` out): the timeout cancels the body at
  the run's deadline, recovery turns anything the job raises into a `failed` outcome. They must
  hold the awaited call, so they nest.
- **Hooks** (`Around`: `enter` before the call, `exit` after it): tracing, metrics, logging.
  They hold nothing across the call, so they are two plain calls each rather than a coroutine
  wrapped in another, and the runner can run their `exit`s later than the call's end: after the
  slot is given back and the runs due with it have started (`starts_first.py`), which is what
  start lateness needs. An `Around` is still a `Wrapper` too (`hook(step)`), for using one alone.

Neither kind knows the runner: the runner calls `Hooks.enter`, starts the job through the
call's wrappers, does its own end-of-body steps, then calls `Hooks.exit`.
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


class Around:
    """A hook around one attempt: `enter` just before the job's call, `exit` once it is over.

    `enter` returns a token, handed back to `exit` (the start instant, the span). `exit` gets the
    attempt's `outcome`, or, when the call raised instead of returning one, `error`: a
    `CancelledError` when the worker cancelled the run (shutdown, `replace`, a lost lease), or an
    exception that escaped the call's wrappers (none does past recovery). An `exit` must not
    await, so that the runner can run it whenever the run's bookkeeping is due.
    """

    __slots__ = ()

    def enter(self, ctx: JobContext) -> object:
        return None

    def exit(
        self,
        ctx: JobContext,
        token: object,
        outcome: Outcome | None,
        error: BaseException | None,
    ) -> None:
        return None

    def __call__(self, step: Step) -> Step:
        """This hook as a `Wrapper` around `step`."""

        async def around(ctx: JobContext) -> Outcome:
            token = self.enter(ctx)
            try:
                outcome = await step(ctx)
            except BaseException as exc:
                self.exit(ctx, token, None, exc)
                raise
            self.exit(ctx, token, outcome, None)
            return outcome

        return around


class Nothing(Around):
    """A hook doing nothing (a no-op tracer's): `Hooks` leaves it out; `hook(step)` is `step`."""

    __slots__ = ()

    def __call__(self, step: Step) -> Step:
        return step


NOTHING = Nothing()


class Hooks:
    """The hooks around every attempt, outermost first: entered in order, exited in reverse.

    An `exit` that raises does not skip the hooks outside it: they exit with its exception, as
    nested wrappers' `finally` blocks would, and it propagates once all have exited.
    """

    __slots__ = ("_hooks",)

    def __init__(self, hooks: Sequence[Around]) -> None:
        self._hooks = tuple(hook for hook in hooks if not isinstance(hook, Nothing))

    def enter(self, ctx: JobContext) -> list[object]:
        tokens: list[object] = []
        try:
            for hook in self._hooks:
                tokens.append(hook.enter(ctx))
        except BaseException as exc:
            self.exit(ctx, tokens, None, exc)
            raise
        return tokens

    def exit(
        self,
        ctx: JobContext,
        tokens: list[object],
        outcome: Outcome | None,
        error: BaseException | None = None,
    ) -> None:
        raised: BaseException | None = None
        for hook, token in zip(reversed(self._hooks[: len(tokens)]), reversed(tokens), strict=True):
            try:
                hook.exit(ctx, token, outcome, error)
            except BaseException as exc:
                if raised is None:
                    raised = exc
                outcome, error = None, exc
        if raised is not None:
            raise raised


class _Logging(Around):
    """See `with_logging`."""

    __slots__ = ("_clock",)

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def enter(self, ctx: JobContext) -> float:
        lateness_ms = round((self._clock.now() - ctx.scheduled_at).total_seconds() * 1000.0, 3)
        ctx.log.debug("job_started", trigger=ctx.trigger.value, lateness_ms=lateness_ms)
        return lateness_ms

    def exit(
        self,
        ctx: JobContext,
        token: object,
        outcome: Outcome | None,
        error: BaseException | None,
    ) -> None:
        if outcome is None:
            return  # cancelled, or the run did not start: the runner logs it
        duration_ms = round((outcome.duration_s or 0.0) * 1000.0, 3)
        if outcome.status is RunStatus.SUCCEEDED:
            ctx.log.info(
                "job_succeeded",
                trigger=ctx.trigger.value,
                lateness_ms=token,
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


def with_logging(clock: Clock) -> Around:
    """`job_started` (DEBUG), then `job_succeeded` (INFO) / `job_failed` (with traceback, but
    for an `ExpectedFailure`) / `job_timed_out` (ERROR).

    A successful run is one INFO line, which carries its start lateness (start minus tick):
    at thousands of runs a second a second line per run would double the worker's CPU and
    delay the runs behind it. `LOG_LEVEL=DEBUG` shows each start as well.
    """
    return _Logging(clock)


def compose(step: Step, wrappers: Sequence[Wrapper]) -> Step:
    """Wrap `step` so that `wrappers[0]` is the outermost."""
    for wrapper in reversed(wrappers):
        step = wrapper(step)
    return step


def call_chain(clock: Clock) -> list[Wrapper]:
    """The wrappers of the job's call itself, outermost first: recovery, then the timeout."""
    return [with_recovery(clock), with_timeout(clock)]
