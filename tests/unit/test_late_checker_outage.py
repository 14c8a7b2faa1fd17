"""The late-job checker through a store outage (PostgreSQL down): logged once, never raised,
the last state kept, and the alert raised once the store answers again."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta

import pytest
from structlog.testing import capture_logs

from financial.pkg.scheduler.alerts import (
    AlertEvent,
    AlertState,
    AlertStore,
    JobFacts,
    Lateness,
)
from financial.pkg.scheduler.alerts.memory import MemoryAlertStore
from financial.pkg.scheduler.loop import late
from financial.pkg.scheduler.loop.late import LateChecker
from tests.unit.late_checking import Cluster, named, spec_of, tick


class Flaky(AlertStore):
    """A store that fails while `down` is set, as PostgreSQL would through an outage."""

    def __init__(self, inner: MemoryAlertStore) -> None:
        self.inner = inner
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise ConnectionRefusedError("connection refused")

    async def take_lease(self, name: str, holder: str, ttl: timedelta) -> bool:
        self._check()
        return await self.inner.take_lease(name, holder, ttl)

    async def release_lease(self, name: str, holder: str) -> None:
        self._check()
        await self.inner.release_lease(name, holder)

    async def watch(self, jobs: Sequence[str], at: datetime) -> dict[str, AlertState]:
        self._check()
        return await self.inner.watch(jobs, at)

    async def rewatch(self, jobs: Sequence[str], at: datetime) -> None:
        self._check()
        await self.inner.rewatch(jobs, at)

    async def forget(
        self, jobs: Sequence[str], *, event: Callable[[AlertState], AlertEvent]
    ) -> list[AlertState]:
        self._check()
        return await self.inner.forget(jobs, event=event)

    async def facts(self, ticks: Mapping[str, datetime | None]) -> dict[str, JobFacts]:
        self._check()
        return await self.inner.facts(ticks)

    async def mark_late(
        self, job: str, lateness: Lateness, *, at: datetime, event: AlertEvent
    ) -> bool:
        self._check()
        return await self.inner.mark_late(job, lateness, at=at, event=event)

    async def mark_recovered(self, job: str, *, at: datetime, event: AlertEvent) -> bool:
        self._check()
        return await self.inner.mark_recovered(job, at=at, event=event)

    async def late(self) -> dict[str, AlertState]:
        self._check()
        return await self.inner.late()


async def test_a_store_outage_is_logged_once_and_the_checker_goes_on() -> None:
    cluster = Cluster.new()
    flaky = Flaky(cluster.alerts)
    checker = LateChecker(
        [spec_of(alert_after=90)],
        alerts=flaky,
        runs=cluster.runs,
        clock=cluster.clock,
        worker_id="w1",
    )
    await checker.check()
    flaky.down = True
    with capture_logs() as logs:
        for minute in (1, 2, 3):
            await cluster.at(tick(minute))
            await checker.check()
        flaky.down = False
        await checker.check()

    assert [line["event"] for line in logs if "late_check" in str(line["event"])] == [
        "late_check_failed",
        "late_check_resumed",
    ]
    assert "connection refused" in str(named(logs, "late_check_failed")[0]["error"])
    assert checker.late_jobs() == {"minutely": tick(2.5)}
    assert len(named(logs, "job_late")) == 1


class Hanging(Flaky):
    """A store whose calls never answer while `hang` is set (a database that went silent)."""

    def __init__(self, inner: MemoryAlertStore) -> None:
        super().__init__(inner)
        self.hang = False

    async def late(self) -> dict[str, AlertState]:
        if self.hang:
            await asyncio.Event().wait()
        return await super().late()


async def test_closing_does_not_wait_for_a_pass_stuck_on_the_store(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(late, "CLOSE_TIMEOUT_S", 0.05)
    cluster = Cluster.new()
    hanging = Hanging(cluster.alerts)
    hanging.hang = True
    checker = LateChecker(
        [spec_of(alert_after=90)],
        alerts=hanging,
        runs=cluster.runs,
        clock=cluster.clock,
        worker_id="w1",
    )
    task = checker.start()
    await cluster.clock.settle()

    await asyncio.wait_for(checker.close(), 2)

    assert task.cancelled()
    # The lease it held is let go, so another replica takes over at once.
    assert await cluster.alerts.take_lease("late_jobs", "w2", timedelta(seconds=15))
