"""Runtime settings on three real `financial worker` processes sharing one PostgreSQL: a
`jobs set --schedule` is applied by every replica within 2 s and its ticks run once each,
`--enabled false` stops the ticks on all of them, `jobs reset` brings back the code's values,
a replica started after a change starts with it, and a database outage is logged once and
survived."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.integration.job_settings_cli import JOB_MODULES, financial
from tests.integration.services import PostgresService
from tests.integration.worker_process import WorkerProcess

pytestmark = pytest.mark.integration

REPLICAS = 3
APPLY_WITHIN_S = 2.0


def start(workers: list[WorkerProcess], dsn: str, cwd: Path, n: int, **env: str) -> WorkerProcess:
    worker = WorkerProcess(
        "worker",
        cwd=cwd,
        env={
            "DATABASE_URL": dsn,
            "WORKER_JOB_MODULES": JOB_MODULES,
            "WORKER_ID": f"replica-{n}",
            "WORKER_SHUTDOWN_TIMEOUT_SECONDS": "5",
            **env,
        },
    )
    workers.append(worker)
    return worker


def all_log_within(
    workers: list[WorkerProcess], seconds: float, name: str, **fields: Any
) -> list[dict[str, Any]]:
    """The event `name` from every worker, all seen within `seconds` from now."""
    deadline = time.monotonic() + seconds
    return [
        worker.wait_event(name, max(deadline - time.monotonic(), 0.01), **fields)
        for worker in workers
    ]


async def probe_runs(dsn: str, after: datetime | None = None) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(
            "SELECT scheduled_at, worker_id, status FROM job_runs "
            "WHERE job = 'probe' AND ($1::timestamptz IS NULL OR scheduled_at > $1) "
            "ORDER BY scheduled_at",
            after,
        )
    finally:
        await conn.close()


async def db_now(dsn: str) -> datetime:
    conn = await asyncpg.connect(dsn)
    try:
        now: datetime = await conn.fetchval("SELECT now()")
        return now
    finally:
        await conn.close()


async def test_set_disable_and_reset_reach_every_replica(
    database_dsn: str, open_tmp_path: Path, spawned: list[WorkerProcess]
) -> None:
    # A re-read far away: what reaches the replicas within 2 s is the notification.
    for n in range(REPLICAS):
        start(spawned, database_dsn, open_tmp_path, n, WORKER_JOB_SETTINGS_REREAD_SECONDS="600")
    for worker in spawned:
        worker.wait_event("worker_started", timeout_s=60)

    changed = await asyncio.to_thread(
        financial, database_dsn, open_tmp_path, "jobs", "set", "probe",
        "--schedule", "* * * * * *", "--reason", "faster", "--by", "ops",
    )  # fmt: skip
    assert changed.returncode == 0, changed.stderr
    events = all_log_within(spawned, APPLY_WITHIN_S, "job_rescheduled", job="probe")
    assert {e["schedule"] for e in events} == {"* * * * * *"}

    # The new schedule runs: every second, each tick once across the three replicas.
    await asyncio.sleep(4)
    runs = await probe_runs(database_dsn)
    ticks = [r["scheduled_at"] for r in runs]
    assert len(ticks) >= 3
    assert len(ticks) == len(set(ticks))

    disabled = await asyncio.to_thread(
        financial, database_dsn, open_tmp_path, "jobs", "set", "probe", "--enabled", "false"
    )
    assert disabled.returncode == 0, disabled.stderr
    all_log_within(spawned, APPLY_WITHIN_S, "job_disabled", job="probe")
    stopped_at = await db_now(database_dsn)
    await asyncio.sleep(3)
    assert await probe_runs(database_dsn, after=stopped_at + timedelta(seconds=1)) == []

    reset = await asyncio.to_thread(
        financial, database_dsn, open_tmp_path, "jobs", "reset", "probe", "--by", "ops"
    )
    assert reset.returncode == 0, reset.stderr
    events = all_log_within(spawned, APPLY_WITHIN_S, "job_enabled", job="probe")
    assert {e["schedule"] for e in events} == {"@every 1h"}

    # A replica started now runs the job as the database says, not as its environment did.
    late = start(spawned, database_dsn, open_tmp_path, REPLICAS)
    late.wait_event("worker_started", timeout_s=60)
    again = await asyncio.to_thread(
        financial, database_dsn, open_tmp_path, "jobs", "set", "probe", "--enabled", "false"
    )
    assert again.returncode == 0
    all_log_within(spawned, APPLY_WITHIN_S, "job_disabled", job="probe")

    audit = await asyncio.to_thread(
        financial, database_dsn, open_tmp_path, "jobs", "audit", "probe"
    )
    lines = audit.stdout.splitlines()
    assert len(lines) == 1 + 4  # the header and four changes
    assert "schedule: unset -> '* * * * * *'" in audit.stdout
    assert "faster" in audit.stdout


async def test_a_replica_converges_by_the_reread_when_it_missed_the_notification(
    database_dsn: str, open_tmp_path: Path, spawned: list[WorkerProcess]
) -> None:
    # The change is written straight into the table, as a lost notification would leave it.
    worker = start(spawned, database_dsn, open_tmp_path, 0, WORKER_JOB_SETTINGS_REREAD_SECONDS="1")
    worker.wait_event("worker_started", timeout_s=60)
    conn = await asyncpg.connect(database_dsn)
    try:
        await conn.execute(
            "INSERT INTO job_settings (job, schedule, updated_by) VALUES ('probe', $1, 'test')",
            "*/2 * * * * *",
        )
    finally:
        await conn.close()
    event = worker.wait_event("job_rescheduled", timeout_s=3, job="probe")
    assert event["schedule"] == "*/2 * * * * *"


async def test_a_replica_started_after_a_change_starts_with_it(
    database_dsn: str, open_tmp_path: Path, spawned: list[WorkerProcess]
) -> None:
    changed = await asyncio.to_thread(
        financial, database_dsn, open_tmp_path, "jobs", "set", "probe", "--enabled", "false"
    )
    assert changed.returncode == 0, changed.stderr
    worker = start(spawned, database_dsn, open_tmp_path, 0)
    started = worker.wait_event("worker_started", timeout_s=60)
    assert "probe" not in started["jobs"]


async def test_a_database_outage_is_logged_once_and_the_watcher_comes_back(
    postgres: PostgresService,
    database_dsn: str,
    open_tmp_path: Path,
    spawned: list[WorkerProcess],
) -> None:
    worker = start(spawned, database_dsn, open_tmp_path, 0, WORKER_JOB_SETTINGS_REREAD_SECONDS="1")
    worker.wait_event("worker_started", timeout_s=60)
    postgres.stop()
    try:
        worker.wait_event("job_settings_unavailable", timeout_s=10)
        await asyncio.sleep(5)
    finally:
        postgres.start()
    worker.wait_event("job_settings_resumed", timeout_s=60)
    changed = await asyncio.to_thread(
        financial, database_dsn, open_tmp_path, "jobs", "set", "probe", "--enabled", "false"
    )
    assert changed.returncode == 0, changed.stderr
    worker.wait_event("job_disabled", timeout_s=APPLY_WITHIN_S, job="probe")
    assert worker.proc.poll() is None
    names = [e["event"] for e in worker.events]
    assert names.count("job_settings_unavailable") == 1
    assert names.count("job_settings_resumed") == 1
    unavailable = next(e for e in worker.events if e["event"] == "job_settings_unavailable")
    assert unavailable["level"] == "warning"
    assert unavailable["error"] and unavailable["retry_in_s"] > 0


async def test_the_watcher_leaves_a_pool_of_one_to_the_runs(
    database_dsn: str, open_tmp_path: Path, spawned: list[WorkerProcess]
) -> None:
    # The watcher's LISTEN connection is its own: the one pooled connection still serves the
    # run store, so the job set to every second runs.
    worker = start(spawned, database_dsn, open_tmp_path, 0, DB_POOL_MAX_SIZE="1")
    worker.wait_event("worker_started", timeout_s=60)
    changed = await asyncio.to_thread(
        financial, database_dsn, open_tmp_path, "jobs", "set", "probe", "--schedule", "* * * * * *"
    )
    assert changed.returncode == 0, changed.stderr
    worker.wait_event("job_rescheduled", timeout_s=APPLY_WITHIN_S, job="probe")
    worker.wait_event("job_succeeded", timeout_s=10, job="probe")
    assert await probe_runs(database_dsn)
