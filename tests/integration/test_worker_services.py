"""A real `financial worker` process on the real PostgreSQL and RabbitMQ, short schedules."""

from __future__ import annotations

import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from tests.integration.amqp_consumer import consumer
from tests.integration.worker_process import WorkerProcess

pytestmark = pytest.mark.integration


async def test_worker_runs_the_three_jobs_and_drains_cleanly_on_sigterm(
    db_pool: asyncpg.Pool,
    services_env: dict[str, str],
    amqp_url: str,
    exchange_name: str,
    tmp_path: Path,
) -> None:
    long_ago = datetime.now(UTC) - timedelta(days=400)
    await db_pool.execute(
        "INSERT INTO categories (name, deleted_at) VALUES ('old', $1), ('live', NULL)", long_ago
    )
    await db_pool.execute("INSERT INTO users (email) VALUES ('a@x'), ('b@x')")
    env = {key: services_env[key] for key in ("DATABASE_URL", "RABBITMQ_URL", "RABBITMQ_EXCHANGE")}
    async with consumer(amqp_url, exchange_name, "reports.weekly.generated") as queue:
        worker = WorkerProcess(
            "worker",
            cwd=tmp_path,
            env={
                **env,
                "WORKER_JOBS__REPORT_GENERATOR__SCHEDULE": "*/2 * * * * *",
                "WORKER_JOBS__DATABASE_CLEANUP__SCHEDULE": "* * * * * *",
                "WORKER_JOBS__OUTBOX_RELAY__SCHEDULE": "@every 1s",
            },
        )
        try:
            started = worker.wait_event("worker_started")
            # WORKER_EVENT_LOOP=auto, the default: uvloop, which the lock installs.
            assert started["event_loop"] == "uvloop"
            assert sorted(started["jobs"]) == [
                "database_cleanup",
                "outbox_relay",
                "report_generator",
            ]
            for job in ("database_cleanup", "report_generator", "outbox_relay"):
                worker.wait_event("job_succeeded", job=job)
            [report] = await queue.take(1, timeout_s=20)
            assert report.body["users"] == 2
            worker.signal(signal.SIGTERM)
            assert worker.wait_exit() == 0
        finally:
            worker.kill()
    names = [e["event"] for e in worker.events]
    assert names.index("shutdown_requested") < names.index("drain_finished")
    closed = [e["client"] for e in worker.events if e["event"] == "client_closed"]
    # Scheduler first (the drain), then the runtime settings watcher, the LISTEN connection both
    # watchers share, RabbitMQ, PostgreSQL, metrics, telemetry: the reverse of their start order.
    assert closed == [
        "job_settings",
        "notifications",
        "rabbitmq",
        "postgres",
        "metrics",
        "telemetry",
    ]
    assert names.index("drain_finished") < names.index("client_closed")
    assert not any(e.get("level") == "error" for e in worker.events), [
        e for e in worker.events if e.get("level") == "error"
    ]
    remaining = await db_pool.fetch("SELECT name FROM categories ORDER BY id")
    assert [r["name"] for r in remaining] == ["live"]
    # The masked URL may be logged; the password never.
    assert "guest:guest" not in "\n".join(str(e) for e in worker.events)
