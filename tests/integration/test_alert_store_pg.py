"""PostgresAlertStore against a real PostgreSQL: the alert store contract, events in the outbox,
and replicas racing to raise the same alert."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from financial.pkg.scheduler.alerts import AlertStore, Lateness
from financial.pkg.scheduler.alerts.postgres import PostgresAlertStore
from financial.pkg.scheduler.store import RunStore
from financial.pkg.scheduler.store.postgres import PostgresRunStore
from tests.contract.alert_store_contract import (
    LATENESS,
    AlertStoreContract,
    Written,
    late_event,
)
from tests.contract.run_store_contract import LEASE, Elapse, tick

pytestmark = pytest.mark.integration


class TestPostgresAlertStore(AlertStoreContract):
    @pytest.fixture
    def alerts(self, db_pool: asyncpg.Pool) -> AlertStore:
        return PostgresAlertStore(db_pool)

    @pytest.fixture
    def runs(self, db_pool: asyncpg.Pool) -> RunStore:
        return PostgresRunStore(db_pool, lease=LEASE)

    @pytest.fixture
    def elapse(self) -> Elapse:
        return asyncio.sleep

    @pytest.fixture
    def written(self, db_pool: asyncpg.Pool) -> Written:
        async def written() -> list[tuple[str, str]]:
            rows = await db_pool.fetch("SELECT routing_key, message_id FROM outbox ORDER BY id")
            return [(row["routing_key"], str(row["message_id"])) for row in rows]

        return written


async def test_the_event_carries_its_payload(db_pool: asyncpg.Pool) -> None:
    alerts = PostgresAlertStore(db_pool)
    await alerts.mark_late("job", LATENESS, at=tick(75), event=late_event())

    payload = await db_pool.fetchval("SELECT payload FROM outbox WHERE routing_key = 'job.late'")
    assert payload == '{"job": "job"}'


async def test_replicas_racing_to_raise_an_alert_raise_it_once(database_dsn: str) -> None:
    pools = [await asyncpg.create_pool(database_dsn, min_size=1, max_size=2) for _ in range(3)]
    try:
        stores = [PostgresAlertStore(pool) for pool in pools]
        for n in range(10):
            lateness = Lateness(tick(100 * n + 50), tick(100 * n), "no success")
            event = late_event(f"8f0c3f4e-1d7a-5b1e-9c55-6a1f0d2b7{n:03d}")
            changed = await asyncio.gather(
                *(
                    store.mark_late("job", lateness, at=tick(100 * n + 60), event=event)
                    for store in stores
                )
            )
            assert sum(changed) == 1
            recovered = await asyncio.gather(
                *(
                    store.mark_recovered(
                        "job",
                        at=tick(100 * n + 90),
                        event=late_event(f"8f0c3f4e-1d7a-5b1e-9c55-6a1f0d2b8{n:03d}"),
                    )
                    for store in stores
                )
            )
            assert sum(recovered) == 1
        count = await pools[0].fetchval("SELECT count(*) FROM outbox")
        assert count == 20
    finally:
        for pool in pools:
            await pool.close()
