"""The in-memory publisher: records what was published and fails on request, for tests."""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from financial.pkg.messaging.publisher import (
    JSON_CONTENT_TYPE,
    Publisher,
    PublishError,
    PublishFailure,
    check_publish_args,
    encode_body,
)


@dataclass(frozen=True, slots=True)
class PublishedMessage:
    """A message as the broker would have received it."""

    routing_key: str
    body: bytes
    message_id: str
    headers: dict[str, Any] = field(default_factory=dict)
    content_type: str = JSON_CONTENT_TYPE
    persistent: bool = True

    def json(self) -> Any:
        return json.loads(self.body)


class MemoryPublisher(Publisher):
    """The in-memory twin of `RabbitPublisher`.

    Every key is routable unless it matches one of `unroutable` (fnmatch patterns). `fail_with`
    makes every publish fail until `recover()`; `fail_next` makes only the next few fail.
    """

    def __init__(self, *, unroutable: set[str] | None = None) -> None:
        self.messages: list[PublishedMessage] = []
        self.unroutable: set[str] = set(unroutable or ())
        self.attempts = 0
        self._failure: PublishFailure | None = None
        self._fail_next: list[PublishFailure] = []
        self._closed = False

    def fail_with(self, reason: PublishFailure = PublishFailure.CONNECTION) -> None:
        """Fail every publish with `reason` until `recover()` (a broker outage)."""
        self._failure = reason

    def fail_next(self, count: int = 1, reason: PublishFailure = PublishFailure.CONNECTION) -> None:
        """Fail the next `count` publishes with `reason`, then go back to normal."""
        self._fail_next.extend([reason] * count)

    def recover(self) -> None:
        """End `fail_with` and forget pending `fail_next` failures."""
        self._failure = None
        self._fail_next.clear()

    def by_key(self, routing_key: str) -> list[PublishedMessage]:
        """The messages published under `routing_key`, in order."""
        return [m for m in self.messages if m.routing_key == routing_key]

    async def publish(
        self,
        routing_key: str,
        body: bytes | Mapping[str, Any],
        *,
        message_id: str,
        headers: Mapping[str, Any] | None = None,
    ) -> None:
        check_publish_args(routing_key, message_id)
        payload = encode_body(body)
        self.attempts += 1

        def fail(reason: PublishFailure, detail: str) -> PublishError:
            return PublishError(reason, detail, routing_key=routing_key, message_id=message_id)

        if self._closed:
            raise fail(PublishFailure.CONNECTION, "the publisher is closed")
        if self._fail_next:
            raise fail(self._fail_next.pop(0), "failure injected by fail_next()")
        if self._failure is not None:
            raise fail(self._failure, "failure injected by fail_with()")
        if any(fnmatch.fnmatchcase(routing_key, p) for p in self.unroutable):
            raise fail(
                PublishFailure.UNROUTABLE,
                "no queue is bound for this routing key (NO_ROUTE); expected a consumer's "
                "queue bound to the exchange",
            )
        self.messages.append(
            PublishedMessage(
                routing_key=routing_key,
                body=payload,
                message_id=message_id,
                headers=dict(headers or {}),
            )
        )

    async def close(self) -> None:
        self._closed = True
