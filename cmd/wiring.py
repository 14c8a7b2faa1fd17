"""The composition root: which jobs this worker runs, and the registry built from settings.

This is the one place that builds clients and hands them to jobs (as the Go worker's
`jobsToRegister` list did). A job added by a team without editing the worker comes in through
`WORKER_JOB_MODULES`.
"""

from __future__ import annotations

from datetime import timedelta

from financial.configs import Settings, job_key
from financial.pkg.jobs.job import Job
from financial.pkg.scheduler.registry import Defaults, JobRegistry, discover_jobs


class ConfigError(Exception):
    """A configuration problem found before anything starts (exit 78)."""


def registry_defaults(settings: Settings) -> Defaults:
    return Defaults(
        timezone=settings.worker_timezone,
        timeout=timedelta(seconds=settings.worker_default_timeout_seconds),
        start_deadline=timedelta(seconds=settings.worker_start_deadline_seconds),
    )


def build_registry(settings: Settings, jobs: list[Job]) -> JobRegistry:
    """Register the worker's own jobs and those of WORKER_JOB_MODULES (ConfigError on a fault)."""
    registry = JobRegistry(registry_defaults(settings), overrides=settings.job_override)
    try:
        registry.add_all([*jobs, *discover_jobs(settings.worker_job_modules)])
    except (ValueError, ImportError) as exc:
        raise ConfigError(str(exc)) from exc
    unknown = sorted(set(settings.jobs) - {job_key(spec.name) for spec in registry})
    if unknown:
        raise ConfigError(
            f"WORKER_JOBS__{unknown[0].upper()}__*: no job named {unknown[0]!r}; "
            f"known jobs: {', '.join(spec.name for spec in registry) or '(none)'}"
        )
    return registry
