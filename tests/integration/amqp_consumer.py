"""A test-side consumer: a queue bound to the test's exchange, read with a bounded wait."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue


@dataclass
class Received:
    routing_key: str
    message_id: str | None
    body: dict[str, Any]
    persistent: bool
    content_type: str | None


class Consumer:
    def __init__(self, queue: AbstractQueue) -> None:
        self.queue = queue

    async def take(self, count: int, timeout_s: float = 20.0) -> list[Received]:
        """Exactly `count` messages within `timeout_s` (fails when fewer arrive)."""
        got: list[Received] = []
        deadline = time.monotonic() + timeout_s
        while len(got) < count and time.monotonic() < deadline:
            message = await self.queue.get(no_ack=True, fail=False)
            if message is None:
                await asyncio.sleep(0.05)
                continue
            got.append(_received(message))
        assert len(got) == count, f"expected {count} messages within {timeout_s}s, got {got}"
        return got

    async def drain(self, settle_s: float = 1.0) -> list[Received]:
        """Whatever else arrives within `settle_s` (to prove there are no duplicates)."""
        await asyncio.sleep(settle_s)
        extra: list[Received] = []
        while (message := await self.queue.get(no_ack=True, fail=False)) is not None:
            extra.append(_received(message))
        return extra


def _received(message: AbstractIncomingMessage) -> Received:
    return Received(
        routing_key=message.routing_key or "",
        message_id=message.message_id,
        body=json.loads(message.body),
        persistent=message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT,
        content_type=message.content_type,
    )


@asynccontextmanager
async def consumer(url: str, exchange: str, routing_key: str) -> AsyncIterator[Consumer]:
    """A queue bound to `routing_key` on the durable topic `exchange` (declared if missing)."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        ex = await channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=True)
        queue = await channel.declare_queue("", exclusive=True)
        await queue.bind(ex, routing_key)
        yield Consumer(queue)
    finally:
        await connection.close()
