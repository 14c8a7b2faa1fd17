"""The public API for job authors.

from financial.pkg.jobs import Job, JobContext, cron_job, RetryPolicy, Overlap

`OnHoliday` says what a fire time on a holiday of the job's `calendar` does;
`ExecutorKind` names where a job runs (`executor="process"` on `@cron_job` or the class);
`ExpectedFailure` is a failure a job foresaw (logged without a traceback).
"""

from __future__ import annotations

from financial.pkg.jobs.context import JobContext
from financial.pkg.jobs.errors import ExpectedFailure
from financial.pkg.jobs.job import FunctionJob, Job, cron_job, options_of
from financial.pkg.jobs.model import (
    ExecutorKind,
    JobDefinitionError,
    JobOptions,
    OnHoliday,
    Overlap,
    RunStatus,
    Trigger,
)
from financial.pkg.jobs.retry import RetryPolicy

__all__ = [
    "ExecutorKind",
    "ExpectedFailure",
    "FunctionJob",
    "Job",
    "JobContext",
    "JobDefinitionError",
    "JobOptions",
    "OnHoliday",
    "Overlap",
    "RetryPolicy",
    "RunStatus",
    "Trigger",
    "cron_job",
    "options_of",
]
