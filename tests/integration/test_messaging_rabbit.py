"""RabbitPublisher against a real broker: the publisher contract, connection errors, outages."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aio_pika
import pytest
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection

from financial.pkg.messaging import (
    BrokerUnavailable,
    PublishError,
    PublishFailure,
    RabbitPublisher,
    connect,
)
from tests.contract.publisher_contract import Delivered, Inbox, PublisherContract, new_id
from tests.integration.services import RabbitBroker, free_port

pytestmark = pytest.mark.integration


class RabbitInbox(Inbox):
    """A queue bound to `routable_key` on the test's exchange, consumed into a list."""

    def __init__(self, routable_key: str) -> None:
        self.routable_key = routable_key
        self.unroutable_key = "contract.nobody.listens"
        self.received: list[Delivered] = []
        self._arrived = asyncio.Event()

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        async with message.process():
            self.received.append(
                Delivered(
                    routing_key=message.routing_key or "",
                    body=message.body,
                    content_type=message.content_type,
                    persistent=message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT,
                    message_id=message.message_id,
                    headers=dict(message.headers),
                )
            )
            self._arrived.set()

    async def collect(self, count: int, *, timeout_s: float = 10.0) -> list[Delivered]:
        deadline = time.monotonic() + timeout_s
        while len(self.received) < count:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"expected {count} messages, got {len(self.received)}"
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                continue
        await asyncio.sleep(0.2)  # room for a duplicate to show up
        assert len(self.received) == count, f"expected {count} messages, got {self.received}"
        return list(self.received)


async def bound_inbox(
    amqp_url: str, exchange: str, routing_key: str
) -> tuple[AbstractRobustConnection, RabbitInbox]:
    """A consumer connection with an exclusive queue bound to `routing_key`."""
    connection = await aio_pika.connect_robust(amqp_url)
    channel = await connection.channel()
    ex = await channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=True)
    queue = await channel.declare_queue(exclusive=True)
    await queue.bind(ex, routing_key)
    inbox = RabbitInbox(routing_key)
    await queue.consume(inbox.on_message)
    return connection, inbox


class TestRabbitPublisherContract(PublisherContract):
    @pytest.fixture
    async def publisher(self, amqp_url: str, exchange_name: str) -> AsyncIterator[RabbitPublisher]:
        publisher = await connect(amqp_url, exchange_name, publish_timeout_s=5.0)
        yield publisher
        await publisher.close()

    @pytest.fixture
    async def inbox(
        self, amqp_url: str, exchange_name: str, publisher: RabbitPublisher
    ) -> AsyncIterator[RabbitInbox]:
        connection, inbox = await bound_inbox(amqp_url, exchange_name, "contract.routed")
        yield inbox
        await connection.close()


async def test_connect_to_a_broker_that_is_not_there_names_host_not_password() -> None:
    port = free_port()
    url = f"amqp://worker:s3cr3t-pw@127.0.0.1:{port}/"

    started = time.monotonic()
    with pytest.raises(BrokerUnavailable) as caught:
        await connect(url, "financial.events", connect_timeout_s=3.0)

    message = str(caught.value)
    assert f"127.0.0.1:{port}" in message
    assert "s3cr3t-pw" not in message
    assert "s3cr3t-pw" not in repr(caught.value.__cause__)
    assert "expected" in message
    assert caught.value.reason is PublishFailure.CONNECTION
    assert time.monotonic() - started < 5.0


async def test_wrong_password_is_a_clear_error_without_the_password(rabbitmq: RabbitBroker) -> None:
    url = f"amqp://guest:not-the-password@127.0.0.1:{rabbitmq.port}/"
    with pytest.raises(BrokerUnavailable) as caught:
        await connect(url, "financial.events", connect_timeout_s=5.0)
    assert "not-the-password" not in str(caught.value)
    assert f"127.0.0.1:{rabbitmq.port}" in str(caught.value)


async def test_publisher_that_never_connected_connects_on_first_publish(
    amqp_url: str, exchange_name: str
) -> None:
    publisher = RabbitPublisher(amqp_url, exchange_name)
    connection, inbox = await bound_inbox(amqp_url, exchange_name, "lazy.key")
    try:
        await publisher.publish("lazy.key", {"n": 1}, message_id="m-lazy")
        [got] = await inbox.collect(1)
        assert got.message_id == "m-lazy"
    finally:
        await publisher.close()
        await connection.close()


async def test_broker_outage_fails_fast_then_recovers(
    rabbitmq: RabbitBroker, exchange_name: str
) -> None:
    publisher = await connect(
        rabbitmq.url, exchange_name, publish_timeout_s=3.0, reconnect_interval_s=0.5
    )
    try:
        await asyncio.to_thread(rabbitmq.stop)

        started = time.monotonic()
        with pytest.raises(PublishError) as caught:
            await publisher.publish("outage.key", {}, message_id=new_id())
        assert caught.value.connection_level
        assert time.monotonic() - started < 3.5

        await asyncio.to_thread(rabbitmq.start)
        connection, inbox = await bound_inbox(rabbitmq.url, exchange_name, "outage.key")
        try:
            deadline = time.monotonic() + 15
            while not publisher.connected:
                assert time.monotonic() < deadline, "the publisher did not reconnect"
                await asyncio.sleep(0.1)
            await publisher.publish("outage.key", {"back": True}, message_id="m-back")
            [got] = await inbox.collect(1)
            assert got.message_id == "m-back"
        finally:
            await connection.close()
    finally:
        await publisher.close()
