"""Registered jobs: each job with its parsed schedule and options resolved against settings.

A job's holiday calendar is its own `calendar`, else the operator's override, else the
worker-wide default (`Defaults.calendar`) for cron schedules: `@every` runs on elapsed time and
takes no default calendar (the outbox relay must not stop for a holiday), while an `@every` job
that names a calendar itself is refused. `calendar="none"` opts a job out of the default.
When the registry knows the time (`now`), a job with a calendar is asked for its next fire time
at registration, so a calendar whose installed data does not cover the years asked, or a
schedule its holidays rule out for good (`0 9 1 1 *` skipping holidays), is refused before the
worker starts rather than when the tick comes.

Runtime settings (`financial jobs set`, kept in PostgreSQL) are one more layer over a job's
code and environment values: runtime > env > code > the worker-wide default. `build` lays a
layer over a job without keeping it (to validate a value before it is stored, with the messages
of registration), `respec` keeps it as the job's spec (`NOT_SET` goes back to env and code),
and `sources` says, per field, which layer the effective value comes from.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from types import ModuleType
from typing import Protocol

from financial.pkg.jobs.job import FunctionJob, Job, check_executor, options_of, resolve_executor
from financial.pkg.jobs.model import ExecutorKind, JobDefinitionError, JobOptions, validate_name
from financial.pkg.scheduler.job_settings import NOT_SET, RuntimeSettings
from financial.pkg.scheduler.job_settings.validation import runtime_alert_after, runtime_timeout
from financial.pkg.scheduler.schedules.calendars import (
    NO_CALENDAR,
    CalendarError,
    OnHoliday,
    load_calendar,
    with_calendar,
)
from financial.pkg.scheduler.schedules.schedule import (
    CronSchedule,
    Schedule,
    ScheduleError,
    parse_schedule,
)


class JobOverride(Protocol):
    """What an operator may change per job from the environment."""

    @property
    def schedule(self) -> str | None: ...
    @property
    def enabled(self) -> bool | None: ...
    @property
    def timeout_seconds(self) -> float | None: ...
    @property
    def calendar(self) -> str | None: ...
    @property
    def on_holiday(self) -> str | None: ...
    @property
    def alert_after_seconds(self) -> float | None: ...


DEFAULT_TIMEOUT = timedelta(seconds=300)
DEFAULT_START_DEADLINE = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class Defaults:
    """Worker-wide defaults for options a job leaves unset."""

    timezone: str = "UTC"
    timeout: timedelta = DEFAULT_TIMEOUT
    start_deadline: timedelta = DEFAULT_START_DEADLINE
    executor: ExecutorKind = ExecutorKind.THREAD  # blocking jobs; async ones run on the loop
    calendar: str | None = None  # for cron jobs that name none
    closed_dates: tuple[tuple[date, str], ...] = ()  # not business days under any calendar
    alert_after: timedelta | None = None  # dead-man alerts: off unless set


@dataclass(frozen=True, slots=True)
class JobSpec:
    """A job as the scheduler runs it: parsed schedule, options with every default filled in."""

    job: Job
    name: str
    schedule: Schedule
    options: JobOptions

    # Registration fills these in; the fallbacks only serve specs built by hand.
    @property
    def timeout(self) -> timedelta:
        return self.options.timeout or DEFAULT_TIMEOUT

    @property
    def start_deadline(self) -> timedelta:
        if self.options.start_deadline is None:
            return DEFAULT_START_DEADLINE
        return self.options.start_deadline

    def start_by(self, tick: datetime, next_tick: datetime | None) -> datetime:
        """The start deadline of `tick`: `start_deadline` after it, never past the next tick."""
        deadline = tick + self.start_deadline
        return min(deadline, next_tick) if next_tick is not None else deadline

    @property
    def alert_after(self) -> timedelta | None:
        """How long a tick may go without a success before the job is `late`; None: off."""
        return self.options.alert_after or None

    @property
    def zone_name(self) -> str:
        return str(self.schedule.zone)

    @property
    def calendar(self) -> str | None:
        """The holiday calendar the schedule runs on (`BR`, `NYSE`, ...), or None."""
        return self.options.calendar


@dataclass(frozen=True, slots=True)
class EffectiveSetting:
    """One field of a job as it runs: its value and where it comes from.

    `source` is `runtime` (`financial jobs set`), `env` (WORKER_JOBS__<NAME>__*), `code` (the
    job's own declaration) or `default` (the worker-wide WORKER_* default). Precedence:
    runtime > env > code > default.
    """

    field: str
    value: str | float | bool | None
    source: str


class UnknownJobError(LookupError):
    """A job name the registry does not hold; the message lists the known names."""

    def __init__(self, name: str, known: Iterable[str]) -> None:
        names = ", ".join(sorted(known)) or "(none registered)"
        super().__init__(f"unknown job {name!r}; known jobs: {names}")
        self.name = name


class JobRegistry:
    """The jobs of one worker. Refuses duplicate names, invalid names and invalid schedules."""

    def __init__(
        self,
        defaults: Defaults | None = None,
        overrides: Callable[[str], JobOverride | None] | None = None,
        now: datetime | None = None,
    ) -> None:
        self._defaults = defaults or Defaults()
        self._overrides = overrides or _no_override
        self._now = now
        self._specs: dict[str, JobSpec] = {}
        self._jobs: dict[str, Job] = {}
        self._runtime: dict[str, RuntimeSettings] = {}

    def add(self, job: Job) -> JobSpec:
        """Register a job; raises JobDefinitionError naming the job and what is wrong."""
        name = validate_name(getattr(job, "name", None))
        if name in self._specs:
            raise JobDefinitionError(f"job {name!r} is registered twice: names must be unique")
        if not callable(getattr(job, "run", None)):
            raise JobDefinitionError(f"job {name!r}: expected a run(ctx) method")
        spec = self._build(job, name, NOT_SET)
        self._jobs[name] = job
        self._specs[name] = spec
        return spec

    def build(self, name: str, runtime: RuntimeSettings) -> JobSpec:
        """The job `name` with `runtime` laid over its code and environment values, without
        keeping it: JobDefinitionError (the same messages as at start) when a value is invalid,
        UnknownJobError when no such job is registered."""
        return self._build(self._job(name), name, runtime)

    def respec(self, name: str, runtime: RuntimeSettings) -> JobSpec:
        """Lay `runtime` over the job's code and environment values (`NOT_SET`: back to them),
        keep the result as the job's spec and return it. Raises as `build` does."""
        spec = self.build(name, runtime)
        self._specs[name] = spec
        self._runtime[name] = runtime
        return spec

    def runtime(self, name: str) -> RuntimeSettings:
        """The runtime settings the job's current spec was built with."""
        self._job(name)
        return self._runtime.get(name, NOT_SET)

    def sources(self, name: str) -> list[EffectiveSetting]:
        """Each runtime-settable field of the job's current spec: its value and where it comes
        from (`runtime`, `env`, `code`, or `default`: the worker-wide WORKER_* default).
        `alert_after` is in seconds, None when the job's alert is off (0 at some layer, or
        no layer set it)."""
        job, spec = self._job(name), self.get(name)
        runtime = self._runtime.get(name, NOT_SET)
        override = self._overrides(name)
        code = options_of(job)

        def source(runtime_value: object, env_value: object, code_value: object) -> str:
            if runtime_value is not None:
                return "runtime"
            if env_value is not None:
                return "env"
            return "code" if code_value is not None else "default"

        env = override if override is not None else _NO_ENV
        return [
            EffectiveSetting(
                "schedule", spec.schedule.expression, source(runtime.schedule, env.schedule, True)
            ),
            EffectiveSetting(
                "timeout",
                spec.timeout.total_seconds(),
                source(runtime.timeout_s, env.timeout_seconds, code.timeout),
            ),
            EffectiveSetting(
                "enabled", spec.options.enabled, source(runtime.enabled, env.enabled, True)
            ),
            EffectiveSetting(
                "calendar",
                spec.calendar,
                source(runtime.calendar, env.calendar, code.calendar),
            ),
            EffectiveSetting(
                "alert_after",
                _seconds_or_off(spec.alert_after),
                source(runtime.alert_after_s, env.alert_after_seconds, code.alert_after),
            ),
        ]

    def _job(self, name: str) -> Job:
        try:
            return self._jobs[name]
        except KeyError:
            raise UnknownJobError(name, self._specs) from None

    def _build(self, job: Job, name: str, runtime: RuntimeSettings) -> JobSpec:
        options = options_of(job)
        expression = getattr(job, "schedule", None)
        override = self._overrides(name)
        if override is not None:
            if override.schedule is not None:
                expression = override.schedule
            if override.enabled is not None:
                options = replace(options, enabled=override.enabled)
            if override.timeout_seconds is not None:
                options = replace(options, timeout=timedelta(seconds=override.timeout_seconds))
            if override.calendar is not None:
                options = replace(options, calendar=override.calendar)
            if override.on_holiday is not None:
                options = replace(options, on_holiday=OnHoliday(override.on_holiday))
            if override.alert_after_seconds is not None:
                alert_after = timedelta(seconds=override.alert_after_seconds)
                options = replace(options, alert_after=alert_after)
        if runtime.schedule is not None:
            expression = runtime.schedule
        if runtime.enabled is not None:
            options = replace(options, enabled=runtime.enabled)
        if runtime.timeout_s is not None:
            options = replace(options, timeout=runtime_timeout(name, runtime.timeout_s))
        if runtime.calendar is not None:
            options = replace(options, calendar=runtime.calendar)
        if runtime.alert_after_s is not None:
            alert_after = runtime_alert_after(name, runtime.alert_after_s)
            options = replace(options, alert_after=alert_after)
        if options.timeout is None:
            options = replace(options, timeout=self._defaults.timeout)
        if options.start_deadline is None:
            options = replace(options, start_deadline=self._defaults.start_deadline)
        options = replace(options, alert_after=_alert_after(options, self._defaults))
        executor = resolve_executor(job, options.executor, self._defaults.executor)
        check_executor(job, name, executor)
        options = replace(options, executor=executor)
        zone = options.timezone or self._defaults.timezone
        if not isinstance(expression, str):
            raise JobDefinitionError(f"job {name!r}: schedule {expression!r}: expected a string")
        try:
            schedule = parse_schedule(expression, zone)
        except ScheduleError as exc:
            raise JobDefinitionError(f"job {name!r}: schedule {expression!r}: {exc}") from None
        schedule, options = self._on_calendar(name, schedule, options)
        return JobSpec(job=job, name=name, schedule=schedule, options=options)

    def _on_calendar(
        self, name: str, schedule: Schedule, options: JobOptions
    ) -> tuple[Schedule, JobOptions]:
        """The schedule bound to the job's holiday calendar, and the options naming it."""
        wanted = options.calendar
        if wanted is None and isinstance(schedule, CronSchedule):
            wanted = self._defaults.calendar
        if wanted is not None and wanted.strip().lower() == NO_CALENDAR:
            wanted = None
        try:
            calendar = (
                None if wanted is None else load_calendar(wanted, self._defaults.closed_dates)
            )
            schedule = with_calendar(schedule, calendar, options.on_holiday)
            if calendar is not None and self._now is not None:
                schedule.next_after(self._now)
        except CalendarError as exc:
            raise JobDefinitionError(f"job {name!r}: {exc}") from None
        except ScheduleError as exc:
            where = f" with calendar {wanted!r}" if wanted else ""
            raise JobDefinitionError(
                f"job {name!r}: schedule {schedule.expression!r}{where}: {exc}"
            ) from None
        return schedule, replace(options, calendar=None if calendar is None else calendar.name)

    def add_all(self, jobs: Iterable[Job]) -> None:
        for job in jobs:
            self.add(job)

    def get(self, name: str) -> JobSpec:
        try:
            return self._specs[name]
        except KeyError:
            raise UnknownJobError(name, self._specs) from None

    def enabled(self) -> list[JobSpec]:
        return [spec for spec in self._specs.values() if spec.options.enabled]

    def __iter__(self) -> Iterator[JobSpec]:
        return iter(sorted(self._specs.values(), key=lambda s: s.name))

    def __len__(self) -> int:
        return len(self._specs)

    def __contains__(self, name: object) -> bool:
        return name in self._specs


def _no_override(name: str) -> None:
    return None


@dataclass(frozen=True, slots=True)
class EnvOverride:
    """A `JobOverride` as plain values: no override at all when every field is None (the
    registry's stand-in for a job the environment leaves alone), or one built by hand in tests.
    """

    schedule: str | None = None
    enabled: bool | None = None
    timeout_seconds: float | None = None
    calendar: str | None = None
    on_holiday: str | None = None
    alert_after_seconds: float | None = None


_NO_ENV = EnvOverride()


def _seconds_or_off(duration: timedelta | None) -> float | None:
    return None if duration is None else duration.total_seconds()


def _alert_after(options: JobOptions, defaults: Defaults) -> timedelta | None:
    """The job's own `alert_after`, else the worker's; 0 (the job's or the worker's) is off."""
    chosen = options.alert_after if options.alert_after is not None else defaults.alert_after
    return chosen if chosen else None


class JobModuleError(ImportError):
    """A module listed in WORKER_JOB_MODULES that cannot be imported."""


def discover_jobs(module_names: Iterable[str]) -> list[Job]:
    """Import each module and return the `@cron_job` functions it declares at module level."""
    found: list[Job] = []
    for module_name in module_names:
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            raise JobModuleError(
                f"WORKER_JOB_MODULES: cannot import {module_name!r}: {type(exc).__name__}: {exc}"
            ) from exc
        found.extend(_module_jobs(module))
    return found


def _module_jobs(module: ModuleType) -> list[Job]:
    return [value for value in vars(module).values() if isinstance(value, FunctionJob)]
