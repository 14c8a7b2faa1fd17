"""Real `financial worker` processes: stuck threads never hold the exit, process jobs stop.

Each test starts a worker on its own PostgreSQL database, loads `tests.fixtures.executor_jobs`
and turns on the jobs it needs; the records are read back from `job_runs`.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncpg
import pytest

from tests.integration.worker_process import WorkerProcess

pytestmark = pytest.mark.integration

JOBS = {"WORKER_JOB_MODULES": "tests.fixtures.executor_jobs"}
FINAL = {"succeeded", "failed", "timed_out", "skipped", "missed", "interrupted", "abandoned"}
SHUTDOWN_TIMEOUT_S = 3.0
# What "promptly" allows beyond the shutdown timeout: closing the clients and the interpreter.
EXIT_MARGIN_S = 5.0

Spawn = Callable[..., WorkerProcess]


@pytest.fixture
def spawn(open_tmp_path: Path, database_dsn: str) -> Iterator[Spawn]:
    started: list[WorkerProcess] = []

    def start(**env: str) -> WorkerProcess:
        env = {
            "TEST_MARKS_DIR": str(open_tmp_path),
            "DATABASE_URL": database_dsn,
            "WORKER_SHUTDOWN_TIMEOUT_SECONDS": str(SHUTDOWN_TIMEOUT_S),
            **JOBS,
            **env,
        }
        proc = WorkerProcess("worker", env=env, cwd=open_tmp_path)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.kill()


async def runs(dsn: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(
            "SELECT job, scheduled_at, attempt, status, error_type, error_message FROM job_runs "
            "ORDER BY job, scheduled_at, attempt"
        )
    finally:
        await conn.close()


async def stop(worker: WorkerProcess) -> tuple[int, float]:
    """SIGTERM; the exit code and how long the process took to end."""
    started = time.monotonic()
    worker.signal(signal.SIGTERM)
    code = await asyncio.to_thread(worker.wait_exit, SHUTDOWN_TIMEOUT_S + 30)
    return code, time.monotonic() - started


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_stuck_threads_neither_starve_blocking_jobs_nor_hold_the_exit(
    spawn: Spawn, database_dsn: str
) -> None:
    # Pool of 5: six stuck threads are more than the pool holds (it is replaced up to 10).
    worker = spawn(
        WORKER_JOBS__STUCK_SLEEPER__ENABLED="true",
        WORKER_JOBS__QUICK_BLOCKING__ENABLED="true",
        WORKER_THREAD_POOL_SIZE="5",
    )
    stuck = await asyncio.to_thread(
        worker.wait_for,
        lambda e: e.get("event") == "executor_thread_stuck" and e["stuck_threads"] >= 6,
        30,
    )
    seen = len(worker.events)
    # Blocking jobs still run beside six stuck threads, on a thread of their own.
    ran = await asyncio.to_thread(
        worker.wait_for,
        lambda e: (
            e.get("event") == "job_succeeded"
            and e.get("job") == "quick_blocking"
            and worker.events.index(e) >= seen
        ),
        10,
    )
    assert ran["job"] == "quick_blocking" and stuck["job"] == "stuck_sleeper"

    code, took_s = await stop(worker)

    drained = worker.wait_event("drain_finished")
    assert code == (1 if drained["interrupted"] else 0)  # DESIGN §7
    assert took_s < SHUTDOWN_TIMEOUT_S + EXIT_MARGIN_S, took_s
    print(
        f"\nexit with stuck threads took {took_s:.2f} s (shutdown timeout {SHUTDOWN_TIMEOUT_S} s)"
    )
    records = await runs(database_dsn)
    assert all(r["status"] in FINAL for r in records), [
        r for r in records if r["status"] not in FINAL
    ]
    sleeper = [r for r in records if r["job"] == "stuck_sleeper"]
    assert len(sleeper) >= 6
    assert {r["status"] for r in sleeper} <= {"timed_out", "interrupted"}
    quick = [r for r in records if r["job"] == "quick_blocking"]
    assert quick and {r["status"] for r in quick} <= {"succeeded", "interrupted", "missed"}
    assert sum(r["status"] == "succeeded" for r in quick) >= 6


async def test_a_process_job_is_stopped_at_its_timeout_and_failures_come_back_typed(
    spawn: Spawn, database_dsn: str, open_tmp_path: Path
) -> None:
    worker = spawn(
        WORKER_JOBS__PROCESS_SLEEPER__ENABLED="true",
        WORKER_JOBS__PROCESS_QUICK__ENABLED="true",
        WORKER_JOBS__PROCESS_RAISES__ENABLED="true",
        WORKER_PROCESS_KILL_GRACE_SECONDS="1",
    )
    timed_out = await asyncio.to_thread(
        worker.wait_event, "job_timed_out", 30, job="process_sleeper"
    )
    # The child ignored SIGTERM's request (it sleeps): SIGKILL after the grace, before the
    # run was recorded.
    killed = worker.wait_event("job_process_killed", job="process_sleeper")
    assert killed["run_id"] == timed_out["run_id"]
    pid = int((open_tmp_path / "process_sleeper.log").read_text().split()[-1])
    assert pid == killed["pid"] and pid != worker.proc.pid
    assert not alive(pid)

    failed = await asyncio.to_thread(worker.wait_event, "job_failed", 20, job="process_raises")
    assert failed["error_type"] == "LookupError"
    assert failed["error"] == "no rate for process_raises"
    assert "in process_raises" in failed["exception"]  # the child's own traceback
    succeeded = await asyncio.to_thread(worker.wait_event, "job_succeeded", 20, job="process_quick")
    ran = worker.wait_event("process_quick_ran", run_id=succeeded["run_id"])
    assert ran["child_pid"] == ran["pid"] != worker.proc.pid

    code, took_s = await stop(worker)

    drained = worker.wait_event("drain_finished")
    assert code == (1 if drained["interrupted"] else 0)
    assert took_s < SHUTDOWN_TIMEOUT_S + 1 + EXIT_MARGIN_S, took_s
    records = await runs(database_dsn)
    assert all(r["status"] in FINAL for r in records)
    sleeper = {r["status"] for r in records if r["job"] == "process_sleeper"}
    assert "timed_out" in sleeper and sleeper <= {"timed_out", "interrupted", "skipped"}
    raises = [r for r in records if r["job"] == "process_raises" and r["status"] == "failed"]
    assert raises and all(r["error_type"] == "LookupError" for r in raises)
    # No child is left behind: every pid the sleeper's runs had is gone.
    pids = [int(line.split()[-1]) for line in (open_tmp_path / "process_sleeper.log").open()]
    assert not any(alive(p) for p in pids)
