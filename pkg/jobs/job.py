"""The Job protocol and the two ways to write one: a class, or `@cron_job` on a function."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, Protocol, cast, runtime_checkable

from financial.pkg.jobs.context import JobContext
from financial.pkg.jobs.model import (
    JobDefinitionError,
    JobOptions,
    Overlap,
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
    A plain `def run(self, ctx)` is run in a worker thread, never on the event loop.
    """

    name: str
    schedule: str

    def run(self, ctx: JobContext) -> Awaitable[None] | None: ...


_OPTION_NAMES = tuple(JobOptions.__dataclass_fields__)
_DURATION_OPTIONS = ("timeout", "start_deadline", "catchup_window", "jitter")


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


def job_caller(job: Job) -> Callable[[JobContext], Awaitable[None]]:
    """How to run one attempt of `job`, decided once: awaited when async, in a worker thread
    when blocking."""
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
) -> Callable[[JobFunction], FunctionJob]:
    """Make a function a job: `@cron_job("0 2 * * *", timeout=60)`.

    The module that holds it is listed in `WORKER_JOB_MODULES`; the worker imports it and
    registers every `FunctionJob` it finds at module level.
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
        )
        job_name = func.__name__ if name is None else name
        return FunctionJob(func, name=job_name, schedule=schedule, options=options)

    return decorate
