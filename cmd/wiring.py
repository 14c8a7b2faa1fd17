"""The composition root: the clients, the jobs they are handed to, and the registry.

This is the one place that builds clients and hands them to jobs (as the Go worker's
`jobsToRegister` list did). Jobs get their clients before any connection opens, so
`financial jobs list` builds the same jobs without connecting to anything. A job added by a
team without editing the worker comes in through `WORKER_JOB_MODULES`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

# Re-exported: ConfigError lives in a module the command line imports without the clients.
from financial.cmd.errors import ConfigError as ConfigError
from financial.configs import Settings, job_key
from financial.internal.worker.jobs.database_cleanup import DatabaseCleanupJob
from financial.internal.worker.jobs.outbox_relay import OutboxRelayJob, OutboxUndelivered
from financial.internal.worker.jobs.report_generator import ReportGeneratorJob
from financial.pkg import outbox
from financial.pkg.database.handle import Database
from financial.pkg.jobs.job import Job
from financial.pkg.jobs.model import ExecutorKind
from financial.pkg.observability.masking import mask_secrets
from financial.pkg.scheduler.clock import SystemClock
from financial.pkg.scheduler.registry import Defaults, JobRegistry, discover_jobs
from financial.pkg.scheduler.schedules.calendars import NO_CALENDAR, CalendarError, load_calendar

if TYPE_CHECKING:
    # Types only: `jobs names` and `jobs list` build the registry without the broker's client
    # (aio-pika) or the run machinery.
    from financial.pkg.messaging.rabbit import RabbitPublisher
    from financial.pkg.scheduler.execution.aftermath import FailureHandler, FinalFailure

JOB_FAILED_ROUTING_KEY = "job.failed"


@dataclass(slots=True)
class Clients:
    """The shared clients, built once: PostgreSQL always, RabbitMQ when RABBITMQ_URL is set."""

    db: Database
    publisher: RabbitPublisher | None


def build_clients(settings: Settings) -> Clients:
    publisher = None
    if settings.rabbitmq_url is not None:
        from financial.pkg.messaging.rabbit import RabbitPublisher

        publisher = RabbitPublisher(
            settings.rabbitmq_url.get_secret_value(),
            settings.rabbitmq_exchange,
            publish_timeout_s=settings.rabbitmq_publish_timeout_seconds,
        )
    return Clients(db=Database(), publisher=publisher)


def financial_jobs(settings: Settings, clients: Clients) -> list[Job]:
    """The worker's own jobs, each given the clients it needs."""
    try:
        jobs: list[Job] = [
            DatabaseCleanupJob(
                clients.db,
                tables=settings.cleanup_tables,
                retention=timedelta(days=settings.cleanup_retention_days),
                batch_size=settings.cleanup_batch_size,
            ),
            ReportGeneratorJob(clients.db),
        ]
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    if clients.publisher is not None:
        jobs.append(
            OutboxRelayJob(
                clients.db,
                clients.publisher,
                batch_size=settings.outbox_batch_size,
                retention=timedelta(days=settings.outbox_retention_days),
            )
        )
    return jobs


def registry_defaults(settings: Settings) -> Defaults:
    return Defaults(
        timezone=settings.worker_timezone,
        timeout=timedelta(seconds=settings.worker_default_timeout_seconds),
        start_deadline=timedelta(seconds=settings.worker_start_deadline_seconds),
        executor=ExecutorKind(settings.worker_default_executor),
        calendar=settings.worker_calendar,
        closed_dates=settings.closed_dates(),
        alert_after=(
            None
            if not settings.worker_alert_after_seconds
            else timedelta(seconds=settings.worker_alert_after_seconds)
        ),
    )


def build_registry(settings: Settings, jobs: list[Job], now: datetime | None = None) -> JobRegistry:
    """Register `jobs` and those of WORKER_JOB_MODULES; ConfigError on any fault.

    `now` (default: the system clock) is when the jobs with a holiday calendar are asked for
    their next fire time, so a calendar that cannot answer stops the worker before it starts.
    """
    defaults = registry_defaults(settings)
    if defaults.calendar is not None and defaults.calendar.strip().lower() != NO_CALENDAR:
        try:
            load_calendar(defaults.calendar, defaults.closed_dates)
        except CalendarError as exc:
            raise ConfigError(f"WORKER_CALENDAR={defaults.calendar!r}: {exc}") from exc
    registry = JobRegistry(
        defaults,
        overrides=settings.job_override,
        now=now if now is not None else SystemClock().now(),
    )
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


def registry_for(settings: Settings, clients: Clients | None = None) -> JobRegistry:
    """Every job this worker knows, validated against settings (ConfigError when invalid)."""
    clients = clients or build_clients(settings)
    return build_registry(settings, financial_jobs(settings, clients))


def dead_letter(db: Database) -> FailureHandler:
    """Write a `job.failed` event to the outbox for a run that failed after its last attempt.

    Not for a relay pass that could not publish: its events wait in that same outbox, and one
    more event per pass (every 5 s through a broker outage) would only pile up behind them.
    """

    async def record(failure: FinalFailure) -> None:
        if failure.error.type == OutboxUndelivered.__name__:
            return
        async with db.pool.acquire() as conn, conn.transaction():
            await outbox.add(
                conn,
                JOB_FAILED_ROUTING_KEY,
                {
                    "job": failure.job,
                    "run_id": failure.run_id,
                    "scheduled_at": failure.scheduled_at.isoformat(),
                    "attempts": failure.attempts,
                    "status": failure.status.value,
                    "error_type": failure.error.type,
                    # Masked at the source already (RunError.of); the event leaves the
                    # process, so it is masked again whatever built the error.
                    "error_message": mask_secrets(failure.error.message),
                },
                message_id=failure.run_id,
            )

    return record
