"""The transactional outbox: `add` events in the data's transaction, `relay_once` publishes them.

from financial.pkg.outbox import add, relay_once, backlog, prune_sent, RelayResult
"""

from __future__ import annotations

from financial.pkg.outbox.outbox import (
    OutboxError,
    RelayResult,
    add,
    backlog,
    prune_sent,
    relay_once,
)

__all__ = [
    "OutboxError",
    "RelayResult",
    "add",
    "backlog",
    "prune_sent",
    "relay_once",
]
