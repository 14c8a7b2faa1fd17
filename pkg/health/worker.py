"""`WorkerHealth`: the worker's `HealthSource`, from its jobs, scheduler, run store and database.

The health server starts before the database is reached, so that `/livez` answers while the
worker waits for PostgreSQL and `/readyz` says why it is not ready. The parts that exist only
later are handed over as they come: `attach()` the scheduler and run store once built,
`mark_migrated()` once the schema is current, `mark_draining()` when shutdown begins.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Protocol

import structlog
from opentelemetry.instrumentation.utils import suppress_instrumentation

from financial.pkg.database.handle import Database
from financial.pkg.health.model import Check, JobExtras, JobExtrasSource, JobStatus
from financial.pkg.jobs.model import RunStatus
from financial.pkg.observability.dependencies import DATABASE, came_back, went_away
from financial.pkg.observability.logging import mask_secrets
from financial.pkg.scheduler.clock import Clock
from financial.pkg.scheduler.registry import JobSpec
from financial.pkg.scheduler.store import JobSummary, RunRecord

__all__ = ["DatabasePing", "RunHistory", "SchedulerView", "WorkerHealth", "database_ping"]

log = structlog.get_logger("financial.health")

DatabasePing = Callable[[], Awaitable[None]]
"""Raises when the database cannot answer a trivial query now."""

PING_TIMEOUT_S = 2.0
RECENT_RUNS = 30
JOB_PAGE_RUNS = 200
"""Runs on a job's own page (its history list and duration chart)."""
HISTORY_TIMEOUT_S = 3.0


class SchedulerView(Protocol):
    """What `WorkerHealth` reads from the scheduler (`Scheduler` has all of it)."""

    @property
    def last_heartbeat(self) -> datetime | None: ...

    def next_fire_times(self) -> Mapping[str, datetime]: ...


class RunHistory(Protocol):
    """What `WorkerHealth` reads from the run store (`RunStore` has all of it)."""

    async def history(
        self, job: str | None = None, *, status: RunStatus | None = None, limit: int = 50
    ) -> list[RunRecord]: ...

    async def recent_runs(
        self, jobs: Sequence[str], *, limit: int
    ) -> dict[str, list[RunRecord]]: ...

    async def summaries(self, jobs: Sequence[str]) -> dict[str, JobSummary]: ...


