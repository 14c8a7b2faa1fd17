"""`financial jobs set --alert-after` reaching a running `financial worker` on a real PostgreSQL:
a failing job with no alert turns late under a short runtime threshold (one `job.late` event,
the status page shows the threshold as a runtime value), and `--alert-after 0` silences it: the
late state is cleared with a `job.alert_off` event, no `job_recovered` and no `job.recovered`,
while it keeps failing."""

from __future__ import annotations

import asyncio
import json
import signal
import urllib.request
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.integration.job_settings_cli import financial
from tests.integration.services import free_port
from tests.integration.worker_process import WorkerProcess

pytestmark = pytest.mark.integration

JOBS = "tests.fixtures.late_jobs"  # `flaky`: every 2 s, failing until its flag file exists


def fetch(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
        text: str = response.read().decode()
    return text


async def alert_state(dsn: str) -> tuple[list[tuple[str, dict[str, Any]]], int]:
    """The alert events written to the outbox, in order, and how many jobs are late."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT routing_key, payload FROM outbox "
            "WHERE routing_key IN ('job.late', 'job.recovered', 'job.alert_off') ORDER BY id"
        )
        late: int = await conn.fetchval(
            "SELECT count(*) FROM job_alerts WHERE late_since IS NOT NULL"
        )
    finally:
        await conn.close()
    return [(row["routing_key"], json.loads(row["payload"])) for row in rows], late


def jobs_set(dsn: str, cwd: Path, *args: str) -> None:
    result = financial(dsn, cwd, "jobs", "set", "flaky", *args, WORKER_JOB_MODULES=JOBS)
    assert result.returncode == 0, result.stderr


def flaky_row(dsn: str, cwd: Path) -> dict[str, Any]:
    listed = financial(dsn, cwd, "jobs", "list", "--json", WORKER_JOB_MODULES=JOBS)
    assert listed.returncode == 0, listed.stderr
    row: dict[str, Any] = next(r for r in json.loads(listed.stdout) if r["name"] == "flaky")
    return row


async def test_a_runtime_alert_after_makes_a_failing_job_late_and_0_silences_it(
    database_dsn: str, spawned: list[WorkerProcess], tmp_path: Path
) -> None:
    port = free_port()
    worker = WorkerProcess(
        "worker",
        cwd=tmp_path,
        env={
            "DATABASE_URL": database_dsn,
            "WORKER_JOB_MODULES": JOBS,
            "WORKER_ID": "replica-0",
            "WORKER_SHUTDOWN_TIMEOUT_SECONDS": "5",
            "WORKER_ALERT_CHECK_INTERVAL_SECONDS": "0.5",
            "LATE_FLAG_FILE": str(tmp_path / "never"),  # flaky keeps failing
            "WORKER_HEALTH_ADDR": f"127.0.0.1:{port}",
        },
    )
    spawned.append(worker)
    worker.wait_event("worker_started", timeout_s=60)
    worker.wait_event("job_failed", timeout_s=10, job="flaky")
    assert flaky_row(database_dsn, tmp_path)["alert_after_s"] is None  # no alert: never late

    jobs_set(database_dsn, tmp_path, "--alert-after", "2", "--reason", "watch it")
    worker.wait_event("job_settings_applied", timeout_s=5, job="flaky", runtime_alert_after_s=2.0)
    # Watched from the next pass: its first tick after that (<= 2 s) + 2 s, and a pass.
    late = worker.wait_event("job_late", timeout_s=15, job="flaky")
    [(key, event)], late_count = await alert_state(database_dsn)
    assert (key, event["alert_after_seconds"], late_count) == ("job.late", 2, 1)
    assert event["late_since"] == late["late_since"]
    page = await asyncio.to_thread(fetch, port, "/jobs/flaky")
    assert "<td>alert_after</td>" in page and "<code>2s</code>" in page
    assert "runtime (financial jobs set)" in page
    row = flaky_row(database_dsn, tmp_path)
    assert (row["late"], row["alert_after_s"], row["sources"]["alert_after"]) == (
        True,
        2,
        "runtime",
    )

    jobs_set(database_dsn, tmp_path, "--alert-after", "0", "--reason", "known, silence it")
    cleared = worker.wait_event("job_late_cleared", timeout_s=5, job="flaky")
    assert cleared["late_since"] == late["late_since"]
    failures = len([e for e in worker.events if e.get("event") == "job_failed"])
    worker.wait_for(  # it goes on failing, silently
        lambda e: (
            e.get("event") == "job_failed"
            and len([x for x in worker.events if x.get("event") == "job_failed"]) >= failures + 2
        ),
        timeout_s=10,
    )
    names = [e.get("event") for e in worker.events]
    assert names.count("job_late") == 1 and "job_recovered" not in names
    [late_event, (off_key, off)], late_count = await alert_state(database_dsn)
    assert (late_event, late_count) == (("job.late", event), 0)
    assert (off_key, off["job"], off["late_since"]) == (
        "job.alert_off",
        "flaky",
        event["late_since"],
    )
    row = flaky_row(database_dsn, tmp_path)
    assert (row["late"], row["alert_after_s"], row["sources"]["alert_after"]) == (
        False,
        None,
        "runtime",
    )
    assert "job late" not in await asyncio.to_thread(fetch, port, "/")
    audit = financial(database_dsn, tmp_path, "jobs", "audit", "flaky", WORKER_JOB_MODULES=JOBS)
    assert "alert_after: 2s -> off" in audit.stdout
    assert "alert_after: unset -> 2s" in audit.stdout

    worker.signal(signal.SIGTERM)
    assert await asyncio.to_thread(worker.wait_exit, 30) == 0
