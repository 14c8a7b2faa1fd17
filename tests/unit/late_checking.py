"""Helpers for the late-job checker's unit tests: a replica's checker on shared memory stores,
and runs written straight into the run history."""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from financial.pkg.jobs import cron_job
from financial.pkg.jobs.model import RunStatus, Trigger
from financial.pkg.scheduler.alerts import AlertEvent
from financial.pkg.scheduler.alerts.memory import MemoryAlertStore
from financial.pkg.scheduler.clock import FakeClock
from financial.pkg.scheduler.loop.late import LateChecker
from financial.pkg.scheduler.registry import Defaults, JobRegistry, JobSpec
from financial.pkg.scheduler.store.memory import MemoryRunStore
from tests.unit.scheduling import T0

MINUTE = timedelta(minutes=1)


def tick(minutes: float) -> datetime:
    """The minute-job's tick `minutes` after T0 (its ticks are T0 + 1 min, + 2 min, ...)."""
    return T0 + minutes * MINUTE


def spec_of(
    *,
    alert_after: float | None = 90,
    start_deadline: float = 50,
    schedule: str = "@every 1m",
    defaults: Defaults | None = None,
) -> JobSpec:
    async def body() -> None:
        return None

    job = cron_job(
        schedule, name="minutely", alert_after=alert_after, start_deadline=start_deadline
    )(body)
    return JobRegistry(defaults).add(job)


@dataclass
class Cluster:
    """Shared memory stores on one fake clock, as replicas share PostgreSQL."""

    clock: FakeClock
    runs: MemoryRunStore
    alerts: MemoryAlertStore

    @classmethod
    def new(cls) -> Cluster:
        clock = FakeClock(T0)
        runs = MemoryRunStore(clock, shared=True)
        return cls(clock, runs, MemoryAlertStore(runs, clock))

    def checker(self, spec: JobSpec, worker_id: str = "w1") -> LateChecker:
        return LateChecker(
            [spec],
            alerts=self.alerts,
            runs=self.runs,
            clock=self.clock,
            worker_id=worker_id,
            interval=timedelta(seconds=5),
        )

    async def at(self, instant: datetime) -> None:
        await self.clock.set(instant)

    async def ran(
        self, at: datetime, status: RunStatus, *, job: str = "minutely", attempt: int = 1
    ) -> None:
        """A run of tick `at` that started and ended `status`."""
        record = await self.runs.claim(
            job, at, attempt=attempt, trigger=Trigger.SCHEDULE, worker_id="w1"
        )
        assert record is not None
        record = await self.runs.start(record.run_id, fence=record.fence)
        await self.runs.finish(record.run_id, status, fence=record.fence)

    def events(self, routing_key: str | None = None) -> list[AlertEvent]:
        return [e for e in self.alerts.events if routing_key in (None, e.routing_key)]


def named(logs: list[MutableMapping[str, Any]], event: str) -> list[MutableMapping[str, Any]]:
    """The captured log lines of one event."""
    return [line for line in logs if line["event"] == event]
