"""The outbox against real PostgreSQL and RabbitMQ: add, relay, outages, unroutable, concurrency."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from financial.pkg.messaging import MemoryPublisher, PublishFailure, RabbitPublisher, connect
from financial.pkg.outbox import RelayResult, add, backlog, prune_sent, relay_once
from tests.integration.services import RabbitBroker
from tests.integration.test_messaging_rabbit import bound_inbox

pytestmark = pytest.mark.integration


async def add_events(pool: asyncpg.Pool, routing_key: str, count: int) -> list[str]:
    ids: list[str] = []
    async with pool.acquire() as conn, conn.transaction():
        for n in range(count):
            ids.append(await add(conn, routing_key, {"n": n}))
    return ids


async def outbox_row(pool: asyncpg.Pool, message_id: str) -> asyncpg.Record:
    row = await pool.fetchrow("SELECT * FROM outbox WHERE message_id = $1", uuid.UUID(message_id))
    assert row is not None
    return row


@pytest.fixture
async def rabbit_publisher(amqp_url: str, exchange_name: str) -> AsyncIterator[RabbitPublisher]:
    publisher = await connect(
        amqp_url, exchange_name, publish_timeout_s=3.0, reconnect_interval_s=0.5
    )
    yield publisher
    await publisher.close()


async def test_event_is_published_once_with_its_message_id_and_marked_sent(
    db_pool: asyncpg.Pool, rabbit_publisher: RabbitPublisher, amqp_url: str, exchange_name: str
) -> None:
    connection, inbox = await bound_inbox(amqp_url, exchange_name, "budgets.created")
    try:
        async with db_pool.acquire() as conn, conn.transaction():
            await conn.execute("INSERT INTO users (email) VALUES ('a@example.com')")
            message_id = await add(
                conn,
                "budgets.created",
                {"budget_id": 7, "at": datetime(2025, 3, 1, tzinfo=UTC)},
                headers={"trace_id": "t-1"},
            )

        result = await relay_once(db_pool, rabbit_publisher, batch_size=10)

        assert result == RelayResult(sent=1, failed=0)
        [got] = await inbox.collect(1)
        assert got.message_id == message_id
        assert got.json() == {"budget_id": 7, "at": "2025-03-01T00:00:00+00:00"}
        assert got.headers == {"trace_id": "t-1"}
        assert got.persistent
        row = await outbox_row(db_pool, message_id)
        assert row["sent_at"] is not None
        assert row["attempts"] == 0
        assert await backlog(db_pool) == 0
        # A second pass finds nothing to do and publishes nothing again.
        assert await relay_once(db_pool, rabbit_publisher) == RelayResult(sent=0, failed=0)
        await inbox.collect(1)
    finally:
        await connection.close()


async def test_events_of_a_rolled_back_transaction_never_exist(db_pool: asyncpg.Pool) -> None:
    async with db_pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        await add(conn, "users.created", {"id": 1})
        await transaction.rollback()
    assert await backlog(db_pool) == 0


async def test_broker_down_events_wait_and_all_arrive_once_after_it_is_back(
    db_pool: asyncpg.Pool,
    rabbit_publisher: RabbitPublisher,
    rabbitmq: RabbitBroker,
    exchange_name: str,
) -> None:
    ids = await add_events(db_pool, "invoices.paid", 5)
    await asyncio.to_thread(rabbitmq.stop)

    down = await relay_once(db_pool, rabbit_publisher, batch_size=10)

    assert down.sent == 0
    assert down.stopped
    assert await backlog(db_pool) == 5
    first = await outbox_row(db_pool, ids[0])
    assert first["attempts"] == 1
    assert "connection" in first["last_error"]
    assert "guest:guest" not in first["last_error"]
    assert first["sent_at"] is None

    await asyncio.to_thread(rabbitmq.start)
    connection, inbox = await bound_inbox(rabbitmq.url, exchange_name, "invoices.paid")
    try:
        deadline = time.monotonic() + 20
        while await backlog(db_pool) > 0:
            assert time.monotonic() < deadline, "the outbox did not drain after the restart"
            await relay_once(db_pool, rabbit_publisher, batch_size=10)
            await asyncio.sleep(0.2)
        got = await inbox.collect(5)
        assert sorted(m.message_id or "" for m in got) == sorted(ids)
        assert [m.json()["n"] for m in got] == list(range(5))
    finally:
        await connection.close()


async def test_unroutable_event_stays_pending_with_an_error_and_others_go_on(
    db_pool: asyncpg.Pool, rabbit_publisher: RabbitPublisher, amqp_url: str, exchange_name: str
) -> None:
    connection, inbox = await bound_inbox(amqp_url, exchange_name, "reports.weekly.generated")
    try:
        async with db_pool.acquire() as conn, conn.transaction():
            lost = await add(conn, "nobody.listens.here", {"x": 1})
            kept = await add(conn, "reports.weekly.generated", {"x": 2})

        result = await relay_once(db_pool, rabbit_publisher)

        assert result == RelayResult(sent=1, failed=1, stopped=False)
        [got] = await inbox.collect(1)
        assert got.message_id == kept
        row = await outbox_row(db_pool, lost)
        assert row["sent_at"] is None
        assert row["attempts"] == 1
        assert PublishFailure.UNROUTABLE.value in row["last_error"]
        # It is not retried at once: the next try waits for the back-off.
        assert row["available_at"] > row["created_at"]
        assert await relay_once(db_pool, rabbit_publisher) == RelayResult(sent=0, failed=0)
    finally:
        await connection.close()


class SlowRecordingPublisher(MemoryPublisher):
    """Publishes slowly, so two relays overlap, into a list shared by both."""

    def __init__(self, shared: list[str]) -> None:
        super().__init__()
        self.shared = shared

    async def publish(
        self,
        routing_key: str,
        body: bytes | Mapping[str, Any],
        *,
        message_id: str,
        headers: Mapping[str, Any] | None = None,
    ) -> None:
        await asyncio.sleep(0.002)
        await super().publish(routing_key, body, message_id=message_id, headers=headers)
        self.shared.append(message_id)


async def test_concurrent_relays_never_publish_one_event_twice(db_pool: asyncpg.Pool) -> None:
    ids = await add_events(db_pool, "categories.changed", 120)
    published: list[str] = []

    async def relay_until_empty(publisher: MemoryPublisher) -> int:
        passes = 0
        while await backlog(db_pool) > 0:
            await relay_once(db_pool, publisher, batch_size=7)
            passes += 1
        return passes

    first, second = SlowRecordingPublisher(published), SlowRecordingPublisher(published)
    await asyncio.gather(relay_until_empty(first), relay_until_empty(second))

    assert sorted(published) == sorted(ids)
    assert len(published) == len(set(published))
    # Both relays did part of the work: the rows were shared out, not serialised on one.
    assert first.messages
    assert second.messages


async def test_delayed_event_waits_for_its_time(db_pool: asyncpg.Pool) -> None:
    publisher = MemoryPublisher()
    async with db_pool.acquire() as conn, conn.transaction():
        await add(conn, "later", {}, available_at=datetime.now(UTC) + timedelta(hours=1))

    assert await relay_once(db_pool, publisher) == RelayResult(sent=0, failed=0)
    assert await backlog(db_pool) == 1


async def test_prune_sent_removes_only_old_sent_events(db_pool: asyncpg.Pool) -> None:
    publisher = MemoryPublisher()
    ids = await add_events(db_pool, "users.created", 5)
    await relay_once(db_pool, publisher, batch_size=3)  # 3 sent, 2 pending
    await db_pool.execute(
        "UPDATE outbox SET sent_at = now() - interval '10 days' WHERE message_id = $1",
        uuid.UUID(ids[0]),
    )

    assert await prune_sent(db_pool, timedelta(days=7), batch_size=1) == 1
    assert await prune_sent(db_pool, timedelta(days=7)) == 0
    assert await db_pool.fetchval("SELECT count(*) FROM outbox") == 4
    assert await backlog(db_pool) == 2
    assert await prune_sent(db_pool, timedelta(0)) == 2
    assert await backlog(db_pool) == 2


async def test_an_event_no_broker_accepts_does_not_hold_back_the_others(
    db_pool: asyncpg.Pool,
) -> None:
    publisher = MemoryPublisher()
    async with db_pool.acquire() as conn, conn.transaction():
        poison = await add(conn, "x" * 300, {})  # AMQP routing keys stop at 255 bytes
        fine = await add(conn, "users.created", {})

    assert await relay_once(db_pool, publisher) == RelayResult(sent=1, failed=1)
    assert [m.message_id for m in publisher.messages] == [fine]
    row = await outbox_row(db_pool, poison)
    assert row["attempts"] == 1
    assert "ValueError" in row["last_error"]