class WorkerHealth:
    """The worker's health: heartbeat from the scheduler, readiness from database and state.

    Readiness checks, in order: `database` (a `SELECT 1` within 2 s, when a ping is given),
    `migrations` (until `mark_migrated`), `scheduler` (until `attach`), `draining` (after
    `mark_draining`). Jobs come from `jobs` (the registry, so a job disabled in configuration
    shows too), with their next tick from the scheduler, an operator's pause and last success
    from the store's summaries, and their last `recent_runs` runs, read for every job in one
    batched query (`RunStore.recent_runs`): two queries whatever the job count. `job(name)`
    gives one job with its last `JOB_PAGE_RUNS` runs. `watch_extras` adds what other parts
    know (runtime settings and their audit, the dead-man alert's `late`).
    """

    def __init__(
        self,
        jobs: Iterable[JobSpec],
        *,
        clock: Clock,
        database_ping: DatabasePing | None = None,
        recent_runs: int = RECENT_RUNS,
    ) -> None:
        # Jobs that run first, then those turned off in configuration; by name within each.
        self._specs = sorted(jobs, key=lambda spec: (not spec.options.enabled, spec.name))
        self._by_name = {spec.name: spec for spec in self._specs}
        self._clock = clock
        self._ping = database_ping
        self._recent_runs = recent_runs
        self._scheduler: SchedulerView | None = None
        self._store: RunHistory | None = None
        self._migrated = False
        self._draining = False
        self._stuck: Callable[[], Mapping[str, int]] | None = None
        self._extras: JobExtrasSource | None = None

    def watch_extras(self, source: JobExtrasSource) -> None:
        """Read each job's runtime settings, audit and late state from `source` per request."""
        self._extras = source

    def watch_stuck_threads(self, source: Callable[[], Mapping[str, int]]) -> None:
        """Read the blocking-job threads stuck per job (`ThreadExecutor.stuck_by_job`)."""
        self._stuck = source

    def attach(self, scheduler: SchedulerView, store: RunHistory) -> None:
        """Hand over the scheduler and its run store once they are built."""
        self._scheduler = scheduler
        self._store = store

    def mark_migrated(self) -> None:
        """The schema is current (migrations applied, or checked when auto-migrate is off)."""
        self._migrated = True

    def mark_draining(self) -> None:
        """Shutdown began: not ready any more, and a stopped loop is not a stall."""
        self._draining = True

    # -- HealthSource ---------------------------------------------------------------------------

    def now(self) -> datetime:
        return self._clock.now()

    def last_heartbeat(self) -> datetime | None:
        return self._scheduler.last_heartbeat if self._scheduler is not None else None

    def draining(self) -> bool:
        return self._draining

    async def readiness(self) -> Sequence[Check]:
        checks = []
        if self._ping is not None:
            checks.append(await self._database_check(self._ping))
        checks.append(
            Check("migrations", True)
            if self._migrated
            else Check("migrations", False, "not applied yet")
        )
        checks.append(
            Check("scheduler", True)
            if self._scheduler is not None
            else Check("scheduler", False, "not started yet")
        )
        checks.append(
            Check("draining", False, "shutting down: running jobs are finishing")
            if self._draining
            else Check("draining", True)
        )
        return checks

    async def jobs(self) -> Sequence[JobStatus]:
        names = [spec.name for spec in self._specs]
        (histories, summaries, error), extras = await asyncio.gather(
            self._from_store(names, self._recent_runs), self._read_extras(names, audit=False)
        )
        live = self._live_state()
        return [
            self._status(spec, histories, summaries, error, extras.get(spec.name), live)
            for spec in self._specs
        ]

    async def job(self, name: str) -> JobStatus | None:
        spec = self._by_name.get(name)
        if spec is None:
            return None
        (histories, summaries, error), extras = await asyncio.gather(
            self._from_store([name], JOB_PAGE_RUNS), self._read_extras([name], audit=True)
        )
        return self._status(spec, histories, summaries, error, extras.get(name), self._live_state())

    def _live_state(self) -> tuple[Mapping[str, datetime], Mapping[str, int]]:
        """The scheduler's next ticks and the stuck threads, read once per request."""
        next_fire = self._scheduler.next_fire_times() if self._scheduler else {}
        stuck = self._stuck() if self._stuck is not None else {}
        return next_fire, stuck

    def _status(
        self,
        spec: JobSpec,
        histories: Mapping[str, Sequence[RunRecord]],
        summaries: Mapping[str, JobSummary],
        error: str | None,
        extras: JobExtras | None,
        live: tuple[Mapping[str, datetime], Mapping[str, int]],
    ) -> JobStatus:
        next_fire, stuck = live
        summary = summaries.get(spec.name)
        enabled = spec.options.enabled
        status = JobStatus(
            name=spec.name,
            schedule=spec.schedule.expression,
            zone=spec.zone_name,
            next_fire=next_fire.get(spec.name) if enabled else None,
            paused=summary is not None and summary.paused,
            paused_reason=summary.paused_reason if summary is not None else None,
            disabled=not enabled,
            recent_runs=histories.get(spec.name, ()),
            runs_error=error,
            stuck_threads=stuck.get(spec.name, 0),
            calendar=spec.calendar,
            on_holiday=spec.options.on_holiday.value,
            last_success_at=summary.last_success_at if summary is not None else None,
        )
        if extras is None:
            return status
        disabled = status.disabled if extras.disabled is None else extras.disabled
        return dataclasses.replace(
            status,
            schedule=extras.schedule or status.schedule,
            zone=extras.zone or status.zone,
            calendar=extras.calendar or status.calendar,
            disabled=disabled,
            next_fire=None if disabled else next_fire.get(spec.name),
            late=extras.late,
            late_since=extras.late_since,
            settings=extras.settings,
            audit=extras.audit,
            requests=extras.requests,
            requests_open=extras.requests_open,
            requests_error=extras.requests_error,
        )

    async def _from_store(
        self, names: Sequence[str], limit: int
    ) -> tuple[Mapping[str, Sequence[RunRecord]], Mapping[str, JobSummary], str | None]:
        store = self._store
        if store is None:
            return {}, {}, None
        try:
            async with asyncio.timeout(HISTORY_TIMEOUT_S):
                # Two queries for every job: the overview of 500 jobs is not 500 round trips.
                summaries = await store.summaries(names)
                histories = await store.recent_runs(names, limit=limit)
        except TimeoutError:
            return {}, {}, f"the run store did not answer within {HISTORY_TIMEOUT_S:g} s"
        except Exception as exc:
            return {}, {}, mask_secrets(f"{type(exc).__name__}: {exc}")
        return histories, summaries, None

    async def _read_extras(self, names: Sequence[str], *, audit: bool) -> Mapping[str, JobExtras]:
        if self._extras is None:
            return {}
        try:
            async with asyncio.timeout(HISTORY_TIMEOUT_S):
                return await self._extras(names, with_audit=audit)
        except Exception as exc:
            # The page still renders, from the registry's values; the log says why.
            log.warning(
                "status_extras_unavailable", error=mask_secrets(f"{type(exc).__name__}: {exc}")
            )
            return {}

    @staticmethod
    async def _database_check(ping: DatabasePing) -> Check:
        try:
            await ping()
        except Exception as exc:
            return Check("database", False, mask_secrets(f"{type(exc).__name__}: {exc}"))
        return Check("database", True)


def database_ping(db: Database, timeout_s: float = PING_TIMEOUT_S) -> DatabasePing:
    """A ping through the worker's pool: `SELECT 1` within `timeout_s`.

    Before the pool opens it fails with "not connected yet". A pool whose every connection is
    busy with jobs for longer than the timeout also reads as not ready, which is what the
    operator should see: the worker cannot reach its database in reasonable time.
    """

    async def ping() -> None:
        if not db.is_open:
            raise ConnectionError("not connected yet")
        try:
            # A probe every few seconds would otherwise export a trace of its own each time.
            with suppress_instrumentation():
                async with asyncio.timeout(timeout_s), db.pool.acquire() as conn:
                    await conn.fetchval("SELECT 1")
        except TimeoutError:
            error = TimeoutError(f"no answer within {timeout_s:g} s")
            went_away(DATABASE, error)
            raise error from None
        except Exception as exc:
            went_away(DATABASE, exc)
            raise
        came_back(DATABASE)

    return ping
