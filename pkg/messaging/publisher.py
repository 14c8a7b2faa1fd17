"""The publisher port: send one event to the broker and know it arrived, or get `PublishError`.

Implementations: `MemoryPublisher` (tests, and running without a broker) and `RabbitPublisher`.
Both pass the contract suite in `tests/contract/publisher_contract.py`.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

JSON_CONTENT_TYPE = "application/json"


class PublishFailure(StrEnum):
    """Why a publish failed."""

    UNROUTABLE = "unroutable"
    """The broker has no queue bound for the routing key (the message was returned)."""
    NACK = "nack"
    """The broker refused the message (negative confirm)."""
    TIMEOUT = "timeout"
    """No confirm within the publish timeout: the message may or may not have arrived."""
    CONNECTION = "connection"
    """No usable connection to the broker (down, lost, closed, refused the login)."""


class PublishError(Exception):
    """A message was not confirmed by the broker. The message never shows a password.

    `reason` says why; `connection_level` is true when the next publishes would fail the same way
    (the broker is unreachable or not answering), so a batch should stop rather than try each one.
    """

    def __init__(
        self,
        reason: PublishFailure,
        detail: str,
        *,
        routing_key: str | None = None,
        message_id: str | None = None,
    ) -> None:
        self.reason = reason
        self.detail = detail
        self.routing_key = routing_key
        self.message_id = message_id
        subject = (
            f"publish of message {message_id} with routing key {routing_key!r}"
            if routing_key is not None
            else "publish"
        )
        super().__init__(f"{subject} failed ({reason.value}): {detail}")

    @property
    def connection_level(self) -> bool:
        return self.reason in (PublishFailure.CONNECTION, PublishFailure.TIMEOUT)


class BrokerUnavailable(PublishError):
    """The broker could not be reached at connect time."""

    def __init__(self, detail: str, *, target: str) -> None:
        self.target = target
        super().__init__(PublishFailure.CONNECTION, detail)


class Publisher(ABC):
    """Where events go: a topic exchange on RabbitMQ, or a list in memory.

    `publish` returns only once the broker has confirmed the message (persistent, routed to at
    least one queue). Every message carries `message_id`, stable across retries, so consumers can
    drop the duplicates that at-least-once delivery allows.
    """

    @abstractmethod
    async def publish(
        self,
        routing_key: str,
        body: bytes | Mapping[str, Any],
        *,
        message_id: str,
        headers: Mapping[str, Any] | None = None,
    ) -> None:
        """Publish `body` (JSON bytes, or a mapping encoded as JSON) under `routing_key`.

        Raises `PublishError` when the message is unroutable, refused, not confirmed in time, or
        the broker cannot be reached.
        """

    @abstractmethod
    async def close(self) -> None:
        """Release the connection. Idempotent; publishing afterwards raises `PublishError`."""


def encode_body(body: bytes | Mapping[str, Any]) -> bytes:
    """The wire form of a body: bytes as given, a mapping as compact UTF-8 JSON."""
    if isinstance(body, bytes | bytearray | memoryview):
        return bytes(body)
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def check_publish_args(routing_key: str, message_id: str) -> None:
    """Reject what no broker would accept, before touching the network."""
    if not routing_key:
        raise ValueError("publish: routing_key is empty; expected a dotted topic like a.b.c")
    if not message_id:
        raise ValueError(f"publish to {routing_key!r}: message_id is empty; expected a stable id")
    if len(routing_key.encode()) > 255:
        raise ValueError(f"publish: routing key of {len(routing_key)} characters; at most 255")
