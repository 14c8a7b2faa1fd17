"""`financial jobs list` against a real PostgreSQL: each job's late state (from `job_alerts`)
and its queued run requests (from `run_requests`), in the table and in `--json`."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from financial.pkg.jobs.model import Trigger
from financial.pkg.scheduler.store.requests_postgres import PostgresRequestStore
from tests.integration.test_run_requests import cli, day

pytestmark = pytest.mark.integration

LATE_SINCE = datetime(2026, 1, 2, 5, 0, tzinfo=UTC)


async def test_jobs_list_shows_late_jobs_and_queued_requests(
    db_pool: asyncpg.Pool, database_dsn: str, tmp_path: Path
) -> None:
    await db_pool.execute(
        "INSERT INTO job_alerts (job, watched_since, late_since, late_tick, reason) "
        "VALUES ('requested', $1, $2, $3, 'no success')",
        day(0),
        LATE_SINCE,
        day(1),
    )
    requests = PostgresRequestStore(db_pool)
    await requests.add(
        "requested", [day(0), day(1), day(2)], trigger=Trigger.BACKFILL, requested_by="ops"
    )
    [claimed] = await requests.claim(["requested"], worker_id="w1", limit=1)
    assert claimed.tick == day(0)
    await requests.add("elsewhere", [None], trigger=Trigger.MANUAL, requested_by="ops")

    listed = await asyncio.to_thread(cli, database_dsn, tmp_path, "jobs", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    row = {r["name"]: r for r in json.loads(listed.stdout)}["requested"]
    # Two queued; the claimed one is being run and is not counted.
    assert (row["late"], row["late_since"], row["pending_requests"]) == (
        True,
        LATE_SINCE.isoformat(),
        2,
    )

    table = await asyncio.to_thread(cli, database_dsn, tmp_path, "jobs", "list")
    assert table.returncode == 0, table.stderr
    header, *lines = table.stdout.splitlines()
    assert "LATE" in header and "REQUESTS" in header
    [line] = [text for text in lines if text.startswith("requested ")]
    assert f"LATE since {LATE_SINCE.isoformat()}  2  " in line

    await db_pool.execute("UPDATE job_alerts SET late_since = NULL, late_tick = NULL")
    again = await asyncio.to_thread(cli, database_dsn, tmp_path, "jobs", "list", "--json")
    row = {r["name"]: r for r in json.loads(again.stdout)}["requested"]
    assert (row["late"], row["late_since"], row["pending_requests"]) == (False, None, 2)


def test_without_a_database_the_columns_say_unknown(tmp_path: Path) -> None:
    unreachable = "postgresql://worker:s3cret@127.0.0.1:1/none"
    listed = cli(unreachable, tmp_path, "jobs", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert rows
    assert {(r["late"], r["late_since"], r["pending_requests"]) for r in rows} == {
        (None, None, None)
    }
    assert "run history unavailable" in listed.stderr and "s3cret" not in listed.stderr
    table = cli(unreachable, tmp_path, "jobs", "list")
    header = table.stdout.splitlines()[0].split()
    assert "LATE" in header and "REQUESTS" in header
    assert "LATE since" not in table.stdout
