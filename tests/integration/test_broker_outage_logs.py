"""RabbitMQ stopped under a running worker for about 12 s: quiet, useful logs and a truthful
relay. One warning when the broker goes, one when it is back with how long it was away, no
third-party traceback, the relay's passes recorded `failed` while its events wait, and every
event delivered once the broker is back."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from financial.pkg import outbox
from tests.integration.amqp_consumer import consumer
from tests.integration.services import RabbitBroker
from tests.integration.worker_process import WorkerProcess

pytestmark = pytest.mark.integration

OUTAGE_S = 12.0


def third_party(event: dict[str, Any]) -> bool:
    return not str(event.get("logger", "financial")).startswith("financial")


async def test_a_broker_outage_gives_two_warnings_and_failed_relay_runs(
    db_pool: asyncpg.Pool,
    database_dsn: str,
    rabbitmq: RabbitBroker,
    exchange_name: str,
    open_tmp_path: Path,
) -> None:
    env = {
        "DATABASE_URL": database_dsn,
        "RABBITMQ_URL": rabbitmq.url,
        "RABBITMQ_EXCHANGE": exchange_name,
        "WORKER_JOBS__OUTBOX_RELAY__SCHEDULE": "@every 1s",
    }
    worker = WorkerProcess("worker", cwd=open_tmp_path, env=env)
    try:
        worker.wait_event("job_succeeded", job="outbox_relay")
        before = len(worker.events)
        rabbitmq.stop()
        stopped_at = time.monotonic()
        async with db_pool.acquire() as conn, conn.transaction():
            message_id = await outbox.add(conn, "test.outage", {"n": 1})
        worker.wait_event("dependency_unavailable", dependency="rabbitmq")
        await asyncio.sleep(max(OUTAGE_S - (time.monotonic() - stopped_at), 0.0))
        during = worker.events[before:]
        rabbitmq.start()
        async with consumer(rabbitmq.url, exchange_name, "test.outage") as queue:
            restored = worker.wait_event("dependency_restored", dependency="rabbitmq", timeout_s=30)
            [got] = await queue.take(1, timeout_s=30)
        worker.wait_event("job_succeeded", job="outbox_relay", timeout_s=20)
        worker.signal(signal.SIGTERM)
        assert worker.wait_exit() == 0
    finally:
        worker.kill()

    names = [e["event"] for e in worker.events]
    assert names.count("dependency_unavailable") == 1
    assert names.count("dependency_restored") == 1
    assert restored["down_for_s"] >= OUTAGE_S - 2
    # The drivers' reconnect loops: at most the first line of each, never a traceback.
    noisy = [e for e in during if third_party(e)]
    assert len(noisy) <= 3
    assert not any("exception" in e for e in worker.events if third_party(e))
    # The relay's passes while the broker was away: recorded failed, saying what waits.
    failures = [e for e in during if e["event"] == "job_failed" and e["job"] == "outbox_relay"]
    assert len(failures) >= 5
    assert all(e["error_type"] == "OutboxUndelivered" for e in failures)
    assert "waiting in the outbox" in failures[-1]["error"]
    rows = await db_pool.fetch(
        "SELECT status, error_type, error_message FROM job_runs"
        " WHERE job = 'outbox_relay' AND status = 'failed'"
    )
    assert len(rows) >= 5 and {r["error_type"] for r in rows} == {"OutboxUndelivered"}
    # Nothing lost, nothing added: the event arrived, and no job.failed event piled up.
    assert got.message_id == message_id
    assert await outbox.backlog(db_pool) == 0
    assert (
        await db_pool.fetchval("SELECT count(*) FROM outbox WHERE routing_key = 'job.failed'") == 0
    )
    counts = {name: [e["event"] for e in during].count(name) for name in ("job_failed",)}
    traceback_lines = len(str(failures[-1].get("exception", "")).splitlines())
    print(
        f"\noutage {OUTAGE_S:g} s: {len(during)} lines ({counts}), {len(noisy)} third-party, "
        f"traceback of job_failed: {traceback_lines} lines"
    )
