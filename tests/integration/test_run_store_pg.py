"""PostgresRunStore against a real PostgreSQL: the run store contract and its batch calls,
replicas racing for the same ticks, and calls that go through lost connections."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest
from structlog.testing import capture_logs

from financial.pkg.jobs.model import Overlap, RunStatus, Trigger
from financial.pkg.scheduler.store import (
    ClaimRequest,
    FinishRequest,
    RunStore,
    RunStoreUnavailable,
    StartRequest,
)
from financial.pkg.scheduler.store.postgres import QUERIES, PostgresRunStore
from tests.contract.run_store_batch_contract import RunStoreBatchContract
from tests.contract.run_store_contract import LEASE, Elapse, RunStoreContract, tick
from tests.contract.run_store_recent_contract import RunStoreRecentContract

pytestmark = pytest.mark.integration


class TestPostgresRunStore(RunStoreContract, RunStoreBatchContract, RunStoreRecentContract):
    @pytest.fixture
    def store(self, db_pool: asyncpg.Pool) -> RunStore:
        return PostgresRunStore(db_pool, lease=LEASE)

    @pytest.fixture
    def elapse(self) -> Elapse:
        return asyncio.sleep


@pytest.fixture
async def replicas(database_dsn: str) -> AsyncIterator[list[PostgresRunStore]]:
    """Three stores, each on a pool of its own, as three worker processes would have."""
    pools = [await asyncpg.create_pool(database_dsn, min_size=1, max_size=4) for _ in range(3)]
    yield [PostgresRunStore(pool, lease=timedelta(seconds=30)) for pool in pools]
    for pool in pools:
        await pool.close()


async def test_replicas_racing_for_the_same_ticks_claim_each_once(
    replicas: list[PostgresRunStore],
) -> None:
    for n in range(20):
        claims = await asyncio.gather(
            *(
                store.claim("race", tick(n), attempt=1, trigger=Trigger.SCHEDULE, worker_id=f"w{i}")
                for i, store in enumerate(replicas)
            )
        )
        assert sum(record is not None for record in claims) == 1
    assert len(await replicas[0].history("race", limit=100)) == 20


async def test_replicas_racing_claim_many_for_the_same_ticks_claim_each_once(
    replicas: list[PostgresRunStore],
) -> None:
    # Each replica sends the same 300 ticks in an order of its own. Without one insertion order,
    # two batches each hold a key the other waits for: a deadlock, which PostgreSQL breaks by
    # failing one statement, and the store would then retry it (logged as a retry). A few
    # instants in a row, since a race lost once in a while would prove little.
    for n in range(5):
        requests = [ClaimRequest(f"job{j:03}", tick(n), 1, Trigger.SCHEDULE) for j in range(300)]
        batches = [random.Random(seed).sample(requests, len(requests)) for seed in range(3)]
        with capture_logs() as logs:
            results = await asyncio.gather(
                *(
                    store.claim_many(batch, worker_id=f"w{i}")
                    for i, (store, batch) in enumerate(zip(replicas, batches, strict=True))
                )
            )
        assert [e for e in logs if e["event"] == "database_call_retrying"] == []
        winners: dict[str, list[str]] = {}
        for batch, records in zip(batches, results, strict=True):
            for claimed, record in zip(batch, records, strict=True):
                if record is not None:
                    assert record.job == claimed.job and record.scheduled_at == tick(n)
                    winners.setdefault(record.job, []).append(record.worker_id)
        assert sorted(winners) == [r.job for r in requests]
        assert all(len(workers) == 1 for workers in winners.values())
    assert len(await replicas[0].history(limit=2000)) == 5 * 300


async def test_each_batch_is_one_statement(database_dsn: str) -> None:
    # The store's statements only: asyncpg adds its own (type introspection on a connection's
    # first use of a type, the reset of a connection going back to the pool).
    queries: list[str] = []
    statements = set(QUERIES.values())

    async def log_queries(conn: asyncpg.Connection) -> None:
        conn.add_query_logger(
            lambda logged: queries.append(logged.query) if logged.query in statements else None
        )

    pool = await asyncpg.create_pool(database_dsn, min_size=1, max_size=2, init=log_queries)
    try:
        store = PostgresRunStore(pool)
        requests = [ClaimRequest(f"job{n}", tick(0), 1, Trigger.SCHEDULE) for n in range(50)]
        claimed = [r for r in await store.claim_many(requests, worker_id="w1") if r is not None]
        started = await store.start_many([StartRequest(r.run_id, r.fence) for r in claimed])
        finished = await store.finish_many(
            [FinishRequest(r.run_id, RunStatus.SUCCEEDED, r.fence) for r in claimed]
        )
        assert queries == [QUERIES["claim_many"], QUERIES["start_many"], QUERIES["finish_many"]]
        assert [r.status if r else None for r in started] == [RunStatus.RUNNING] * 50
        assert [r.status if r else None for r in finished] == [RunStatus.SUCCEEDED] * 50
        await store.claim_many([], worker_id="w1")
        await store.start_many([])
        await store.finish_many([])
        assert len(queries) == 3
    finally:
        await pool.close()


async def test_skip_holds_across_replicas_racing_for_successive_ticks(
    replicas: list[PostgresRunStore],
) -> None:
    first = await replicas[0].claim(
        "busy", tick(0), attempt=1, trigger=Trigger.SCHEDULE, worker_id="w0", overlap=Overlap.SKIP
    )
    assert first is not None and first.status is RunStatus.PENDING
    later = await asyncio.gather(
        *(
            store.claim(
                "busy",
                tick(n),
                attempt=1,
                trigger=Trigger.SCHEDULE,
                worker_id=f"w{n}",
                overlap=Overlap.SKIP,
            )
            for n, store in enumerate(replicas, start=1)
        )
    )
    assert [r.status if r else None for r in later] == [RunStatus.SKIPPED] * 3


async def test_a_claim_goes_through_a_dropped_connection(
    db_pool: asyncpg.Pool, database_dsn: str
) -> None:
    pool = await asyncpg.create_pool(database_dsn, min_size=2, max_size=2)
    try:
        store = PostgresRunStore(pool)
        await store.history()  # the pool's connections are open now
        # Every backend of this pool dies, as in a failover or a restart of the server.
        await db_pool.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        record = await store.claim(
            "job", tick(0), attempt=1, trigger=Trigger.SCHEDULE, worker_id="w1"
        )
        assert record is not None and record.status is RunStatus.PENDING
        done = await store.finish(record.run_id, RunStatus.SUCCEEDED, fence=record.fence)
        assert done.status is RunStatus.SUCCEEDED
    finally:
        await pool.close()


async def test_an_unreachable_database_fails_after_the_retry_budget(tmp_path: Path) -> None:
    # min_size=0 opens nothing up front: every call meets the missing server.
    pool = await asyncpg.create_pool(
        f"postgresql://nobody@/postgres?host={tmp_path}", min_size=0, max_size=1, timeout=1
    )
    try:
        store = PostgresRunStore(pool, retry_for=timedelta(seconds=0.5))
        started = asyncio.get_running_loop().time()
        with pytest.raises(RunStoreUnavailable, match=r"did not answer within 0\.5 s"):
            await store.history()
        assert asyncio.get_running_loop().time() - started < 3
    finally:
        await pool.close()


async def test_a_renewal_racing_finishes_of_the_same_runs_does_not_deadlock(
    replicas: list[PostgresRunStore],
) -> None:
    # One worker's renewal (every run it holds, in the order it claimed them) and its finishes
    # (in the order its runs ended) lock overlapping rows: they must wait, not deadlock.
    renewer, finisher = replicas[0], replicas[1]
    for n in range(5):
        requests = [ClaimRequest(f"held{j}", tick(n), 1, Trigger.SCHEDULE) for j in range(300)]
        claimed = [r for r in await renewer.claim_many(requests, worker_id="w1") if r]
        done = [FinishRequest(r.run_id, RunStatus.SUCCEEDED, r.fence) for r in reversed(claimed)]
        with capture_logs() as logs:
            renewed, finished = await asyncio.gather(
                renewer.renew({r.run_id: r.fence for r in claimed}),
                finisher.finish_many(done),
            )
        assert [e for e in logs if e["event"] == "database_call_retrying"] == []
        assert {r.status for r in finished if r} == {RunStatus.SUCCEEDED}
        assert renewed <= {r.run_id for r in claimed}
