"""Publishing events: the `Publisher` port, its in-memory twin and the RabbitMQ adapter.

from financial.pkg.messaging import Publisher, PublishError, MemoryPublisher, connect
"""

from __future__ import annotations

from financial.pkg.messaging.memory import MemoryPublisher, PublishedMessage
from financial.pkg.messaging.publisher import (
    JSON_CONTENT_TYPE,
    BrokerUnavailable,
    Publisher,
    PublishError,
    PublishFailure,
)
from financial.pkg.messaging.rabbit import RabbitPublisher, connect, describe_url, mask_url

__all__ = [
    "JSON_CONTENT_TYPE",
    "BrokerUnavailable",
    "MemoryPublisher",
    "PublishError",
    "PublishFailure",
    "PublishedMessage",
    "Publisher",
    "RabbitPublisher",
    "connect",
    "describe_url",
    "mask_url",
]
