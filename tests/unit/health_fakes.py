"""A `HealthSource` whose answers a test sets, and runs to fill a status page."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from financial.pkg.health.model import Check, JobStatus
from financial.pkg.jobs.model import RunStatus, Trigger
from financial.pkg.scheduler.store import RunError, RunRecord

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


@dataclass
class FakeSource:
    """Every answer is a field; `readiness_error` / `jobs_error` make the call raise."""

    at: datetime = NOW
    heartbeat: datetime | None = NOW
    is_draining: bool = False
    checks: list[Check] = field(default_factory=lambda: [Check("database", True)])
    job_list: list[JobStatus] = field(default_factory=list)
    readiness_error: Exception | None = None
    jobs_error: Exception | None = None
    hang: bool = False

    def now(self) -> datetime:
        return self.at

    def last_heartbeat(self) -> datetime | None:
        return self.heartbeat

    def draining(self) -> bool:
        return self.is_draining

    async def readiness(self) -> Sequence[Check]:
        if self.hang:
            await asyncio.Event().wait()
        if self.readiness_error is not None:
            raise self.readiness_error
        return self.checks

    async def jobs(self) -> Sequence[JobStatus]:
        if self.jobs_error is not None:
            raise self.jobs_error
        return self.job_list

    async def job(self, name: str) -> JobStatus | None:
        if self.jobs_error is not None:
            raise self.jobs_error
        return next((job for job in self.job_list if job.name == name), None)


def run(
    job: str,
    status: RunStatus,
    minutes_ago: float,
    *,
    duration_s: float | None = 1.5,
    error: RunError | None = None,
    attempt: int = 1,
    run_id: str | None = None,
) -> RunRecord:
    """A run whose tick was `minutes_ago` before NOW, started a little after it."""
    tick = NOW - timedelta(minutes=minutes_ago)
    started = None if status in (RunStatus.SKIPPED, RunStatus.MISSED) else tick
    finished = None
    if started is not None and duration_s is not None and status is not RunStatus.RUNNING:
        finished = started + timedelta(seconds=duration_s)
    return RunRecord(
        run_id=run_id or f"{job}-{minutes_ago:g}-{attempt}",
        job=job,
        scheduled_at=tick,
        attempt=attempt,
        trigger=Trigger.SCHEDULE,
        status=status,
        worker_id="worker-1",
        created_at=tick,
        started_at=started,
        finished_at=finished,
        error=error,
        duration_ms=None if finished is None or duration_s is None else duration_s * 1000.0,
    )


def sample_jobs() -> list[JobStatus]:
    """Three jobs covering every status, a pause, a failure with an error and hostile text."""
    statuses = [
        RunStatus.SUCCEEDED,
        RunStatus.FAILED,
        RunStatus.TIMED_OUT,
        RunStatus.SKIPPED,
        RunStatus.MISSED,
        RunStatus.INTERRUPTED,
        RunStatus.ABANDONED,
        RunStatus.SUCCEEDED,
        RunStatus.RUNNING,
    ]
    relay_runs = [
        run(
            "outbox_relay",
            status,
            minutes_ago=len(statuses) - i,
            error=RunError("ConnectionError", "broker down")
            if status is RunStatus.FAILED
            else None,
        )
        for i, status in enumerate(statuses)
    ]
    report_runs = [
        run(
            "report_generator",
            RunStatus.FAILED,
            minutes_ago=60 * 24 * 7,
            error=RunError("ValueError", "<script>alert('x')</script> bad & worse"),
        ),
        run("report_generator", RunStatus.SUCCEEDED, minutes_ago=60 * 24 * 14, duration_s=42.0),
    ]
    return [
        JobStatus(
            name="database_cleanup",
            schedule="0 2 * * *",
            zone="UTC",
            next_fire=datetime(2026, 3, 3, 2, 0, tzinfo=UTC),
            paused=True,
            paused_reason="maintenance window",
            recent_runs=[],
        ),
        JobStatus(
            name="outbox_relay",
            schedule="@every 5s",
            zone="UTC",
            next_fire=NOW + timedelta(seconds=5),
            paused=False,
            recent_runs=list(reversed(relay_runs)),  # newest first, as the store returns them
        ),
        JobStatus(
            name="report_generator",
            schedule="CRON_TZ=America/Sao_Paulo 0 8 * * 1",
            zone="America/Sao_Paulo",
            next_fire=datetime(2026, 3, 9, 11, 0, tzinfo=UTC),
            paused=False,
            recent_runs=report_runs,
        ),
    ]
