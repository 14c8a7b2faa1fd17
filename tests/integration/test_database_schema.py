"""Migrations: the schema they build, idempotency, concurrency (tasks and processes), failures."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime

import asyncpg
import pytest

from financial.pkg.database import Migration, MigrationError, load_migrations, migrate
from financial.pkg.database.schema import schema_differences

pytestmark = pytest.mark.integration

MIGRATE_IN_A_PROCESS = """
import asyncio, json, sys
import asyncpg
from financial.pkg.database import migrate

async def main() -> None:
    conn = await asyncpg.connect(sys.argv[1])
    try:
        print(json.dumps(await migrate(conn)))
    finally:
        await conn.close()

asyncio.run(main())
"""


async def applied_versions(dsn: str) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")
        return [row["version"] for row in rows]
    finally:
        await conn.close()


def test_migration_files_are_numbered_in_order() -> None:
    migrations = load_migrations()

    assert [m.version for m in migrations] == [f"{n:04d}" for n in range(1, len(migrations) + 1)]
    assert all(m.sql.strip() for m in migrations)


async def test_migrations_build_the_declared_schema(empty_database_dsn: str) -> None:
    conn = await asyncpg.connect(empty_database_dsn)
    try:
        applied = await migrate(conn)

        assert applied == [m.name for m in load_migrations()]
        assert await schema_differences(conn) == []
    finally:
        await conn.close()


async def test_schema_check_reports_drift(database_dsn: str) -> None:
    conn = await asyncpg.connect(database_dsn)
    try:
        await conn.execute("ALTER TABLE outbox ADD COLUMN surprise int")
        await conn.execute("DROP INDEX outbox_sent_at_idx")

        assert await schema_differences(conn) == [
            "column outbox.surprise: declared None, found 'integer NULL'",
            "index outbox_sent_at_idx: declared 'outbox (sent_at) WHERE (sent_at IS NOT NULL)', "
            "found None",
        ]
    finally:
        await conn.close()


async def test_migrate_is_idempotent(empty_database_dsn: str) -> None:
    pool = await asyncpg.create_pool(empty_database_dsn, min_size=1, max_size=2)
    try:
        first = await migrate(pool)
        second = await migrate(pool)
    finally:
        await pool.close()

    assert len(first) == len(load_migrations())
    assert second == []
    assert await applied_versions(empty_database_dsn) == [m.version for m in load_migrations()]


async def test_concurrent_migrate_from_many_connections_applies_each_once(
    empty_database_dsn: str,
) -> None:
    connections = [await asyncpg.connect(empty_database_dsn) for _ in range(6)]
    try:
        results = await asyncio.gather(*(migrate(conn) for conn in connections))
    finally:
        for conn in connections:
            await conn.close()

    applied = sorted(name for result in results for name in result)
    assert applied == [m.name for m in load_migrations()]
    assert await applied_versions(empty_database_dsn) == [m.version for m in load_migrations()]


async def test_concurrent_migrate_from_three_processes_applies_each_once(
    empty_database_dsn: str,
) -> None:
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            MIGRATE_IN_A_PROCESS,
            empty_database_dsn,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(3)
    ]
    outputs = [await asyncio.wait_for(p.communicate(), timeout=60) for p in processes]

    for process, (_, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr.decode()
    applied = sorted(
        name for stdout, _ in outputs for name in json.loads(stdout.decode().splitlines()[-1])
    )
    assert applied == [m.name for m in load_migrations()]
    assert await applied_versions(empty_database_dsn) == [m.version for m in load_migrations()]


async def test_failed_migration_is_rolled_back_and_not_recorded(empty_database_dsn: str) -> None:
    good = Migration("0001", "0001_good", "CREATE TABLE good (id int)")
    bad = Migration("0002", "0002_bad", "CREATE TABLE half (id int); SELECT no_such_function()")
    conn = await asyncpg.connect(empty_database_dsn)
    try:
        with pytest.raises(MigrationError, match="0002_bad failed and was rolled back"):
            await migrate(conn, migrations=[good, bad])

        assert await conn.fetchval("SELECT to_regclass('half')") is None
        assert await conn.fetchval("SELECT to_regclass('good')") is not None
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == 1
    finally:
        await conn.close()


async def test_an_applied_migration_that_was_edited_is_refused(empty_database_dsn: str) -> None:
    original = Migration("0001", "0001_t", "CREATE TABLE t (id int)")
    edited = Migration("0001", "0001_t", "CREATE TABLE t (id bigint)")
    conn = await asyncpg.connect(empty_database_dsn)
    try:
        await migrate(conn, migrations=[original])
        with pytest.raises(MigrationError, match="changed after it was applied"):
            await migrate(conn, migrations=[edited])
    finally:
        await conn.close()


async def test_job_runs_constraints(database_dsn: str) -> None:
    conn = await asyncpg.connect(database_dsn)
    tick = datetime(2025, 1, 6, 8, 0, tzinfo=UTC)
    insert = (
        "INSERT INTO job_runs (run_id, job, scheduled_at, attempt, trigger, status, worker_id) "
        "VALUES ($1, 'report', $2, 1, 'schedule', $3, 'w1')"
    )
    try:
        await conn.execute(insert, uuid.uuid4(), tick, "pending")
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute(insert, uuid.uuid4(), tick, "pending")
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(insert, uuid.uuid4(), datetime(2025, 1, 7, tzinfo=UTC), "bogus")
        row = await conn.fetchrow("SELECT fence, lease_expires_at FROM job_runs")
        assert row is not None
        assert row["fence"] == 0
        assert row["lease_expires_at"] is None
    finally:
        await conn.close()


async def test_run_requests_constraints(database_dsn: str) -> None:
    conn = await asyncpg.connect(database_dsn)
    tick = datetime(2025, 1, 6, 8, 0, tzinfo=UTC)
    insert = (
        "INSERT INTO run_requests (request_id, job, tick, trigger, args, requested_by) "
        "VALUES ($1, 'report', $2, $3, $4::jsonb, 'ops')"
    )
    try:
        await conn.execute(
            "INSERT INTO job_runs (run_id, job, scheduled_at, trigger, worker_id) "
            "VALUES ($1, 'report', $2, 'backfill', 'w1')",
            uuid.uuid4(),
            tick,
        )
        await conn.execute(insert, uuid.uuid4(), tick, "backfill", "{}")
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute(insert, uuid.uuid4(), tick, "backfill", "{}")
        await conn.execute(insert, uuid.uuid4(), tick, "manual", '{"a": 1}')
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(insert, uuid.uuid4(), tick, "manual", "[1]")
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(insert, uuid.uuid4(), tick, "schedule", "{}")
        assert await conn.fetchval("SELECT count(*) FROM run_requests") == 2
    finally:
        await conn.close()
