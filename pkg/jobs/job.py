"""The Job protocol and the two ways to write one: a class, or `@cron_job` on a function."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import pickle
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, NamedTuple, Protocol, cast, runtime_checkable

from financial.pkg.jobs.context import JobContext
from financial.pkg.jobs.model import (
    ExecutorKind,
    JobDefinitionError,
    JobOptions,
    OnHoliday,
    Overlap,
    parse_executor,
    parse_on_holiday,
    parse_overlap,
    seconds,
    validate_name,
)
from financial.pkg.jobs.retry import RetryPolicy

JobFunction = Callable[..., Awaitable[None] | None]


@runtime_checkable
class Job(Protocol):
    """A unit of periodic work.

    A class with `name`, `schedule` and `async def run(self, ctx)`. It may also set any option
    of `JobOptions` as a class attribute (`timeout = 30`, `overlap = Overlap.QUEUE`, ...) and
    define hooks `on_success(ctx)` and `on_error(ctx, exc)`, which run after the last attempt.
    A plain `def run(self, ctx)` is run in a worker thread, never on the event loop; with
    `executor = "process"` it runs in a child process (see `check_executor`).
    """

    name: str
    schedule: str

    def run(self, ctx: JobContext) -> Awaitable[None] | None: ...


_OPTION_NAMES = tuple(JobOptions.__dataclass_fields__)
_DURATION_OPTIONS = ("timeout", "start_deadline", "catchup_window", "jitter", "alert_after")


def options_of(job: Job) -> JobOptions:
    """The options a job declares: `FunctionJob.options`, or class attributes of the same names."""
    if isinstance(job, FunctionJob):
        return job.options
    declared: dict[str, Any] = {}
    for option in _OPTION_NAMES:
        if hasattr(job, option):
            value = getattr(job, option)
            declared[option] = seconds(value) if option in _DURATION_OPTIONS else value
    try:
        return JobOptions(**declared)
    except JobDefinitionError as exc:
        raise JobDefinitionError(f"job {getattr(job, 'name', job)!r}: {exc}") from None


def _is_async_callable(fn: object) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - an object with an async __call__
    )


class JobTarget(NamedTuple):
    """What one attempt of a job calls: `call(ctx)`, a coroutine function when `is_async`."""

    call: Callable[[JobContext], Any]
    is_async: bool


def job_target(job: Job) -> JobTarget:
    """The job's own callable: a `@cron_job` function itself (not its async `run` wrapper, which
    would put a blocking function on a thread of asyncio's default executor), else `job.run`."""
    if isinstance(job, FunctionJob):
        return JobTarget(job.call, job.is_async)
    return JobTarget(job.run, _is_async_callable(job.run))


def resolve_executor(
    job: Job, declared: ExecutorKind | None, blocking: ExecutorKind
) -> ExecutorKind:
    """The executor a job runs on: the one it declares, else the event loop for an async job
    and `blocking` (the worker's `WORKER_DEFAULT_EXECUTOR`) for a blocking one."""
    if declared is not None:
        return declared
    return ExecutorKind.LOOP if job_target(job).is_async else blocking


def check_executor(job: Job, name: str, executor: ExecutorKind) -> None:
    """Refuse, naming the job, an executor the job cannot run on.

    `loop` is for async jobs and `thread` for blocking ones (an async job asking for a thread
    is refused rather than silently run on the loop: it would block nothing, and its author
    expected something else). `process` takes either, provided the job can be sent to a child
    process: a module-level `@cron_job` function, or a class instance that pickles (no lambda,
    closure, lock or connection pool in its attributes), not defined in `__main__`.
    """
    is_async = job_target(job).is_async
    if executor is ExecutorKind.LOOP and not is_async:
        raise JobDefinitionError(
            f"job {name!r}: executor='loop' runs async jobs; a blocking job runs on "
            "'thread' or 'process'"
        )
    if executor is ExecutorKind.THREAD and is_async:
        raise JobDefinitionError(
            f"job {name!r}: executor='thread' runs blocking jobs; an async job runs on the "
            "event loop (leave executor unset) or in a child process (executor='process')"
        )
    if executor is ExecutorKind.PROCESS:
        reason = _unsendable_reason(job)
        if reason is not None:
            raise JobDefinitionError(f"job {name!r}: executor='process': {reason}")


def _unsendable_reason(job: Job) -> str | None:
    target: object = job.func if isinstance(job, FunctionJob) else type(job)
    if getattr(target, "__module__", None) == "__main__":
        return "it is defined in __main__, which a child process cannot import; move it to a module"
    try:
        pickle.dumps(job)
    except Exception as exc:
        return f"it cannot be sent to a child process ({type(exc).__name__}: {exc})"
    return None


def job_caller(job: Job) -> Callable[[JobContext], Awaitable[None]]:
    """How to run one attempt of `job` without an executor (tools and tests): awaited when
    async, in a thread of asyncio's default executor when blocking. The worker runs jobs
    through `financial.pkg.scheduler.executors` instead."""
    run = job.run
    if _is_async_callable(run):
        return cast(Callable[[JobContext], Awaitable[None]], run)

    async def in_thread(ctx: JobContext) -> None:
        result = await asyncio.to_thread(run, ctx)
        if inspect.isawaitable(result):
            await result

    return in_thread


