"""A real worker whose RabbitMQ traffic is black-holed: the relay must not hang the worker, the
events of the fault window are delivered once the traffic flows again, and no relay pass whose
publishes failed is recorded `succeeded`.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from financial.pkg.outbox import add
from tests.integration.amqp_consumer import Consumer, consumer
from tests.integration.faults.conftest import SpawnWorker
from tests.integration.faults.harness import Checks, recovered, stop_and_check
from tests.integration.faults.records import (
    DB_TIMEOUT_S,
    assert_one_final_record_per_tick,
    history,
    last_tick,
    records,
    show,
    utcnow,
    wait_history_settled,
)
from tests.integration.faults.tcp_proxy import TcpProxy
from tests.integration.services import RabbitBroker

pytestmark = pytest.mark.integration

SECOND = timedelta(seconds=1)
BLACKHOLE_S = 8.0
DELIVERY_BOUND_S = 25.0
ROUTING_KEY = "faults.relay"


async def add_events(dsn: str, count: int, phase: str) -> list[str]:
    """`count` events written to the outbox in one transaction, as a service would."""
    conn = await asyncpg.connect(dsn, timeout=DB_TIMEOUT_S)
    try:
        async with conn.transaction():
            return [await add(conn, ROUTING_KEY, {"phase": phase, "n": n}) for n in range(count)]
    finally:
        await conn.close()


async def outbox_state(dsn: str) -> list[dict[str, Any]]:
    """Every outbox row: its message id, failed attempts, last error and when it was sent."""
    conn = await asyncpg.connect(dsn, timeout=DB_TIMEOUT_S)
    try:
        rows = await conn.fetch(
            "SELECT message_id::text, attempts, last_error, sent_at FROM outbox ORDER BY id"
        )
        return [dict(row) for row in rows]
    finally:
        await conn.close()


async def receive(inbox: Consumer, wanted: set[str], bound_s: float) -> dict[str, float]:
    """Message ids of `wanted` that arrive within `bound_s`, with when (monotonic seconds)."""
    got: dict[str, float] = {}
    deadline = time.monotonic() + bound_s
    while not wanted <= got.keys() and time.monotonic() < deadline:
        message = await inbox.queue.get(no_ack=True, fail=False)
        if message is None:
            await asyncio.sleep(0.05)
        elif message.message_id is not None:
            got.setdefault(message.message_id, time.monotonic())
    return got


async def test_rabbitmq_traffic_black_holed_hangs_nothing_and_loses_no_event(
    fault_dsn: str,
    rabbitmq: RabbitBroker,
    exchange_name: str,
    spawn_worker: SpawnWorker,
    figures: dict[str, Any],
) -> None:
    checks = Checks(f"RabbitMQ traffic black-holed {BLACKHOLE_S:g} s (outbox_relay every second)")
    with TcpProxy(("127.0.0.1", rabbitmq.port)) as proxy:
        worker = spawn_worker(
            fault_dsn,
            ["heartbeat"],
            env={
                "RABBITMQ_URL": f"amqp://guest:guest@{proxy.address}/",
                "RABBITMQ_EXCHANGE": exchange_name,
                "WORKER_JOBS__OUTBOX_RELAY__SCHEDULE": "* * * * * *",
            },
        )
        async with consumer(rabbitmq.url, exchange_name, "faults.#") as inbox:
            await asyncio.to_thread(worker.started)
            before = await add_events(fault_dsn, 3, "before")
            arrived = await receive(inbox, set(before), 15.0)
            assert set(before) <= arrived.keys(), (
                f"events did not go through the proxy before the fault\n{worker.tail()}"
            )

            fault_started = utcnow()
            proxy.blackhole()
            during = await add_events(fault_dsn, 5, "during")
            await asyncio.sleep(BLACKHOLE_S)
            proxy.forward()
            fault_ended = utcnow()
            healed = time.monotonic()
            figures["fault_s"] = round((fault_ended - fault_started).total_seconds(), 2)

            delivered = await receive(inbox, set(during), DELIVERY_BOUND_S)
            missing = set(during) - delivered.keys()
            if not missing:
                figures["delivered_after_fault_s"] = round(max(delivered.values()) - healed, 2)
            checks.that(
                not missing,
                f"{len(missing)} of {len(during)} events written during the fault were not "
                f"delivered within {DELIVERY_BOUND_S:g} s after it",
            )
        await asyncio.to_thread(
            recovered, worker, checks, figures, fault_ended=fault_ended, job="heartbeat"
        )
        jobs = ["outbox_relay", "heartbeat"]
        settled = await asyncio.to_thread(wait_history_settled, fault_dsn, jobs, fault_ended, 10.0)
        figures["history_settled_s"] = settled
        recorded_until = await asyncio.to_thread(stop_and_check, worker, checks, figures)

    rows = await asyncio.to_thread(records, fault_dsn, *jobs)
    figures["history_of_fault_window"] = history(rows, fault_started, fault_ended)
    beats_in_fault = [
        r
        for r in rows
        if r["job"] == "heartbeat"
        and r["status"] == "succeeded"
        and fault_started + SECOND < r["scheduled_at"] < fault_ended - SECOND
    ]
    checks.that(
        bool(beats_in_fault), "no heartbeat run succeeded during the fault: the worker hung"
    )
    failed_passes = {
        str(e.get("run_id")) for e in worker.events if e.get("event") == "outbox_publish_failed"
    }
    figures["relay_passes_with_failed_publishes"] = len(failed_passes)
    relays = [r for r in rows if r["job"] == "outbox_relay"]
    false_successes = [
        r for r in relays if str(r["run_id"]) in failed_passes and r["status"] == "succeeded"
    ]
    checks.that(
        not false_successes,
        f"relay passes whose publishes failed recorded succeeded:\n{show(false_successes)}",
    )
    outbox = await outbox_state(fault_dsn)
    pending = [e for e in outbox if e["sent_at"] is None]
    checks.that(not pending, f"events still pending in the outbox: {pending}")
    # Whatever the log says: the outbox counts the failed publishes of each event.
    failed_publishes = sum(e["attempts"] for e in outbox)
    figures["failed_publishes_in_outbox"] = failed_publishes
    checks.that(
        failed_publishes == 0
        or any(r["status"] in ("failed", "timed_out", "interrupted") for r in relays),
        f"the outbox counts {failed_publishes} failed publishes, yet no relay pass is recorded "
        "as having failed",
    )
    last = last_tick(recorded_until, SECOND)
    for job in jobs:
        mine = [r for r in rows if r["job"] == job]
        checks.run(
            f"one final record per tick ({job})",
            lambda mine=mine: assert_one_final_record_per_tick(mine, SECOND, last=last),  # type: ignore[misc]
        )
    checks.verify(worker, rows)
