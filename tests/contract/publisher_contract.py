"""The contract every `Publisher` keeps, run against `MemoryPublisher` and `RabbitPublisher`.

A test module subclasses `PublisherContract` as `Test...` and provides two fixtures: `publisher`
(the implementation under test) and `inbox` (an `Inbox` that sees what the broker delivered for
one routing key, and knows a key nothing is bound to).
"""

from __future__ import annotations

import json
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import pytest

from financial.pkg.messaging import JSON_CONTENT_TYPE, Publisher, PublishError, PublishFailure


@dataclass(frozen=True, slots=True)
class Delivered:
    """A message as a consumer received it."""

    routing_key: str
    body: bytes
    content_type: str | None
    persistent: bool
    message_id: str | None
    headers: dict[str, Any] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.body)


class Inbox(ABC):
    """What a consumer bound to `routable_key` received."""

    routable_key: str
    unroutable_key: str

    @abstractmethod
    async def collect(self, count: int, *, timeout_s: float = 10.0) -> list[Delivered]:
        """Wait until `count` messages arrived (failing the test if not), then a little longer
        to catch extra deliveries; return all of them in arrival order."""


def new_id() -> str:
    return str(uuid.uuid4())


class PublisherContract:
    """Tests every publisher passes. Subclasses provide the `publisher` and `inbox` fixtures."""

    async def test_mapping_body_arrives_once_as_persistent_json(
        self, publisher: Publisher, inbox: Inbox
    ) -> None:
        message_id = new_id()
        body = {"report_id": "r-1", "counts": {"users": 3}, "note": "ação"}
        await publisher.publish(inbox.routable_key, body, message_id=message_id)

        [got] = await inbox.collect(1)
        assert got.routing_key == inbox.routable_key
        assert got.json() == body
        assert got.content_type == JSON_CONTENT_TYPE
        assert got.persistent is True
        assert got.message_id == message_id

    async def test_bytes_body_is_sent_unchanged(self, publisher: Publisher, inbox: Inbox) -> None:
        raw = b'{"already":"encoded"}'
        await publisher.publish(inbox.routable_key, raw, message_id=new_id())

        [got] = await inbox.collect(1)
        assert got.body == raw

    async def test_headers_are_carried(self, publisher: Publisher, inbox: Inbox) -> None:
        headers = {"trace_id": "abc123", "attempt": 2}
        await publisher.publish(inbox.routable_key, {}, message_id=new_id(), headers=headers)

        [got] = await inbox.collect(1)
        assert got.headers == headers

    async def test_messages_arrive_in_publish_order(
        self, publisher: Publisher, inbox: Inbox
    ) -> None:
        ids = [new_id() for _ in range(5)]
        for i, message_id in enumerate(ids):
            await publisher.publish(inbox.routable_key, {"n": i}, message_id=message_id)

        got = await inbox.collect(5)
        assert [m.message_id for m in got] == ids
        assert [m.json()["n"] for m in got] == list(range(5))

    async def test_unroutable_message_raises(self, publisher: Publisher, inbox: Inbox) -> None:
        message_id = new_id()
        with pytest.raises(PublishError) as caught:
            await publisher.publish(inbox.unroutable_key, {"x": 1}, message_id=message_id)

        assert caught.value.reason is PublishFailure.UNROUTABLE
        assert not caught.value.connection_level
        assert caught.value.routing_key == inbox.unroutable_key
        assert caught.value.message_id == message_id
        assert inbox.unroutable_key in str(caught.value)

    async def test_unroutable_message_does_not_break_later_publishes(
        self, publisher: Publisher, inbox: Inbox
    ) -> None:
        with pytest.raises(PublishError):
            await publisher.publish(inbox.unroutable_key, {}, message_id=new_id())
        await publisher.publish(inbox.routable_key, {"after": True}, message_id=new_id())

        [got] = await inbox.collect(1)
        assert got.json() == {"after": True}

    async def test_empty_routing_key_or_message_id_is_rejected(self, publisher: Publisher) -> None:
        with pytest.raises(ValueError, match="routing_key"):
            await publisher.publish("", {}, message_id=new_id())
        with pytest.raises(ValueError, match="message_id"):
            await publisher.publish("a.b", {}, message_id="")

    async def test_publish_after_close_raises_connection_error(
        self, publisher: Publisher, inbox: Inbox
    ) -> None:
        await publisher.close()
        await publisher.close()  # idempotent

        with pytest.raises(PublishError) as caught:
            await publisher.publish(inbox.routable_key, {}, message_id=new_id())
        assert caught.value.reason is PublishFailure.CONNECTION
        assert caught.value.connection_level
