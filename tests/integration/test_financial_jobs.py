"""The financial jobs against a real PostgreSQL and a real RabbitMQ."""

from __future__ import annotations

import contextlib
import json
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
import structlog

from financial.cmd.wiring import JOB_FAILED_ROUTING_KEY, dead_letter
from financial.internal.worker.jobs.database_cleanup import DatabaseCleanupJob
from financial.internal.worker.jobs.outbox_relay import OutboxRelayJob, OutboxUndelivered
from financial.internal.worker.jobs.report_generator import ReportGeneratorJob
from financial.pkg import outbox
from financial.pkg.database.handle import Database
from financial.pkg.jobs import JobContext, JobDefinitionError, RetryPolicy, cron_job
from financial.pkg.jobs.model import Trigger
from financial.pkg.messaging.rabbit import RabbitPublisher
from financial.pkg.scheduler.clock import SystemClock
from financial.pkg.scheduler.loop.scheduler import Scheduler, SchedulerConfig
from financial.pkg.scheduler.registry import JobRegistry
from financial.pkg.scheduler.store.memory import MemoryRunStore
from tests.integration.amqp_consumer import consumer
from tests.integration.services import RabbitBroker

pytestmark = pytest.mark.integration

TICK = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def ctx_for(job: str, scheduled_at: datetime = TICK) -> JobContext:
    return JobContext(
        job_name=job,
        run_id=str(uuid.uuid4()),
        scheduled_at=scheduled_at,
        attempt=1,
        deadline=scheduled_at + timedelta(minutes=5),
        trigger=Trigger.SCHEDULE,
        log=structlog.get_logger(),
    )


def database(pool: asyncpg.Pool) -> Database:
    db = Database()
    db.attach(pool)
    return db


async def test_cleanup_removes_exactly_the_rows_soft_deleted_before_the_cutoff(
    db_pool: asyncpg.Pool,
) -> None:
    cutoff = TICK - timedelta(days=90)
    old = [cutoff - timedelta(days=d) for d in (1, 2, 30, 400, 1)]
    recent = [cutoff + timedelta(seconds=1), cutoff + timedelta(days=10)]
    async with db_pool.acquire() as conn:
        user_id = await conn.fetchval("INSERT INTO users (email) VALUES ('a@x') RETURNING id")
        for n, deleted_at in enumerate([*old, *recent, None, None]):
            await conn.execute(
                "INSERT INTO categories (name, deleted_at) VALUES ($1, $2)", f"c{n}", deleted_at
            )
        # Budgets are not in the configured tables: an old soft-deleted one stays.
        await conn.execute(
            "INSERT INTO budgets (user_id, name, amount_cents, period_start, period_end,"
            " deleted_at) VALUES ($1, 'b', 1, '2020-01-01', '2020-02-01', $2)",
            user_id,
            cutoff - timedelta(days=5),
        )
    job = DatabaseCleanupJob(database(db_pool), tables=["categories"], batch_size=2)
    with structlog.testing.capture_logs() as logs:
        await job.run(ctx_for("database_cleanup"))
    rows = await db_pool.fetch("SELECT name, deleted_at FROM categories ORDER BY id")
    assert [r["deleted_at"] for r in rows] == [*recent, None, None]
    assert await db_pool.fetchval("SELECT count(*) FROM budgets") == 1
    done = [e for e in logs if e["event"] == "cleanup_table_done"]
    assert done == [
        {
            "event": "cleanup_table_done",
            "table": "categories",
            "deleted": 5,
            "cutoff": cutoff.isoformat(),
            "log_level": "info",
        }
    ]


def test_cleanup_refuses_a_table_outside_its_allowlist() -> None:
    with pytest.raises(JobDefinitionError, match="'users' cannot be cleaned"):
        DatabaseCleanupJob(Database(), tables=["categories", "users"])
    with pytest.raises(JobDefinitionError, match="cannot be cleaned"):
        DatabaseCleanupJob(Database(), tables=["categories; DROP TABLE users"])


