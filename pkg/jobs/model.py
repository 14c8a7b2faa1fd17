"""Names shared by jobs, the scheduler and the run store: overlap policies, triggers, statuses."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum

from financial.pkg.jobs.retry import RetryPolicy
from financial.pkg.scheduler.schedules.calendars import OnHoliday

__all__ = ["OnHoliday"]  # defined beside the arithmetic it steers; a job option all the same

NAME_PATTERN = re.compile(r"^[a-z0-9_.-]+$")


class Overlap(StrEnum):
    """What a tick does when the job's previous run is still going."""

    SKIP = "skip"
    """Record the tick `skipped` (the default)."""
    QUEUE = "queue"
    """Wait for the running one; at most one tick waits."""
    ALLOW = "allow"
    """Run in parallel."""
    REPLACE = "replace"
    """Cancel the running one and start this tick."""


class ExecutorKind(StrEnum):
    """Where a job's attempts run."""

    LOOP = "loop"
    """On the event loop: async jobs (their default)."""
    THREAD = "thread"
    """In the worker's own pool of threads: blocking jobs (their default)."""
    PROCESS = "process"
    """In a child process, terminated at the run's timeout and at shutdown."""


class Trigger(StrEnum):
    """Why a run exists."""

    SCHEDULE = "schedule"
    CATCHUP = "catchup"
    MANUAL = "manual"
    RETRY = "retry"
    BACKFILL = "backfill"


class RunStatus(StrEnum):
    """A run's state; every run ends in exactly one of the final ones."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    SKIPPED = "skipped"
    MISSED = "missed"
    INTERRUPTED = "interrupted"
    ABANDONED = "abandoned"

    @property
    def is_final(self) -> bool:
        return self not in (RunStatus.PENDING, RunStatus.RUNNING)


class JobDefinitionError(ValueError):
    """A job that cannot be registered: bad name, bad option, duplicate, invalid schedule."""


@dataclass(frozen=True, slots=True)
class JobOptions:
    """Per-job options; `None` means "use the worker's default from settings"."""

    timeout: timedelta | None = None
    overlap: Overlap = Overlap.SKIP
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timezone: str | None = None
    start_deadline: timedelta | None = None
    catchup_window: timedelta = timedelta(0)
    jitter: timedelta = timedelta(0)
    recover: bool = False
    enabled: bool = True
    # None: the event loop for an async job, `WORKER_DEFAULT_EXECUTOR` for a blocking one.
    executor: ExecutorKind | None = None
    # A holiday calendar (`BR`, `BR-SP`, `NYSE`, ...); None: `WORKER_CALENDAR`; "none": no
    # calendar even when the worker has a default.
    calendar: str | None = None
    on_holiday: OnHoliday = OnHoliday.SKIP
    # Dead-man alert: the job is `late` when a tick has had no success for this long (or did
    # not start by its start deadline). None: `WORKER_ALERT_AFTER_SECONDS`; 0: off for this job.
    alert_after: timedelta | None = None

    def __post_init__(self) -> None:
        for name in ("timeout", "start_deadline", "catchup_window", "jitter", "alert_after"):
            value = getattr(self, name)
            if value is None:
                continue
            if not isinstance(value, timedelta):
                raise JobDefinitionError(f"option {name}={value!r}: expected a timedelta")
            if value < timedelta(0) or (name == "timeout" and value == timedelta(0)):
                raise JobDefinitionError(f"option {name}={value}: expected a positive duration")
        object.__setattr__(self, "overlap", parse_overlap(self.overlap))
        if self.executor is not None:
            object.__setattr__(self, "executor", parse_executor(self.executor))
        if self.calendar is not None and (
            not isinstance(self.calendar, str) or not self.calendar.strip()
        ):
            raise JobDefinitionError(
                f"option calendar={self.calendar!r}: expected a country, subdivision or market "
                "code such as BR, BR-SP or NYSE, or 'none'"
            )
        object.__setattr__(self, "on_holiday", parse_on_holiday(self.on_holiday))


def parse_overlap(value: object) -> Overlap:
    """An `Overlap` from itself or its name, or a JobDefinitionError listing the choices."""
    try:
        return Overlap(str(value))
    except ValueError:
        allowed = ", ".join(o.value for o in Overlap)
        raise JobDefinitionError(f"option overlap={value!r}: expected one of {allowed}") from None


def parse_executor(value: object) -> ExecutorKind:
    """An `ExecutorKind` from itself or its name, or a JobDefinitionError listing the choices."""
    try:
        return ExecutorKind(str(value))
    except ValueError:
        allowed = ", ".join(e.value for e in ExecutorKind)
        raise JobDefinitionError(f"option executor={value!r}: expected one of {allowed}") from None


def parse_on_holiday(value: object) -> OnHoliday:
    """An `OnHoliday` from itself or its name, or a JobDefinitionError listing the choices."""
    try:
        return OnHoliday(str(value).strip().lower())
    except ValueError:
        allowed = ", ".join(o.value for o in OnHoliday)
        raise JobDefinitionError(
            f"option on_holiday={value!r}: expected one of {allowed}"
        ) from None


def seconds(value: float | timedelta | None) -> timedelta | None:
    """Accept a number of seconds or a timedelta, as the decorator and class attributes do."""
    if value is None or isinstance(value, timedelta):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise JobDefinitionError(f"duration {value!r}: expected seconds or a timedelta")
    return timedelta(seconds=value)


def validate_name(name: object) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise JobDefinitionError(
            f"job name {name!r}: expected lowercase letters, digits, '_', '.' or '-'"
        )
    return name
