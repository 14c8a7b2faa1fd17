"""PostgresJobSettings against a real PostgreSQL: the job settings contract, the notification
sent in the same transaction as a change, and concurrent `set`s that all land in the audit."""

from __future__ import annotations

import asyncio
import itertools

import asyncpg
import pytest

from financial.pkg.scheduler.job_settings import CHANNEL, RuntimeSettings
from financial.pkg.scheduler.job_settings.postgres import PostgresJobSettings
from tests.contract.job_settings_contract import JobSettingsContract

pytestmark = pytest.mark.integration


class TestPostgresJobSettings(JobSettingsContract):
    @pytest.fixture
    def settings(self, db_pool: asyncpg.Pool) -> PostgresJobSettings:
        return PostgresJobSettings(db_pool)


async def test_a_change_notifies_the_channel_with_the_job(
    db_pool: asyncpg.Pool, database_dsn: str
) -> None:
    heard: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(database_dsn)
    try:
        await listener.add_listener(CHANNEL, lambda *args: heard.put_nowait(args[3]))
        store = PostgresJobSettings(db_pool)
        await store.set("job_a", RuntimeSettings(enabled=False), by="x", reason=None)
        await store.reset("job_a", by="x", reason=None)
        assert await asyncio.wait_for(heard.get(), 5) == "job_a"
        assert await asyncio.wait_for(heard.get(), 5) == "job_a"
    finally:
        await listener.close()


async def test_a_refused_change_leaves_nothing(db_pool: asyncpg.Pool) -> None:
    store = PostgresJobSettings(db_pool)
    with pytest.raises(asyncpg.CheckViolationError):
        await store.set("job", RuntimeSettings(timeout_s=-1), by="x", reason=None)
    assert await store.all() == {}
    assert await store.audit("job") == []


async def test_a_negative_alert_after_is_refused_by_the_table(db_pool: asyncpg.Pool) -> None:
    store = PostgresJobSettings(db_pool)
    with pytest.raises(asyncpg.CheckViolationError):
        await store.set("job", RuntimeSettings(alert_after_s=-1), by="x", reason=None)
    assert await store.all() == {}
    assert await store.audit("job") == []


async def test_an_audit_row_from_before_alert_after_reads_it_as_not_set(
    db_pool: asyncpg.Pool,
) -> None:
    # As written before migration 0008: four keys, no `alert_after_s`.
    old = '{"schedule": null, "timeout_s": null, "enabled": null, "calendar": null}'
    new = '{"schedule": "@hourly", "timeout_s": 30, "enabled": null, "calendar": null}'
    async with db_pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO job_settings_audit (job, changed_by, action, old_values, new_values) "
            "VALUES ('job', 'ann', 'set', $1::jsonb, $2::jsonb)",
            old,
            new,
        )
    store = PostgresJobSettings(db_pool)
    await store.set("job", RuntimeSettings(alert_after_s=0), by="bob", reason=None)
    [latest, earlier] = await store.audit("job")
    assert earlier.new == RuntimeSettings(schedule="@hourly", timeout_s=30.0)
    assert earlier.new.alert_after_s is None
    assert latest.new == RuntimeSettings(alert_after_s=0.0)


async def test_concurrent_sets_each_land_once_in_the_audit(database_dsn: str) -> None:
    pools = [await asyncpg.create_pool(database_dsn, min_size=1, max_size=2) for _ in range(3)]
    try:
        stores = [PostgresJobSettings(pool) for pool in pools]
        await asyncio.gather(
            *(
                store.set("job", RuntimeSettings(timeout_s=float(n + 1)), by=f"w{n}", reason=None)
                for n, store in enumerate(stores)
            )
        )
        entries = await stores[0].audit("job")
        assert sorted(e.by for e in entries) == ["w0", "w1", "w2"]
        # Serialised on the row: each change starts from the one before it.
        chain = list(reversed(entries))
        assert chain[0].old == RuntimeSettings()
        for before, after in itertools.pairwise(chain):
            assert after.old == before.new
    finally:
        for pool in pools:
            await pool.close()