async def _seed_counts(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        ids = [
            await conn.fetchval(
                "INSERT INTO users (email, deleted_at) VALUES ($1, $2) RETURNING id", email, gone
            )
            for email, gone in [("a@x", None), ("b@x", None), ("c@x", None), ("d@x", TICK)]
        ]
        for n, gone in enumerate([None, None, TICK]):
            await conn.execute(
                "INSERT INTO budgets (user_id, name, amount_cents, period_start, period_end,"
                " deleted_at) VALUES ($1, $2, 100, '2026-03-01', '2026-03-31', $3)",
                ids[0],
                f"b{n}",
                gone,
            )
        for n, gone in enumerate([None, None, None, None, TICK]):
            await conn.execute(
                "INSERT INTO invoices (user_id, number, amount_cents, deleted_at)"
                " VALUES ($1, $2, 500, $3)",
                ids[1],
                f"i{n}",
                gone,
            )


async def test_weekly_report_reaches_a_bound_queue_with_the_right_counts(
    db_pool: asyncpg.Pool, amqp_url: str, exchange_name: str
) -> None:
    await _seed_counts(db_pool)
    db = database(db_pool)
    publisher = RabbitPublisher(amqp_url, exchange_name)
    try:
        async with consumer(amqp_url, exchange_name, "reports.weekly.generated") as queue:
            await ReportGeneratorJob(db).run(ctx_for("report_generator"))
            await OutboxRelayJob(db, publisher).run(ctx_for("outbox_relay"))
            [message] = await queue.take(1)
            assert await queue.drain(0.3) == []
    finally:
        await publisher.close()
    body = message.body
    assert (body["users"], body["active_budgets"], body["invoices"]) == (3, 2, 4)
    assert body["scheduled_at"] == TICK.isoformat()
    assert message.message_id == body["report_id"]
    assert message.persistent
    assert message.content_type == "application/json"
    assert await outbox.backlog(db_pool) == 0


async def test_reports_wait_in_the_outbox_while_rabbitmq_is_down_and_arrive_once_each(
    db_pool: asyncpg.Pool, rabbitmq: RabbitBroker, exchange_name: str
) -> None:
    db = database(db_pool)
    publisher = RabbitPublisher(rabbitmq.url, exchange_name, publish_timeout_s=2.0)
    relay = OutboxRelayJob(db, publisher)
    ticks = [TICK + timedelta(weeks=n) for n in range(3)]
    try:
        async with consumer(rabbitmq.url, exchange_name, "reports.weekly.generated") as queue:
            rabbitmq.stop()
            for n, tick in enumerate(ticks, start=1):
                await ReportGeneratorJob(db).run(ctx_for("report_generator", tick))
                # A pass that could not publish fails (its run is recorded `failed`), saying
                # how many events wait; none is lost.
                with pytest.raises(OutboxUndelivered, match=f"{n} event.s. waiting") as failed:
                    await relay.run(ctx_for("outbox_relay", tick))
                assert failed.value.broker_down and failed.value.failed == 1
            assert await outbox.backlog(db_pool) == 3
            rows = await db_pool.fetch("SELECT attempts, last_error FROM outbox ORDER BY id")
            # Each pass stops at the first connection failure: the oldest event took every try.
            assert [r["attempts"] for r in rows] == [3, 0, 0]
            assert "cannot connect to RabbitMQ" in rows[0]["last_error"]
            assert "guest:guest" not in rows[0]["last_error"]
        rabbitmq.start()
        async with consumer(rabbitmq.url, exchange_name, "reports.weekly.generated") as queue:
            for n in range(20):
                # The first passes may still find the publisher reconnecting.
                with contextlib.suppress(OutboxUndelivered):
                    await relay.run(ctx_for("outbox_relay", TICK + timedelta(seconds=n)))
                if await outbox.backlog(db_pool) == 0:
                    break
            messages = await queue.take(3)
            assert await queue.drain(0.5) == []
    finally:
        await publisher.close()
    assert sorted(m.body["scheduled_at"] for m in messages) == [t.isoformat() for t in ticks]
    assert len({m.message_id for m in messages}) == 3


async def test_a_final_failure_writes_a_job_failed_event_to_the_outbox(
    db_pool: asyncpg.Pool,
) -> None:
    @cron_job(
        "0 3 * * *",
        name="always_fails",
        retry=RetryPolicy(max_retries=1, backoff="fixed", initial_delay=timedelta(0)),
    )
    async def always_fails(ctx: JobContext) -> None:
        raise ValueError(f"attempt {ctx.attempt} of a broken job")

    registry = JobRegistry()
    spec = registry.add(always_fails)
    scheduler = Scheduler(
        registry,
        store=MemoryRunStore(),
        clock=SystemClock(),
        config=SchedulerConfig(worker_id="it"),
        on_final_failure=dead_letter(database(db_pool)),
    )
    record = await scheduler.run_now(spec)
    assert record is not None
    row = await db_pool.fetchrow("SELECT routing_key, message_id, payload::text FROM outbox")
    assert row is not None
    assert row["routing_key"] == JOB_FAILED_ROUTING_KEY
    assert str(row["message_id"]) == record.run_id
    payload = json.loads(row["payload"])
    assert payload["job"] == "always_fails"
    assert payload["attempts"] == 2
    assert payload["status"] == "failed"
    assert payload["error_type"] == "ValueError"
    assert payload["error_message"] == "attempt 2 of a broken job"
