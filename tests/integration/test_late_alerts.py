"""Dead-man alerts with three real `financial worker` processes on one PostgreSQL: a job that
keeps failing turns late once (one `job_late` line across every process, one `job.late` event,
none more after every replica restarts), and once it succeeds again recovers once; every replica
reports the same state."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import urllib.request
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.integration.services import free_port
from tests.integration.worker_process import WorkerProcess

pytestmark = pytest.mark.integration

REPLICAS = 3
ALERT_AFTER_S = 3


def start_replicas(
    workers: list[WorkerProcess], database_dsn: str, cwd: Path, flag: Path, ports: list[int]
) -> list[WorkerProcess]:
    for n, port in enumerate(ports):
        workers.append(
            WorkerProcess(
                "worker",
                cwd=cwd,
                env={
                    "DATABASE_URL": database_dsn,
                    "WORKER_JOB_MODULES": "tests.fixtures.late_jobs",
                    "WORKER_ID": f"replica-{n}",
                    "WORKER_SHUTDOWN_TIMEOUT_SECONDS": "5",
                    "WORKER_JOBS__FLAKY__ALERT_AFTER_SECONDS": str(ALERT_AFTER_S),
                    "WORKER_ALERT_CHECK_INTERVAL_SECONDS": "0.5",
                    "LATE_FLAG_FILE": str(flag),
                    "WORKER_HEALTH_ADDR": f"127.0.0.1:{port}",
                },
            )
        )
    for worker in workers:
        worker.wait_event("worker_started", timeout_s=60)
    return workers


async def stop(workers: list[WorkerProcess]) -> None:
    for worker in workers:
        worker.signal(signal.SIGTERM)
    codes = await asyncio.gather(*(asyncio.to_thread(w.wait_exit, 30) for w in workers))
    assert codes == [0] * len(workers), [w.stderr()[-2000:] for w in workers]


def events(workers: list[WorkerProcess], name: str) -> list[dict[str, Any]]:
    return [e for w in workers for e in list(w.events) if e.get("event") == name]


async def wait_for_event(workers: list[WorkerProcess], name: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if events(workers, name):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"no replica logged {name} within {timeout_s} s")


def status_page(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
        text: str = response.read().decode()
    return text


def late_gauge(port: int) -> str | None:
    """The `financial_worker_job_late{job="flaky"}` value a replica's /metrics shows."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text: str = response.read().decode()
    prefix = 'financial_worker_job_late{job="flaky"} '
    return next(
        (line[len(prefix) :] for line in text.splitlines() if line.startswith(prefix)), None
    )


async def gauges_become(ports: list[int], value: str, timeout_s: float = 5) -> None:
    """Every replica's gauge reads `value` (each re-reads the state every pass)."""
    deadline = time.monotonic() + timeout_s
    while True:
        seen = [await asyncio.to_thread(late_gauge, port) for port in ports]
        if all(v is not None and float(v) == float(value) for v in seen):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"financial_worker_job_late on each replica: {seen}")
        await asyncio.sleep(0.2)


async def outbox_events(dsn: str, routing_key: str) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT payload FROM outbox WHERE routing_key = $1", routing_key)
    finally:
        await conn.close()
    return [json.loads(row["payload"]) for row in rows]


async def test_a_failing_job_alerts_once_across_replicas_and_recovers_once(
    database_dsn: str, spawned: list[WorkerProcess], tmp_path: Path
) -> None:
    flag = tmp_path / "succeed"
    ports = [free_port() for _ in range(REPLICAS)]
    workers = start_replicas(spawned, database_dsn, tmp_path, flag, ports)

    await wait_for_event(workers, "job_late", timeout_s=30)
    await asyncio.sleep(4)  # many more passes, by whichever replica holds the lease
    [late] = events(workers, "job_late")
    assert late["job"] == "flaky"
    [event] = await outbox_events(database_dsn, "job.late")
    assert event["job"] == "flaky" and event["late_since"] == late["late_since"]
    assert event["alert_after_seconds"] == ALERT_AFTER_S
    await gauges_become(ports, "1")
    for port in ports:  # every replica's status page: the red banner naming the job
        assert '1 job late: <a href="/jobs/flaky">flaky</a>' in status_page(port)

    # A restart of every replica raises no second alert: the state is in the database.
    await stop(workers)
    restarted: list[WorkerProcess] = []
    spawned.extend(start_replicas(restarted, database_dsn, tmp_path, flag, ports))
    await asyncio.sleep(4)
    assert events(restarted, "job_late") == []
    assert len(await outbox_events(database_dsn, "job.late")) == 1
    await gauges_become(ports, "1")
    workers = restarted

    flag.touch()
    await wait_for_event(workers, "job_recovered", timeout_s=30)
    await asyncio.sleep(4)
    [recovered] = events(spawned, "job_recovered")  # every process, before and after
    assert recovered["late_since"] == late["late_since"]
    assert len(events(spawned, "job_late")) == 1
    [back] = await outbox_events(database_dsn, "job.recovered")
    assert back["job"] == "flaky"
    await gauges_become(ports, "0")
    assert "late:" not in status_page(ports[0])
    conn = await asyncpg.connect(database_dsn)
    try:
        holders = await conn.fetch("SELECT holder FROM scheduler_leases WHERE name = 'late_jobs'")
        still_late = await conn.fetchval(
            "SELECT count(*) FROM job_alerts WHERE late_since IS NOT NULL"
        )
    finally:
        await conn.close()
    assert len(holders) == 1 and holders[0]["holder"].startswith("replica-")
    assert still_late == 0

    await stop(workers)
    closed = [e for w in workers for e in w.events if e.get("event") == "late_checker_stopped"]
    assert len(closed) == REPLICAS
