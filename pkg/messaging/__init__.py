"""Publishing events: the `Publisher` port, its in-memory twin and the RabbitMQ adapter.

from financial.pkg.messaging import Publisher, PublishError, MemoryPublisher, connect

The names load their modules on first use (PEP 562): the port is light, the RabbitMQ adapter
imports aio-pika (about 35 ms), which a command that only names the jobs does not need.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_HOMES = {
    "MemoryPublisher": "memory",
    "PublishedMessage": "memory",
    "JSON_CONTENT_TYPE": "publisher",
    "BrokerUnavailable": "publisher",
    "Publisher": "publisher",
    "PublishError": "publisher",
    "PublishFailure": "publisher",
    "RabbitPublisher": "rabbit",
    "connect": "rabbit",
    "describe_url": "rabbit",
    "mask_url": "rabbit",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
