"""The public API for job authors.

from financial.pkg.jobs import Job, JobContext, cron_job, RetryPolicy, Overlap
"""

from __future__ import annotations

from financial.pkg.jobs.context import JobContext
from financial.pkg.jobs.job import FunctionJob, Job, cron_job, options_of
from financial.pkg.jobs.model import (
    JobDefinitionError,
    JobOptions,
    Overlap,
    RunStatus,
    Trigger,
)
from financial.pkg.jobs.retry import RetryPolicy

__all__ = [
    "FunctionJob",
    "Job",
    "JobContext",
    "JobDefinitionError",
    "JobOptions",
    "Overlap",
    "RetryPolicy",
    "RunStatus",
    "Trigger",
    "cron_job",
    "options_of",
]
