"""Three real `financial worker` processes on one database: one run per tick.

The `audit` job (tests/fixtures/replica_jobs.py) fires every second and appends its tick to a
table with no unique index, so a tick run twice would show. One test kills a replica with SIGKILL
in the middle of a run; another restarts PostgreSQL under the replicas.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.fixtures.replica_jobs import AUDIT_TABLE_DDL
from tests.integration.services import PostgresService
from tests.integration.worker_process import FINANCIAL, REPO, WorkerProcess

pytestmark = pytest.mark.integration

REPLICAS = 3
# Short, so a killed replica's run is abandoned within the test's 30 s of ticks.
LEASE_S = 10
FINAL = ("succeeded", "failed", "timed_out", "skipped", "missed", "interrupted", "abandoned")


def start_replicas(
    workers: list[WorkerProcess], database_dsn: str, cwd: Path
) -> list[WorkerProcess]:
    for n in range(REPLICAS):
        workers.append(
            WorkerProcess(
                "worker",
                cwd=cwd,
                env={
                    "DATABASE_URL": database_dsn,
                    "WORKER_JOB_MODULES": "tests.fixtures.replica_jobs",
                    "WORKER_ID": f"replica-{n}",
                    "WORKER_SHUTDOWN_TIMEOUT_SECONDS": "5",
                    "WORKER_RUN_LEASE_SECONDS": str(LEASE_S),
                    # `first_job_start` watches `job_started`, which a run logs at DEBUG.
                    "LOG_LEVEL": "DEBUG",
                },
            )
        )
    for worker in workers:
        worker.wait_event("worker_started", timeout_s=60)
    return workers


async def db_now(dsn: str) -> datetime:
    conn = await asyncpg.connect(dsn)
    try:
        now: datetime = await conn.fetchval("SELECT now()")
        return now
    finally:
        await conn.close()


async def fetch(dsn: str, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()


async def first_job_start(
    workers: list[WorkerProcess], timeout_s: float
) -> tuple[WorkerProcess, dict[str, Any]]:
    """The first replica to log `job_started` for `audit` from now on (polled every 5 ms)."""
    seen = {id(worker): len(worker.events) for worker in workers}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for worker in workers:
            for event in worker.events[seen[id(worker)] :]:
                if event.get("event") == "job_started" and event.get("job") == "audit":
                    return worker, event
        await asyncio.sleep(0.005)
    raise AssertionError("no replica started a run of audit")


def ticks_between(start: datetime, end: datetime) -> list[datetime]:
    """Every whole second strictly after `start` and before `end`."""
    first = start.replace(microsecond=0) + timedelta(seconds=1)
    return [first + timedelta(seconds=n) for n in range(int((end - first).total_seconds()) + 1)]


async def stop_survivors(workers: list[WorkerProcess]) -> None:
    alive = [w for w in workers if w.proc.poll() is None]
    for worker in alive:
        worker.signal(signal.SIGTERM)
    codes = await asyncio.gather(*(asyncio.to_thread(w.wait_exit, 30) for w in alive))
    assert codes == [0] * len(alive), [w.stderr()[-2000:] for w in alive]


async def check_each_tick_once(dsn: str, start: datetime, end: datetime) -> list[asyncpg.Record]:
    """No tick in the audit table twice; every tick from `start` to `end` has one final run."""
    duplicates = await fetch(
        dsn, "SELECT tick, count(*) FROM replica_audit GROUP BY tick HAVING count(*) > 1"
    )
    assert duplicates == []
    runs = await fetch(
        dsn,
        "SELECT scheduled_at, attempt, status, worker_id, error_message FROM job_runs "
        "WHERE job = 'audit' ORDER BY scheduled_at, attempt",
    )
    assert {r["attempt"] for r in runs} == {1}, "audit is not recover=True: never run again"
    assert all(r["status"] in FINAL for r in runs), [r for r in runs if r["status"] not in FINAL]
    recorded = {r["scheduled_at"] for r in runs}
    missing = [t for t in ticks_between(start, end) if t not in recorded]
    assert missing == [], f"ticks without a run: {missing}"
    audited = {r["tick"] for r in await fetch(dsn, "SELECT tick FROM replica_audit")}
    succeeded = {r["scheduled_at"] for r in runs if r["status"] == "succeeded"}
    # Every successful run wrote its tick, and nothing wrote a tick that has no run.
    assert succeeded <= audited <= recorded
    return runs


async def test_three_replicas_run_each_tick_once_and_a_killed_ones_run_is_abandoned(
    database_dsn: str, spawned: list[WorkerProcess], tmp_path: Path
) -> None:
    await fetch(database_dsn, AUDIT_TABLE_DDL)
    workers = start_replicas(spawned, database_dsn, tmp_path)
    started = await db_now(database_dsn)
    await asyncio.sleep(8)
    victim, event = await first_job_start(workers, timeout_s=10)
    victim.kill()  # SIGKILL, in the middle of its 300-700 ms run
    killed_at = await db_now(database_dsn)
    victim_id = f"replica-{workers.index(victim)}"
    # The victim's run stays claimed until its lease lapses, then a survivor's sweep (every
    # 5 s) marks it abandoned.
    deadline = time.monotonic() + LEASE_S + 20
    abandoned: list[asyncpg.Record] = []
    while time.monotonic() < deadline and not abandoned:
        await asyncio.sleep(0.5)
        abandoned = await fetch(
            database_dsn,
            "SELECT run_id, scheduled_at, error_message FROM job_runs "
            "WHERE job = 'audit' AND status = 'abandoned'",
        )
    assert abandoned, "the killed replica's run was never marked abandoned"
    elapsed_s = (await db_now(database_dsn) - started).total_seconds()
    await asyncio.sleep(max(0.0, 32 - elapsed_s))  # at least 30 s of ticks in all
    ended = await db_now(database_dsn)
    await stop_survivors(workers)

    runs = await check_each_tick_once(database_dsn, started, ended - timedelta(seconds=1))
    [lost] = abandoned
    assert str(lost["run_id"]) == event["run_id"]
    assert lost["scheduled_at"].isoformat() == event["scheduled_at"]
    assert victim_id in lost["error_message"]
    assert not [r for r in runs if r["worker_id"] == victim_id and r["scheduled_at"] > killed_at]
    survivors = [w for w in workers if w is not victim]
    swept = [e for w in survivors for e in w.events if e["event"] == "run_abandoned"]
    assert [e["run_id"] for e in swept] == [event["run_id"]]


async def test_a_postgresql_restart_loses_no_record_and_runs_no_tick_twice(
    postgres: PostgresService,
    database_dsn: str,
    spawned: list[WorkerProcess],
    tmp_path: Path,
) -> None:
    await fetch(database_dsn, AUDIT_TABLE_DDL)
    workers = start_replicas(spawned, database_dsn, tmp_path)
    started = await db_now(database_dsn)
    await asyncio.sleep(5)
    await first_job_start(workers, timeout_s=10)
    await asyncio.to_thread(postgres.stop)  # a fast shutdown: every connection drops
    await asyncio.sleep(3)
    await asyncio.to_thread(postgres.start)
    restarted = await db_now(database_dsn)
    await asyncio.sleep(8)
    ended = await db_now(database_dsn)
    await stop_survivors(workers)

    runs = await check_each_tick_once(database_dsn, started, ended - timedelta(seconds=1))
    # The replicas went on after the restart.
    assert any(r["status"] == "succeeded" and r["scheduled_at"] > restarted for r in runs)
    assert all(w.proc.returncode == 0 for w in workers)


def cli(*args: str, database_dsn: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`financial ARGS` on the test's database, as an operator would type it."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(REPO),
        "DATABASE_URL": database_dsn,
        "WORKER_JOB_MODULES": "tests.fixtures.replica_jobs",
        "LOG_FORMAT": "json",
    }
    return subprocess.run(
        [FINANCIAL, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


async def test_pause_and_resume_hold_on_every_replica_and_history_shows_who_ran_what(
    database_dsn: str, spawned: list[WorkerProcess], tmp_path: Path
) -> None:
    await fetch(database_dsn, AUDIT_TABLE_DDL)
    workers = start_replicas(spawned, database_dsn, tmp_path)
    await first_job_start(workers, timeout_s=10)

    paused = cli(
        "jobs",
        "pause",
        "audit",
        "--reason",
        "audit table migration",
        database_dsn=database_dsn,
        cwd=tmp_path,
    )
    assert paused.returncode == 0, paused.stderr
    paused_at = await db_now(database_dsn)
    await asyncio.sleep(3)
    listed = cli("jobs", "list", "--json", database_dsn=database_dsn, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    [row] = [r for r in json.loads(listed.stdout) if r["name"] == "audit"]
    assert row["paused"] is True and row["paused_reason"] == "audit table migration"
    assert row["last_status"] == "skipped" and row["last_success_at"] is not None
    # Ticks claimed before this instant found the job paused; the resume commits after it.
    resuming_at = await db_now(database_dsn)
    resumed = cli("jobs", "resume", "audit", database_dsn=database_dsn, cwd=tmp_path)
    assert resumed.returncode == 0 and "resumed" in resumed.stdout
    resumed_at = await db_now(database_dsn)
    await asyncio.sleep(3)
    await stop_survivors(workers)

    shown = cli(
        "jobs",
        "history",
        "audit",
        "--json",
        "--limit",
        "200",
        database_dsn=database_dsn,
        cwd=tmp_path,
    )
    assert shown.returncode == 0, shown.stderr
    runs = json.loads(shown.stdout)
    ticks = [datetime.fromisoformat(r["scheduled_at"]) for r in runs]
    assert ticks == sorted(ticks, reverse=True)
    while_paused = [
        t
        for t in runs
        if paused_at + timedelta(seconds=1)
        < datetime.fromisoformat(t["scheduled_at"])
        < resuming_at - timedelta(seconds=0.5)
    ]
    assert while_paused and {r["status"] for r in while_paused} == {"skipped"}
    assert {r["error_message"] for r in while_paused} == {"paused: audit table migration"}
    after = [
        r
        for r in runs
        if datetime.fromisoformat(r["scheduled_at"]) > resumed_at + timedelta(seconds=1)
    ]
    assert "skipped" not in {r["status"] for r in after}
    succeeded = [r for r in after if r["status"] == "succeeded"]
    assert succeeded
    for run in succeeded:
        assert run["worker_id"].startswith("replica-")
        assert run["started_at"] and run["duration_ms"] >= 300

    table = cli(
        "jobs",
        "history",
        "--status",
        "skipped",
        "--limit",
        "2",
        database_dsn=database_dsn,
        cwd=tmp_path,
    )
    header, *lines = table.stdout.splitlines()
    assert header.split() == [
        "JOB",
        "SCHEDULED",
        "AT",
        "ATTEMPT",
        "TRIGGER",
        "STATUS",
        "WORKER",
        "STARTED",
        "AT",
        "DURATION",
        "ERROR",
    ]
    assert len(lines) == 2 and all("paused: audit table migration" in line for line in lines)
