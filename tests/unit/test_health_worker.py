"""`WorkerHealth`: readiness through the worker's start and drain, jobs with history and pause."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

import pytest
from structlog.testing import capture_logs

from financial.pkg.database.handle import Database
from financial.pkg.health import WorkerHealth, database_ping
from financial.pkg.health import worker as worker_module
from financial.pkg.health.model import (
    AuditRow,
    Check,
    HealthSource,
    JobExtras,
    SettingRow,
)
from financial.pkg.health.probes import liveness, probe_body
from financial.pkg.health.worker import RunHistory, SchedulerView
from financial.pkg.jobs import JobContext, cron_job
from financial.pkg.jobs.model import RunStatus
from financial.pkg.scheduler.clock import FakeClock
from financial.pkg.scheduler.loop.scheduler import Scheduler
from financial.pkg.scheduler.registry import JobRegistry, JobSpec
from financial.pkg.scheduler.store import JobSummary, RunRecord, RunStore
from tests.unit.health_fakes import NOW, run

TICK = datetime(2026, 3, 2, 9, 35, tzinfo=UTC)


@cron_job("*/5 * * * *", name="relay")
async def relay(ctx: JobContext) -> None:
    """A job for the registry."""


@cron_job("CRON_TZ=Europe/Berlin 0 2 * * *", name="cleanup", enabled=False)
async def cleanup(ctx: JobContext) -> None:
    """A job disabled in configuration."""


class FakeScheduler:
    def __init__(self) -> None:
        self.last_heartbeat: datetime | None = None
        self.reads = 0

    def next_fire_times(self) -> Mapping[str, datetime]:
        self.reads += 1
        return {"relay": TICK}


class FakeStore:
    def __init__(self) -> None:
        self.runs = {"relay": [run("relay", RunStatus.SUCCEEDED, 5)]}
        self.paused_jobs: dict[str, str | None] = {}
        self.error: Exception | None = None
        self.hang = False
        self.limits: list[int] = []
        self.batches: list[list[str]] = []
        self.last_success: dict[str, datetime] = {}

    async def history(
        self, job: str | None = None, *, status: RunStatus | None = None, limit: int = 50
    ) -> list[RunRecord]:
        if self.hang:
            await asyncio.Event().wait()
        if self.error is not None:
            raise self.error
        self.limits.append(limit)
        return self.runs.get(job or "", [])

    async def recent_runs(self, jobs: Sequence[str], *, limit: int) -> dict[str, list[RunRecord]]:
        self.batches.append(list(jobs))
        return {job: await self.history(job, limit=limit) for job in jobs}

    async def summaries(self, jobs: Sequence[str]) -> dict[str, JobSummary]:
        if self.error is not None:
            raise self.error
        return {
            job: JobSummary(
                job,
                last_success_at=self.last_success.get(job),
                paused=job in self.paused_jobs,
                paused_reason=self.paused_jobs.get(job),
            )
            for job in jobs
        }


def specs() -> list[JobSpec]:
    registry = JobRegistry()
    registry.add_all([relay, cleanup])
    return list(registry)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


def names(checks: object) -> dict[str, bool]:
    assert isinstance(checks, list)
    return {check.name: check.ok for check in checks}


async def test_readiness_follows_the_worker_from_start_to_drain(clock: FakeClock) -> None:
    reachable = asyncio.Event()

    async def ping() -> None:
        if not reachable.is_set():
            raise ConnectionRefusedError("[Errno 111] postgresql://app:hunter2@db refused")

    health = WorkerHealth(specs(), clock=clock, database_ping=ping)
    checks = await health.readiness()
    assert names(checks) == {
        "database": False,
        "migrations": False,
        "scheduler": False,
        "draining": True,
    }
    assert "hunter2" not in checks[0].detail and "ConnectionRefusedError" in checks[0].detail

    reachable.set()
    health.mark_migrated()
    assert names(await health.readiness())["scheduler"] is False
    health.attach(FakeScheduler(), FakeStore())
    ok, _ = probe_body(await health.readiness())
    assert ok

    health.mark_draining()
    checks = await health.readiness()
    assert names(checks)["draining"] is False
    assert health.draining()


async def test_database_outage_after_start_fails_readiness_only(clock: FakeClock) -> None:
    down = False

    async def ping() -> None:
        if down:
            raise OSError("connection lost")

    scheduler = FakeScheduler()
    health = WorkerHealth(specs(), clock=clock, database_ping=ping)
    health.mark_migrated()
    health.attach(scheduler, FakeStore())
    scheduler.last_heartbeat = clock.now()
    down = True
    assert names(await health.readiness())["database"] is False
    live = liveness(
        last_heartbeat=health.last_heartbeat(),
        now=health.now(),
        stall_after=timedelta(seconds=15),
        draining=health.draining(),
    )
    assert live.ok


async def test_heartbeat_comes_from_the_attached_scheduler(clock: FakeClock) -> None:
    health = WorkerHealth(specs(), clock=clock)
    assert health.last_heartbeat() is None
    scheduler = FakeScheduler()
    scheduler.last_heartbeat = NOW - timedelta(seconds=3)
    health.attach(scheduler, FakeStore())
    assert health.last_heartbeat() == NOW - timedelta(seconds=3)
    assert health.now() == NOW


async def test_jobs_list_every_registered_job_with_history_and_pause(clock: FakeClock) -> None:
    store = FakeStore()
    store.paused_jobs = {"relay": "broker maintenance"}
    health = WorkerHealth(specs(), clock=clock, recent_runs=12)
    assert [job.recent_runs for job in await health.jobs()] == [(), ()]  # before attach
    health.attach(FakeScheduler(), store)
    relay_status, cleanup_status = await health.jobs()  # jobs that run come first

    assert cleanup_status.name == "cleanup"
    assert cleanup_status.schedule == "CRON_TZ=Europe/Berlin 0 2 * * *"
    assert cleanup_status.zone == "Europe/Berlin"
    assert cleanup_status.disabled and not cleanup_status.paused
    assert cleanup_status.next_fire is None

    assert relay_status.paused and relay_status.paused_reason == "broker maintenance"
    assert not relay_status.disabled
    assert relay_status.next_fire == TICK
    assert [r.status for r in relay_status.recent_runs] == [RunStatus.SUCCEEDED]
    assert relay_status.runs_error is None
    assert set(store.limits) == {12}
    assert store.batches == [["relay", "cleanup"]]  # one batched read for every job


async def test_the_schedulers_ticks_are_read_once_per_request_not_per_job(
    clock: FakeClock,
) -> None:
    scheduler = FakeScheduler()
    health = WorkerHealth(specs(), clock=clock)
    health.attach(scheduler, FakeStore())
    await health.jobs()
    assert scheduler.reads == 1


async def test_one_job_with_its_longer_history_or_none(clock: FakeClock) -> None:
    store = FakeStore()
    health = WorkerHealth(specs(), clock=clock, recent_runs=12)
    health.attach(FakeScheduler(), store)
    relay_status = await health.job("relay")
    assert relay_status is not None and relay_status.name == "relay"
    assert relay_status.next_fire == TICK
    assert [r.status for r in relay_status.recent_runs] == [RunStatus.SUCCEEDED]
    assert store.batches == [["relay"]] and store.limits == [worker_module.JOB_PAGE_RUNS]
    assert await health.job("nobody") is None
    assert store.batches == [["relay"]]  # an unknown name asks the store nothing


async def test_jobs_still_list_when_the_store_fails_or_hangs(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FakeStore()
    store.error = ConnectionError("postgresql://app:hunter2@db/x: connection refused")
    health = WorkerHealth(specs(), clock=clock)
    health.attach(FakeScheduler(), store)
    jobs = await health.jobs()
    assert [job.name for job in jobs] == ["relay", "cleanup"]
    error = jobs[0].runs_error
    assert error is not None and "ConnectionError" in error and "hunter2" not in error

    monkeypatch.setattr(worker_module, "HISTORY_TIMEOUT_S", 0.01)
    store.error, store.hang = None, True
    jobs = await health.jobs()
    assert jobs[0].runs_error == "the run store did not answer within 0.01 s"


async def test_database_ping_before_the_pool_opens() -> None:
    with pytest.raises(ConnectionError, match="not connected yet"):
        await database_ping(Database())()


def test_liveness_limits() -> None:
    beat = NOW - timedelta(seconds=15)
    at_limit = liveness(
        last_heartbeat=beat, now=NOW, stall_after=timedelta(seconds=15), draining=False
    )
    assert at_limit.ok
    stalled = liveness(
        last_heartbeat=beat - timedelta(milliseconds=1),
        now=NOW,
        stall_after=timedelta(seconds=15),
        draining=False,
    )
    assert not stalled.ok
    future = liveness(
        last_heartbeat=NOW + timedelta(seconds=2),
        now=NOW,
        stall_after=timedelta(seconds=15),
        draining=False,
    )
    assert future.ok and future.detail == "heartbeat 0.0 s ago"


def test_probe_body_without_a_reason() -> None:
    assert probe_body([Check("x", False)]) == (False, "not ok\n[-]x failed: no reason given\n")


def test_worker_health_is_a_health_source(clock: FakeClock) -> None:
    source: HealthSource = WorkerHealth(specs(), clock=clock)
    assert source.draining() is False


# mypy checks that the worker's real scheduler and run store fit what WorkerHealth reads.
def _scheduler_fits(scheduler: Scheduler) -> SchedulerView:
    return scheduler


def _store_fits(store: RunStore) -> RunHistory:
    return store


async def test_jobs_carry_their_stuck_threads(clock: FakeClock) -> None:
    health = WorkerHealth(specs(), clock=clock)
    assert {job.name: job.stuck_threads for job in await health.jobs()} == {
        "cleanup": 0,
        "relay": 0,
    }
    health.watch_stuck_threads(lambda: {"relay": 3})
    assert {job.name: job.stuck_threads for job in await health.jobs()} == {
        "cleanup": 0,
        "relay": 3,
    }


async def test_last_success_comes_from_the_whole_history(clock: FakeClock) -> None:
    store = FakeStore()
    store.last_success = {"relay": NOW - timedelta(days=3)}
    health = WorkerHealth(specs(), clock=clock)
    health.attach(FakeScheduler(), store)
    relay_status, cleanup_status = await health.jobs()
    assert relay_status.last_success_at == NOW - timedelta(days=3)
    assert cleanup_status.last_success_at is None


async def test_extras_override_the_registry_and_add_late_settings_and_audit(
    clock: FakeClock,
) -> None:
    calls: list[tuple[list[str], bool]] = []

    async def extras(names: Sequence[str], *, with_audit: bool) -> Mapping[str, JobExtras]:
        calls.append((list(names), with_audit))
        audit = [AuditRow(NOW, "ana@ops", "schedule", "*/5 * * * *", "*/10 * * * *")]
        return {
            "relay": JobExtras(
                schedule="*/10 * * * *",
                late=True,
                late_since=NOW - timedelta(minutes=20),
                settings=[SettingRow("schedule", "*/10 * * * *", "runtime")],
                audit=audit if with_audit else (),
            ),
            # A runtime `--enabled true` turns the job disabled in code on: it gets its tick.
            "cleanup": JobExtras(disabled=False),
        }

    health = WorkerHealth(specs(), clock=clock)
    health.attach(FakeScheduler(), FakeStore())
    health.watch_extras(extras)
    relay_status, cleanup_status = await health.jobs()
    assert relay_status.schedule == "*/10 * * * *"
    assert relay_status.late and relay_status.late_since == NOW - timedelta(minutes=20)
    assert [row.source for row in relay_status.settings] == ["runtime"]
    assert relay_status.audit == ()
    assert not cleanup_status.disabled and cleanup_status.next_fire is None  # no tick known yet
    page = await health.job("relay")
    assert page is not None and [row.by for row in page.audit] == ["ana@ops"]
    assert calls == [(["relay", "cleanup"], False), (["relay"], True)]


async def test_extras_that_fail_leave_the_registrys_values(clock: FakeClock) -> None:
    async def broken(names: Sequence[str], *, with_audit: bool) -> Mapping[str, JobExtras]:
        raise ConnectionError("postgresql://app:hunter2@db/x refused")

    health = WorkerHealth(specs(), clock=clock)
    health.attach(FakeScheduler(), FakeStore())
    health.watch_extras(broken)
    with capture_logs() as logs:
        relay_status, _ = await health.jobs()
    assert relay_status.schedule == "*/5 * * * *" and not relay_status.late
    [event] = [e for e in logs if e["event"] == "status_extras_unavailable"]
    assert "ConnectionError" in event["error"] and "hunter2" not in event["error"]