async def call_hook(job: Job, hook: str, *args: Any) -> None:
    """Call an optional hook (`on_success`, `on_error`), sync or async."""
    fn = getattr(job, hook, None)
    if fn is None:
        return
    result = fn(*args)
    if inspect.isawaitable(result):
        await result


class FunctionJob:
    """A job made by `@cron_job` from a function taking `ctx` (or nothing), async or blocking."""

    def __init__(self, func: JobFunction, *, name: str, schedule: str, options: JobOptions):
        self.func = func
        self.name = validate_name(name)
        if not isinstance(schedule, str) or not schedule.strip():
            raise JobDefinitionError(
                f"job {name!r}: schedule {schedule!r}: expected a cron expression"
            )
        self.schedule = schedule
        self.options = options
        self._takes_ctx = bool(inspect.signature(func).parameters)
        self._is_async = _is_async_callable(func)
        self.__doc__ = func.__doc__
        self.__wrapped__ = func

    @property
    def is_async(self) -> bool:
        """Whether the function is a coroutine function."""
        return self._is_async

    def call(self, ctx: JobContext) -> Any:
        """Call the function as it is (a coroutine comes back for an async one)."""
        return self.func(ctx) if self._takes_ctx else self.func()

    def __reduce__(self) -> tuple[Callable[[str, str], FunctionJob], tuple[str, str]]:
        # Sent to a child process by name: the module attribute holding this job (the
        # decorator replaced the function there, so pickling the function would fail).
        module = sys.modules.get(self.func.__module__)
        attribute = (
            next((key for key, value in vars(module).items() if value is self), None)
            if module is not None
            else None
        )
        if module is None or attribute is None:
            raise pickle.PicklingError(
                f"{self.func.__qualname__!r} is not a @cron_job function at module level "
                "(a lambda, a nested function or a closure cannot be sent)"
            )
        return _load_function_job, (module.__name__, attribute)

    async def run(self, ctx: JobContext) -> None:
        args = (ctx,) if self._takes_ctx else ()
        if self._is_async:
            await self.func(*args)  # type: ignore[misc]
            return
        result = await asyncio.to_thread(self.func, *args)
        if inspect.isawaitable(result):
            await result

    def __repr__(self) -> str:
        return f"FunctionJob(name={self.name!r}, schedule={self.schedule!r})"


def cron_job(
    schedule: str,
    *,
    name: str | None = None,
    timeout: float | timedelta | None = None,
    overlap: Overlap | str = Overlap.SKIP,
    retry: RetryPolicy | None = None,
    timezone: str | None = None,
    start_deadline: float | timedelta | None = None,
    catchup_window: float | timedelta = timedelta(0),
    jitter: float | timedelta = timedelta(0),
    recover: bool = False,
    enabled: bool = True,
    executor: ExecutorKind | str | None = None,
    calendar: str | None = None,
    on_holiday: OnHoliday | str = OnHoliday.SKIP,
    alert_after: float | timedelta | None = None,
) -> Callable[[JobFunction], FunctionJob]:
    """Make a function a job: `@cron_job("0 2 * * *", timeout=60)`.

    `calendar` (`"BR"`, `"BR-SP"`, `"NYSE"`, ...) makes weekends and its holidays non-business
    days, and `on_holiday` says what a fire time on one does: `skip`, `next` or `previous`
    (see `financial.pkg.scheduler.schedules.calendars`). `alert_after` (seconds or a timedelta;
    0 turns off the worker-wide default) makes the job a dead-man alert: see
    `financial.pkg.scheduler.alerts.rules`.

    The module that holds it is listed in `WORKER_JOB_MODULES`; the worker imports it and
    registers every `FunctionJob` it finds at module level. `executor="process"` runs it in a
    child process (see `check_executor`); blocking functions default to the worker's thread
    pool, async ones to the event loop.
    """

    def decorate(func: JobFunction) -> FunctionJob:
        options = JobOptions(
            timeout=seconds(timeout),
            overlap=parse_overlap(overlap),
            retry=retry or RetryPolicy(),
            timezone=timezone,
            start_deadline=seconds(start_deadline),
            catchup_window=seconds(catchup_window) or timedelta(0),
            jitter=seconds(jitter) or timedelta(0),
            recover=recover,
            enabled=enabled,
            executor=None if executor is None else parse_executor(executor),
            calendar=calendar,
            on_holiday=parse_on_holiday(on_holiday),
            alert_after=seconds(alert_after),
        )
        job_name = func.__name__ if name is None else name
        return FunctionJob(func, name=job_name, schedule=schedule, options=options)

    return decorate


def _load_function_job(module: str, attribute: str) -> FunctionJob:
    """Unpickle a `FunctionJob` in a child process: import its module, take the attribute."""
    job = getattr(importlib.import_module(module), attribute)
    if not isinstance(job, FunctionJob):
        raise pickle.UnpicklingError(f"{module}.{attribute} is not a @cron_job function")
    return job
