"""PostgresRequestStore against a real PostgreSQL: the run request contract, replicas racing
for one job's requests, and the listeners `jobs trigger` looks for."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from financial.pkg.database.notifications import (
    LISTENER_PREFIX,
    dedicated_connection,
    pool_connection,
)
from financial.pkg.database.pool import DatabaseUnavailable
from financial.pkg.jobs.model import Trigger
from financial.pkg.scheduler.store import RunStore
from financial.pkg.scheduler.store.postgres import PostgresRunStore
from financial.pkg.scheduler.store.requests import RequestStore
from financial.pkg.scheduler.store.requests_postgres import (
    QUERIES,
    PostgresRequestStore,
    listeners,
)
from tests.contract.run_request_cancel_contract import RunRequestCancelContract
from tests.contract.run_request_contract import CLAIM_LEASE, Elapse, RunRequestContract, day

pytestmark = pytest.mark.integration


class TestPostgresRequestStore(RunRequestContract, RunRequestCancelContract):
    @pytest.fixture
    def runs(self, db_pool: asyncpg.Pool) -> RunStore:
        return PostgresRunStore(db_pool)

    @pytest.fixture
    def requests(self, db_pool: asyncpg.Pool) -> RequestStore:
        return PostgresRequestStore(db_pool, claim_lease=CLAIM_LEASE)

    @pytest.fixture
    def elapse(self) -> Elapse:
        return asyncio.sleep


@pytest.fixture
async def replicas(database_dsn: str) -> AsyncIterator[list[PostgresRequestStore]]:
    pools = [await asyncpg.create_pool(database_dsn, min_size=1, max_size=3) for _ in range(3)]
    yield [PostgresRequestStore(pool) for pool in pools]
    for pool in pools:
        await pool.close()


async def test_replicas_racing_never_claim_two_requests_of_one_job(
    replicas: list[PostgresRequestStore],
) -> None:
    await replicas[0].add(
        "report", [day(n) for n in range(10)], trigger=Trigger.BACKFILL, requested_by="x"
    )
    await replicas[0].add("other", [day(0)], trigger=Trigger.MANUAL, requested_by="x")
    claims = await asyncio.gather(
        *(
            store.claim(["report", "other"], worker_id=f"w{i}", limit=5)
            for i, store in enumerate(replicas)
        )
    )
    claimed = [r for batch in claims for r in batch]
    assert sorted(r.job for r in claimed) == ["other", "report"]
    [report] = [r for r in claimed if r.job == "report"]
    assert report.tick == day(0)


async def test_an_insert_notifies_the_channel(db_pool: asyncpg.Pool) -> None:
    got: asyncio.Queue[str] = asyncio.Queue()

    def heard(*args: object) -> None:
        got.put_nowait(str(args[3]))

    conn = await db_pool.acquire()
    try:
        await conn.add_listener("financial_run_requests", heard)
        await PostgresRequestStore(db_pool).add(
            "report", [None], trigger=Trigger.MANUAL, requested_by="x"
        )
        assert await asyncio.wait_for(got.get(), 5) == "report"
    finally:
        await conn.remove_listener("financial_run_requests", heard)
        await db_pool.release(conn)


async def test_a_named_listener_is_seen_until_given_back(db_pool: asyncpg.Pool) -> None:
    assert await listeners(db_pool, LISTENER_PREFIX) == []
    async with pool_connection(db_pool, LISTENER_PREFIX + "replica-7")() as conn:
        await conn.ping()
        assert await listeners(db_pool, LISTENER_PREFIX) == ["financial-requests:replica-7"]
    assert await listeners(db_pool, LISTENER_PREFIX) == []


async def test_a_dedicated_listener_is_seen_and_a_refused_one_hides_the_password(
    db_pool: asyncpg.Pool, database_dsn: str
) -> None:
    own = dedicated_connection(database_dsn, LISTENER_PREFIX + "own", connect_timeout_s=5)
    async with own() as conn:
        await conn.ping()
        assert await listeners(db_pool, LISTENER_PREFIX) == ["financial-requests:own"]
    # The server ends the closed connection's backend a moment after the client let go.
    for _ in range(100):
        if await listeners(db_pool, LISTENER_PREFIX) == []:
            break
        await asyncio.sleep(0.02)
    assert await listeners(db_pool, LISTENER_PREFIX) == []
    wrong = "postgresql://worker:s3cret-pw@127.0.0.1:1/nowhere"
    with pytest.raises(DatabaseUnavailable) as refused:
        async with dedicated_connection(wrong, "x", connect_timeout_s=2)():
            pass
    assert "s3cret-pw" not in str(refused.value)


async def _until_waiting_on_a_lock(pool: asyncpg.Pool, snippet: str) -> None:
    """Until a backend running a statement that holds `snippet` waits on a lock."""
    for _ in range(200):
        waiting = await pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database() AND strpos(query, $1) > 0",
            snippet,
        )
        if waiting:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"no statement holding {snippet!r} waited on a lock")


async def test_a_cancel_waiting_on_a_claim_re_checks_the_row_and_leaves_it_claimed(
    db_pool: asyncpg.Pool,
) -> None:
    store = PostgresRequestStore(db_pool)
    [request] = await store.add("report", [day(0)], trigger=Trigger.MANUAL, requested_by="x")
    claimer = await db_pool.acquire()
    try:
        tx = claimer.transaction()
        await tx.start()
        # A claim's update, holding the row's lock until it commits.
        await claimer.execute(
            "UPDATE run_requests SET state = 'claimed', claimed_by = 'w1', claimed_at = now(), "
            "claim_expires_at = now() + interval '30 seconds' WHERE request_id = $1::uuid",
            request.request_id,
        )
        cancelling = asyncio.create_task(store.cancel("report", None, cancelled_by="ops"))
        await _until_waiting_on_a_lock(db_pool, "SET state = 'cancelled'")
        assert not cancelling.done()
        await tx.commit()
        result = await asyncio.wait_for(cancelling, 10)
    finally:
        await db_pool.release(claimer)
    assert result.cancelled == ()
    assert [(r.request_id, r.claimed_by) for r in result.left] == [(request.request_id, "w1")]
    got = await store.get(request.request_id)
    assert got is not None and got.state.value == "claimed" and got.cancelled_by is None


async def test_a_claim_waiting_on_a_cancel_finds_nothing_to_claim(db_pool: asyncpg.Pool) -> None:
    store = PostgresRequestStore(db_pool)
    [request] = await store.add("report", [day(0)], trigger=Trigger.MANUAL, requested_by="x")
    canceller = await db_pool.acquire()
    try:
        tx = canceller.transaction()
        await tx.start()
        await canceller.fetch(
            QUERIES["cancel"], "report", None, None, "ops", None
        )  # not committed yet
        claiming = asyncio.create_task(store.claim(["report"], worker_id="w1", limit=1))
        await _until_waiting_on_a_lock(db_pool, "LOCK TABLE run_requests")
        await tx.commit()
        claimed = await asyncio.wait_for(claiming, 10)
    finally:
        await db_pool.release(canceller)
    assert claimed == []
    got = await store.get(request.request_id)
    assert got is not None and got.state.value == "cancelled" and got.cancelled_by == "ops"
