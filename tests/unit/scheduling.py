"""Test helpers: a fake-clock scheduler harness and small jobs with observable behaviour."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from financial.pkg.jobs import JobContext, cron_job
from financial.pkg.jobs.job import Job
from financial.pkg.jobs.model import RunStatus, Trigger
from financial.pkg.scheduler.clock import FakeClock
from financial.pkg.scheduler.execution.aftermath import FinalFailure
from financial.pkg.scheduler.execution.chain import Around
from financial.pkg.scheduler.loop.scheduler import Scheduler, SchedulerConfig
from financial.pkg.scheduler.registry import JobRegistry, JobSpec
from financial.pkg.scheduler.store import RunRecord, RunStore
from financial.pkg.scheduler.store.memory import MemoryRunStore

T0 = datetime(2026, 1, 5, 0, 0, 0, tzinfo=UTC)


class Recorder:
    """A job body that records each start (fake time) and can take fake time to run."""

    def __init__(self, clock: FakeClock, duration: timedelta = timedelta(0)) -> None:
        self.clock = clock
        self.duration = duration
        self.starts: list[datetime] = []
        self.contexts: list[JobContext] = []
        self.finished = 0
        self.fail_first = 0
        self.error: type[Exception] = RuntimeError

    async def __call__(self, ctx: JobContext) -> None:
        self.starts.append(self.clock.now())
        self.contexts.append(ctx)
        if len(self.starts) <= self.fail_first:
            raise self.error(f"attempt {ctx.attempt} failed")
        if self.duration:
            await self.clock.sleep(self.duration)
        self.finished += 1


def job_of(schedule: str, body: Callable[[JobContext], Awaitable[None]], **options: Any) -> Job:
    options.setdefault("name", "probe")
    return cron_job(schedule, **options)(body)


class Harness:
    """A scheduler on a fake clock and an in-memory store, with the loop running in a task."""

    def __init__(
        self,
        *jobs: Job,
        clock: FakeClock,
        max_concurrent: int = 10,
        hooks: Sequence[Around] = (),
        store: RunStore | None = None,
        worker_id: str = "test-worker",
        **config: Any,
    ) -> None:
        self.clock = clock
        self.store: RunStore = store if store is not None else MemoryRunStore(clock)
        self.registry = JobRegistry()
        self.registry.add_all(jobs)
        self.failures: list[FinalFailure] = []
        self.unstarted: list[RunRecord] = []
        self.scheduler = Scheduler(
            self.registry,
            store=self.store,
            clock=self.clock,
            config=SchedulerConfig(
                worker_id=worker_id, max_concurrent_jobs=max_concurrent, **config
            ),
            hooks=hooks,
            on_final_failure=self._on_failure,
            on_unstarted=self.unstarted.append,
        )
        self._loop_task: asyncio.Task[None] | None = None

    async def _on_failure(self, failure: FinalFailure) -> None:
        self.failures.append(failure)

    def spec(self, name: str = "probe") -> JobSpec:
        return self.registry.get(name)

    async def __aenter__(self) -> Harness:
        self._loop_task = asyncio.create_task(self.scheduler.run())
        await self.clock.settle()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.scheduler.stop()
        await self.scheduler.drain(timedelta(0))
        if self._loop_task is not None:
            await self._loop_task

    async def advance_to(self, seconds_after_start: float) -> None:
        await self.clock.set(T0 + timedelta(seconds=seconds_after_start))

    async def history(self, job: str | None = None) -> list[RunRecord]:
        return list(reversed(await self.store.history(job, limit=10_000)))

    async def statuses(self, job: str | None = None) -> list[tuple[float, int, RunStatus]]:
        """(seconds after T0, attempt, status) per run, oldest first."""
        return [
            ((r.scheduled_at - T0).total_seconds(), r.attempt, r.status)
            for r in await self.history(job)
        ]


def secs(*values: float) -> list[datetime]:
    return [T0 + timedelta(seconds=v) for v in values]


# The tick of a hand-made job context (`job_context`), for tests of the chain's hooks.
CONTEXT_TICK = datetime(2026, 1, 5, 2, 30, tzinfo=UTC)


def job_context(job: str = "nightly_report", attempt: int = 1) -> JobContext:
    """The context of one attempt, as the runner would make it, for a hook or wrapper alone."""
    return JobContext(
        job_name=job,
        run_id="run-1",
        scheduled_at=CONTEXT_TICK,
        attempt=attempt,
        deadline=CONTEXT_TICK + timedelta(minutes=5),
        trigger=Trigger.SCHEDULE,
        log=structlog.get_logger(),
    )
