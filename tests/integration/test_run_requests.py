"""`jobs trigger` and `jobs backfill` against three real `financial worker` processes on one
PostgreSQL: each request run by exactly one replica, through the whole chain."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.integration.worker_process import FINANCIAL, REPO, WorkerProcess

pytestmark = pytest.mark.integration

REPLICAS = 3
JOB_MODULES = "tests.fixtures.request_jobs"
# Ticks of `requested` (03:00 UTC daily), well in the past.
DAY0 = datetime(2026, 1, 1, 3, 0, tzinfo=UTC)


def day(n: int) -> datetime:
    return DAY0 + timedelta(days=n)


def cli_env(dsn: str, cwd: Path) -> dict[str, str]:
    """The environment of an operator's `financial` command on the workers' database."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(REPO),
        "HOME": str(cwd),
        "DATABASE_URL": dsn,
        "WORKER_JOB_MODULES": JOB_MODULES,
    }


def cli(dsn: str, cwd: Path, *args: str, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    """`financial ARGS` as an operator runs it, on the workers' database."""
    return subprocess.run(
        [FINANCIAL, *args],
        cwd=cwd,
        env=cli_env(dsn, cwd),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


async def fetch(dsn: str, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()


@pytest.fixture
def replicas(audited: str, open_tmp_path: Path) -> Iterator[list[WorkerProcess]]:
    workers = [
        WorkerProcess(
            "worker",
            cwd=open_tmp_path,
            env={
                "DATABASE_URL": audited,
                "WORKER_JOB_MODULES": JOB_MODULES,
                "WORKER_ID": f"replica-{n}",
                "WORKER_SHUTDOWN_TIMEOUT_SECONDS": "5",
            },
        )
        for n in range(REPLICAS)
    ]
    try:
        for worker in workers:
            worker.wait_event("notification_listener_started", timeout_s=60)
        yield workers
    finally:
        for worker in workers:
            worker.kill()


def claims_of(workers: list[WorkerProcess], request_id: str) -> int:
    """How many replicas logged a claim of the request."""
    return sum(
        1
        for w in workers
        for e in w.events
        if e.get("event") == "run_request_claimed" and e.get("request_id") == request_id
    )


def request_id_of(output: str) -> str:
    return output.split("(request ")[1].split(")")[0]


async def test_a_trigger_is_run_by_exactly_one_replica_with_its_args(
    audited: str, replicas: list[WorkerProcess], open_tmp_path: Path
) -> None:
    done = cli(
        audited,
        open_tmp_path,
        "jobs",
        "trigger",
        "requested",
        "--args",
        '{"n": 7}',
        "--wait",
        "--wait-timeout",
        "30",
        "--by",
        "tester",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "requested: succeeded" in done.stdout
    assert "no worker is running" not in done.stdout
    request_id = request_id_of(done.stdout)
    assert claims_of(replicas, request_id) == 1
    audit = await fetch(audited, "SELECT tick, attempt, trigger, args, run_id FROM request_audit")
    assert len(audit) == 1
    assert (audit[0]["attempt"], audit[0]["trigger"]) == (1, "manual")
    assert json.loads(audit[0]["args"]) == {"n": 7}
    runs = await fetch(audited, "SELECT run_id, trigger, status FROM job_runs")
    assert [(r["trigger"], r["status"]) for r in runs] == [("manual", "succeeded")]
    [request] = await fetch(audited, "SELECT * FROM run_requests")
    assert request["run_id"] == runs[0]["run_id"] == audit[0]["run_id"]
    assert (request["state"], request["status"], request["requested_by"]) == (
        "done",
        "succeeded",
        "tester",
    )


async def test_wait_exits_1_for_a_failed_run(
    audited: str, replicas: list[WorkerProcess], open_tmp_path: Path
) -> None:
    done = cli(
        audited,
        open_tmp_path,
        "jobs",
        "trigger",
        "requested",
        "--args",
        '{"fail": true}',
        "--wait",
        "--wait-timeout",
        "30",
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "requested: failed" in done.stdout
    assert "RuntimeError: asked to fail" in done.stdout


async def test_a_past_tick_runs_again_as_a_new_attempt(
    audited: str, replicas: list[WorkerProcess], open_tmp_path: Path
) -> None:
    for _ in range(2):
        done = cli(
            audited,
            open_tmp_path,
            "jobs",
            "trigger",
            "requested",
            "--tick",
            day(0).isoformat(),
            "--wait",
            "--wait-timeout",
            "30",
        )
        assert done.returncode == 0, done.stdout + done.stderr
    audit = await fetch(audited, "SELECT tick, attempt FROM request_audit ORDER BY attempt")
    assert [(r["tick"], r["attempt"]) for r in audit] == [(day(0), 1), (day(0), 2)]


async def test_a_backfill_runs_every_tick_once_and_only_what_has_not_succeeded(
    audited: str, replicas: list[WorkerProcess], open_tmp_path: Path
) -> None:
    first = cli(
        audited,
        open_tmp_path,
        "jobs",
        "trigger",
        "requested",
        "--tick",
        day(2).isoformat(),
        "--wait",
        "--wait-timeout",
        "30",
    )
    assert first.returncode == 0, first.stdout + first.stderr
    args = [
        "jobs",
        "backfill",
        "requested",
        "--from",
        day(0).isoformat(),
        "--to",
        day(5).isoformat(),
    ]
    dry = cli(audited, open_tmp_path, *args, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    listed = [datetime.fromisoformat(line) for line in dry.stdout.split()]
    assert listed == [day(n) for n in (0, 1, 3, 4, 5)]
    assert len(await fetch(audited, "SELECT 1 FROM run_requests WHERE trigger = 'backfill'")) == 0
    done = cli(audited, open_tmp_path, *args)
    assert done.returncode == 0, done.stderr
    assert "5 backfill run(s) requested" in done.stdout
    await wait_until_done(audited, 6, timeout_s=60)
    audit = await fetch(
        audited, "SELECT tick, count(*) AS n FROM request_audit GROUP BY tick ORDER BY tick"
    )
    assert [(r["tick"], r["n"]) for r in audit] == [(day(n), 1) for n in range(6)]
    backfilled = await fetch(
        audited,
        "SELECT scheduled_at, status FROM job_runs WHERE trigger = 'backfill' ORDER BY started_at",
    )
    # Run in tick order, one at a time.
    assert [(r["scheduled_at"], r["status"]) for r in backfilled] == [
        (day(n), "succeeded") for n in (0, 1, 3, 4, 5)
    ]
    again = cli(audited, open_tmp_path, *args)
    assert "0 backfill run(s) requested" in again.stdout


async def wait_until_done(dsn: str, count: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        rows = await fetch(dsn, "SELECT count(*) AS n FROM run_requests WHERE state = 'done'")
        if rows[0]["n"] >= count:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"fewer than {count} requests done within {timeout_s}s")


async def test_without_a_worker_the_run_waits_and_bad_input_stores_nothing(
    audited: str, open_tmp_path: Path
) -> None:
    bad = cli(audited, open_tmp_path, "jobs", "trigger", "requested", "--args", "[1, 2]")
    assert bad.returncode == 2
    assert "--args '[1, 2]': expected a JSON object" in bad.stderr
    naive = cli(
        audited, open_tmp_path, "jobs", "trigger", "requested", "--tick", "2026-01-01T03:00:00"
    )
    assert naive.returncode == 2
    assert "expected an ISO 8601 instant with its UTC offset" in naive.stderr
    wide = cli(
        audited,
        open_tmp_path,
        "jobs",
        "backfill",
        "requested",
        "--from",
        day(0).isoformat(),
        "--to",
        day(150).isoformat(),
    )
    assert wide.returncode == 2
    assert "151 ticks to run, above the bound of 100" in wide.stderr
    future = cli(
        audited,
        open_tmp_path,
        "jobs",
        "backfill",
        "requested",
        "--from",
        day(0).isoformat(),
        "--to",
        "2999-01-01T00:00:00Z",
    )
    assert future.returncode == 2
    assert "--to '2999-01-01T00:00:00Z': expected an instant not in the future" in future.stderr
    assert await fetch(audited, "SELECT 1 FROM run_requests") == []
    waiting = cli(audited, open_tmp_path, "jobs", "trigger", "requested")
    assert waiting.returncode == 0, waiting.stderr
    assert "no worker is running on this database: the run waits for one" in waiting.stdout
    [request] = await fetch(audited, "SELECT state FROM run_requests")
    assert request["state"] == "pending"
    unknown = cli(audited, open_tmp_path, "jobs", "trigger", "nosuchjob")
    assert unknown.returncode == 2
    assert "nosuchjob" in unknown.stderr
    waited = cli(
        audited, open_tmp_path, "jobs", "trigger", "requested", "--wait", "--wait-timeout", "1"
    )
    assert waited.returncode == 1
    assert "not finished after 1s; the request stays queued" in waited.stdout
    assert len(await fetch(audited, "SELECT 1 FROM run_requests WHERE state = 'pending'")) == 2
    allowed = cli(
        audited,
        open_tmp_path,
        "jobs",
        "backfill",
        "requested",
        "--from",
        day(0).isoformat(),
        "--to",
        day(150).isoformat(),
        "--max",
        "151",
    )
    assert allowed.returncode == 0, allowed.stderr
    assert "151 backfill run(s) requested" in allowed.stdout


async def test_a_lost_listener_connection_is_reopened_and_requests_still_run(
    audited: str, open_tmp_path: Path
) -> None:
    worker = WorkerProcess(
        "worker",
        cwd=open_tmp_path,
        env={"DATABASE_URL": audited, "WORKER_JOB_MODULES": JOB_MODULES, "WORKER_ID": "solo"},
    )
    try:
        worker.wait_event("notification_listener_started", timeout_s=60)
        ended = await fetch(
            audited,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'financial-requests:solo'",
        )
        assert [r[0] for r in ended] == [True]
        worker.wait_event("notification_listener_lost", timeout_s=20)
        worker.wait_for(
            lambda e: (
                e.get("event") == "notification_listener_started"
                and sum(
                    1 for x in worker.events if x.get("event") == "notification_listener_started"
                )
                == 2
            ),
            timeout_s=20,
        )
        done = cli(
            audited, open_tmp_path, "jobs", "trigger", "requested", "--wait", "--wait-timeout", "30"
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert worker.proc.poll() is None
    finally:
        worker.kill()


async def test_a_request_held_by_a_replica_that_died_ends_abandoned(
    audited: str, open_tmp_path: Path
) -> None:
    workers = [
        WorkerProcess(
            "worker",
            cwd=open_tmp_path,
            env={
                "DATABASE_URL": audited,
                "WORKER_JOB_MODULES": JOB_MODULES,
                "WORKER_ID": f"replica-{n}",
                "WORKER_RUN_LEASE_SECONDS": "4",
            },
        )
        for n in range(2)
    ]
    try:
        for worker in workers:
            worker.wait_event("notification_listener_started", timeout_s=60)
        asked = cli(
            audited, open_tmp_path, "jobs", "trigger", "requested", "--args", '{"sleep": 30}'
        )
        assert asked.returncode == 0, asked.stderr
        request_id = request_id_of(asked.stdout)
        deadline = time.monotonic() + 20
        while not (holder := [w for w in workers if claims_of([w], request_id)]):
            assert time.monotonic() < deadline, "no replica claimed the request"
            await asyncio.sleep(0.1)
        holder[0].kill()
        survivor = next(w for w in workers if w is not holder[0])
        await wait_until_done(audited, 1, timeout_s=30)
        [request] = await fetch(audited, "SELECT state, status FROM run_requests")
        assert (request["state"], request["status"]) == ("done", "abandoned")
        done = cli(
            audited, open_tmp_path, "jobs", "trigger", "requested", "--wait", "--wait-timeout", "30"
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert claims_of([survivor], request_id_of(done.stdout)) == 1
    finally:
        for worker in workers:
            worker.kill()


async def test_a_backfill_and_a_trigger_go_by_the_settings_set_at_runtime(
    audited: str, open_tmp_path: Path
) -> None:
    changed = cli(audited, open_tmp_path, "jobs", "set", "requested", "--schedule", "0 12 * * *")
    assert changed.returncode == 0, changed.stderr
    dry = cli(
        audited,
        open_tmp_path,
        "jobs",
        "backfill",
        "requested",
        "--from",
        day(0).isoformat(),
        "--to",
        day(2).isoformat(),
        "--dry-run",
    )
    assert dry.returncode == 0, dry.stderr
    listed = [datetime.fromisoformat(line) for line in dry.stdout.split()]
    # Noon ticks of the runtime schedule, not the code's 03:00.
    assert listed == [day(0) + timedelta(hours=9), day(1) + timedelta(hours=9)]
    off = cli(audited, open_tmp_path, "jobs", "set", "requested", "--enabled", "false")
    assert off.returncode == 0, off.stderr
    queued = cli(audited, open_tmp_path, "jobs", "trigger", "requested")
    assert queued.returncode == 0, queued.stderr
    assert "requested is disabled: workers run its requests only once" in queued.stderr
