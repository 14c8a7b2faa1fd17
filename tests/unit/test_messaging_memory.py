"""MemoryPublisher: the publisher contract, and its failure switches."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from financial.pkg.messaging import MemoryPublisher, PublishError, PublishFailure
from tests.contract.publisher_contract import Delivered, Inbox, PublisherContract, new_id


class MemoryInbox(Inbox):
    def __init__(self, publisher: MemoryPublisher) -> None:
        self.publisher = publisher
        self.routable_key = "contract.routed"
        self.unroutable_key = "contract.nobody.listens"

    async def collect(self, count: int, *, timeout_s: float = 10.0) -> list[Delivered]:
        await asyncio.sleep(0)
        got = [
            Delivered(
                routing_key=m.routing_key,
                body=m.body,
                content_type=m.content_type,
                persistent=m.persistent,
                message_id=m.message_id,
                headers=m.headers,
            )
            for m in self.publisher.by_key(self.routable_key)
        ]
        assert len(got) == count, f"expected {count} messages, got {len(got)}"
        return got


class TestMemoryPublisherContract(PublisherContract):
    @pytest.fixture
    async def publisher(self) -> AsyncIterator[MemoryPublisher]:
        publisher = MemoryPublisher(unroutable={"contract.nobody.*"})
        yield publisher
        await publisher.close()

    @pytest.fixture
    def inbox(self, publisher: MemoryPublisher) -> MemoryInbox:
        return MemoryInbox(publisher)


async def test_fail_with_fails_every_publish_until_recover() -> None:
    publisher = MemoryPublisher()
    publisher.fail_with(PublishFailure.TIMEOUT)

    for _ in range(2):
        with pytest.raises(PublishError) as caught:
            await publisher.publish("a.b", {}, message_id=new_id())
        assert caught.value.reason is PublishFailure.TIMEOUT
        assert caught.value.connection_level

    publisher.recover()
    await publisher.publish("a.b", {"ok": 1}, message_id="m-1")
    assert [m.message_id for m in publisher.messages] == ["m-1"]
    assert publisher.attempts == 3


async def test_fail_next_fails_only_that_many() -> None:
    publisher = MemoryPublisher()
    publisher.fail_next(2, PublishFailure.NACK)

    for _ in range(2):
        with pytest.raises(PublishError) as caught:
            await publisher.publish("a.b", {}, message_id=new_id())
        assert caught.value.reason is PublishFailure.NACK
        assert not caught.value.connection_level
    await publisher.publish("a.b", {}, message_id=new_id())
    assert len(publisher.messages) == 1


async def test_message_json_and_by_key() -> None:
    publisher = MemoryPublisher()
    await publisher.publish("x.one", {"n": 1}, message_id="1")
    await publisher.publish("x.two", {"n": 2}, message_id="2")

    [one] = publisher.by_key("x.one")
    assert one.json() == {"n": 1}
    assert one.persistent
    assert one.body == b'{"n":1}'


def test_publish_error_message_names_key_id_and_reason() -> None:
    error = PublishError(PublishFailure.UNROUTABLE, "nobody", routing_key="a.b", message_id="m")
    assert str(error) == "publish of message m with routing key 'a.b' failed (unroutable): nobody"
