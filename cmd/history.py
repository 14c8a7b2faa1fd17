"""The run history from the command line: `jobs history`, `jobs pause/resume`, and what
`jobs list` shows of each job's last runs.

These read and write the PostgreSQL run store the replicas share: the configured database, or
else the embedded one under `WORKER_DATA_DIR`. `jobs list` stays quick and never needs a
database: it asks only a database that is configured or already initialised, with a short
timeout, and shows the jobs without their history when it cannot.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from financial.configs import Settings
from financial.pkg.database.dsn import scrub
from financial.pkg.database.embedded import start_embedded_async
from financial.pkg.jobs.model import RunStatus
from financial.pkg.observability.masking import mask_secrets
from financial.pkg.scheduler.alerts.postgres import PostgresAlertStore
from financial.pkg.scheduler.job_settings import RuntimeSettings
from financial.pkg.scheduler.job_settings.postgres import PostgresJobSettings
from financial.pkg.scheduler.store import JobSummary, RunRecord
from financial.pkg.scheduler.store.postgres import PostgresRunStore
from financial.pkg.scheduler.store.requests import RequestCounts
from financial.pkg.scheduler.store.requests_postgres import PostgresRequestStore

# A command line waits this long for PostgreSQL, not the worker's long retry budget.
CLI_RETRY_FOR = timedelta(seconds=5)
LIST_TIMEOUT_S = 2.0
ERROR_WIDTH = 60


async def _open_store(settings: Settings, stack: AsyncExitStack) -> PostgresRunStore:
    # Imported here: runtime brings the health server (aiohttp), which `jobs list` never needs.
    from financial.cmd.runtime import open_command_pool

    return PostgresRunStore(await open_command_pool(settings, stack), retry_for=CLI_RETRY_FOR)


async def pause(settings: Settings, job: str, reason: str | None) -> None:
    """Pause `job` on every replica."""
    async with AsyncExitStack() as stack:
        await (await _open_store(settings, stack)).pause(job, reason)


async def resume(settings: Settings, job: str) -> bool:
    """Resume `job`; False when it was not paused."""
    async with AsyncExitStack() as stack:
        return await (await _open_store(settings, stack)).resume(job)


async def history(
    settings: Settings, job: str | None, status: RunStatus | None, limit: int
) -> list[RunRecord]:
    """Runs, newest tick first."""
    async with AsyncExitStack() as stack:
        return await (await _open_store(settings, stack)).history(job, status=status, limit=limit)


@dataclass(frozen=True, slots=True)
class Listing:
    """What `jobs list` reads from the database: each job's last runs and pause, and the
    runtime settings every replica applies (None for both when it could not read them)."""

    summaries: dict[str, JobSummary] | None = None
    runtime: dict[str, RuntimeSettings] | None = None
    note: str | None = None
    # Each late job's `late_since`, and each job's open run requests (None: not read).
    late: dict[str, datetime] | None = None
    requests: dict[str, RequestCounts] | None = None


async def listing(settings: Settings, jobs: Sequence[str]) -> Listing:
    """Each job's last run, last success, pause and runtime settings; empty without a database."""
    dsn = settings.database_dsn()
    async with AsyncExitStack() as stack:
        if dsn is None:
            data_dir = settings.worker_data_dir / "postgres"
            if not (data_dir / "PG_VERSION").exists():
                return Listing()  # nothing configured and nothing ever ran here
            embedded = await start_embedded_async(data_dir)
            stack.callback(embedded.stop)
            dsn = embedded.dsn
        try:
            pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1, timeout=LIST_TIMEOUT_S)
            stack.push_async_callback(pool.close)
            store = PostgresRunStore(pool, retry_for=timedelta(0))
            summaries = await store.summaries(jobs)
        except Exception as exc:
            reason = scrub(f"{type(exc).__name__}: {exc}", dsn)
            return Listing(note=f"run history unavailable ({reason})")
        try:
            runtime = await PostgresJobSettings(pool).all()
        except asyncpg.UndefinedTableError:
            runtime = {}  # a database not migrated to 0005 yet: nothing set at runtime
        except Exception as exc:
            reason = scrub(f"{type(exc).__name__}: {exc}", dsn)
            return Listing(summaries, note=f"runtime settings unavailable ({reason})")
        try:
            late = await _late(pool)
            requests = await PostgresRequestStore(pool, retry_for=timedelta(0)).counts(jobs)
        except asyncpg.UndefinedTableError:
            late, requests = {}, {}  # a database not migrated to 0006/0007 yet: none of either
        except Exception as exc:
            reason = scrub(f"{type(exc).__name__}: {exc}", dsn)
            note = f"late state and run requests unavailable ({reason})"
            return Listing(summaries, runtime, note=note)
        return Listing(summaries, runtime, late=late, requests=requests)


async def _late(pool: asyncpg.Pool) -> dict[str, datetime]:
    states = await PostgresAlertStore(pool).late()
    return {job: s.late_since for job, s in states.items() if s.late_since is not None}


def history_table(runs: Sequence[RunRecord]) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of `jobs history`."""
    headers = [
        "JOB",
        "SCHEDULED AT",
        "ATTEMPT",
        "TRIGGER",
        "STATUS",
        "WORKER",
        "STARTED AT",
        "DURATION",
        "ERROR",
    ]
    rows = [
        [
            run.job,
            instant(run.scheduled_at),
            str(run.attempt),
            run.trigger.value,
            run.status.value,
            run.worker_id,
            instant(run.started_at),
            duration(run.duration_ms),
            _error(run),
        ]
        for run in runs
    ]
    return headers, rows


def history_json(runs: Sequence[RunRecord]) -> str:
    """`jobs history --json`: one object per run."""
    return json.dumps([run_dict(run) for run in runs], indent=2)


def run_dict(run: RunRecord) -> dict[str, Any]:
    """One run as `jobs history --json` prints it; its error masked once more (a row written
    before errors were masked where they are recorded)."""
    return {
        "run_id": run.run_id,
        "job": run.job,
        "scheduled_at": run.scheduled_at.isoformat(),
        "attempt": run.attempt,
        "trigger": run.trigger.value,
        "status": run.status.value,
        "worker_id": run.worker_id,
        "created_at": run.created_at.isoformat(),
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "duration_ms": round(run.duration_ms, 3) if run.duration_ms is not None else None,
        "error_type": run.error.type if run.error else None,
        "error_message": mask_secrets(run.error.message) if run.error else None,
        "trace_id": run.trace_id,
    }


def instant(value: datetime | None) -> str:
    """An instant in UTC, to the second: `2026-03-02 08:00:00Z`; `-` when there is none."""
    if value is None:
        return "-"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def duration(ms: float | None) -> str:
    if ms is None:
        return "-"
    if ms < 1000:
        return f"{ms:.0f}ms"
    return f"{ms / 1000:.1f}s"


def _error(run: RunRecord) -> str:
    if run.error is None:
        return ""
    # A run refused or ended from outside (skipped, missed, abandoned...) has its status as the
    # error type: the message alone says it.
    text = mask_secrets(run.error.message)
    if run.error.type != run.status.value:
        text = f"{run.error.type}: {text}"
    text = text.replace("\n", " ")
    return text if len(text) <= ERROR_WIDTH else text[: ERROR_WIDTH - 1] + "…"
