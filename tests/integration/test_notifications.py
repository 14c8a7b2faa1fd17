"""A real `financial worker` on a real PostgreSQL holds one LISTEN connection beside its pool,
shared by the runtime settings and run request watchers; when that connection is killed
(`pg_terminate_backend`) the loss is logged once, the connection comes back, and both watchers
hear their notifications on the new one."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from tests.integration.job_settings_cli import financial
from tests.integration.worker_process import WorkerProcess

pytestmark = pytest.mark.integration

JOB_MODULES = "tests.fixtures.request_jobs"
HUB = "financial-requests:solo"
POOL = "financial-worker"  # the pool's application name (SERVICE_NAME_WORKER's default)
POOL_MAX = 2


async def connections(dsn: str) -> list[str]:
    """The application names of the other client connections to this database."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT application_name FROM pg_stat_activity "
            "WHERE datname = current_database() AND backend_type = 'client backend' "
            "AND pid <> pg_backend_pid() ORDER BY application_name"
        )
        return [row["application_name"] for row in rows]
    finally:
        await conn.close()


async def terminate(dsn: str, application_name: str) -> list[bool]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = $1",
            application_name,
        )
        return [row[0] for row in rows]
    finally:
        await conn.close()


def assert_one_listener_beside_the_pool(names: list[str]) -> None:
    assert names.count(HUB) == 1, names
    assert set(names) == {HUB, POOL}, names  # no `<service>-settings` connection any more
    assert 1 <= names.count(POOL) <= POOL_MAX, names


async def test_one_listen_connection_beside_the_pool_survives_being_killed(
    audited: str, open_tmp_path: Path
) -> None:
    database_dsn = audited  # with the table the job writes to
    worker = WorkerProcess(
        "worker",
        cwd=open_tmp_path,
        env={
            "DATABASE_URL": database_dsn,
            "WORKER_JOB_MODULES": JOB_MODULES,
            "WORKER_ID": "solo",
            "DB_POOL_MAX_SIZE": str(POOL_MAX),
            # No periodic re-read within the test: a change applied is a notification heard.
            "WORKER_JOB_SETTINGS_REREAD_SECONDS": "3600",
        },
    )
    try:
        started = worker.wait_event("notification_listener_started", timeout_s=60)
        assert started["channels"] == ["financial_job_settings", "financial_run_requests"]
        worker.wait_event("worker_started", timeout_s=30)
        assert_one_listener_beside_the_pool(await connections(database_dsn))

        assert await terminate(database_dsn, HUB) == [True]
        lost = worker.wait_event("notification_listener_lost", timeout_s=20)
        assert lost["level"] == "warning" and lost["retry_in_s"] > 0
        worker.wait_event("notification_listener_resumed", timeout_s=20)
        assert_one_listener_beside_the_pool(await connections(database_dsn))

        # The runtime settings watcher hears a change on the new connection.
        changed = await asyncio.to_thread(
            financial,
            database_dsn,
            open_tmp_path,
            "jobs",
            "set",
            "requested",
            "--timeout",
            "77",
            WORKER_JOB_MODULES=JOB_MODULES,
        )
        assert changed.returncode == 0, changed.stderr
        applied = worker.wait_event("job_settings_applied", timeout_s=5, job="requested")
        assert applied["runtime_timeout_s"] == 77
        # The request watcher runs a trigger.
        done = await asyncio.to_thread(
            financial,
            database_dsn,
            open_tmp_path,
            "jobs",
            "trigger",
            "requested",
            "--wait",
            "--wait-timeout",
            "30",
            WORKER_JOB_MODULES=JOB_MODULES,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "no worker is running" not in done.stdout
        assert worker.proc.poll() is None
    finally:
        worker.kill()
    names = [e["event"] for e in worker.events]
    assert names.count("notification_listener_lost") == 1
    assert names.count("notification_listener_resumed") == 1
    assert names.count("notification_listener_started") == 2
    assert "job_settings_unavailable" not in names  # its reads go through the pool, unharmed
