"""The transactional outbox: write events with the data they describe, relay them to the broker.

`add()` inserts an event in the caller's transaction, so the event exists if and only if the
data change committed. `relay_once()` publishes pending events in id order and marks them sent;
each keeps the `message_id` it was given at `add()` across every retry, so consumers can drop the
duplicates that at-least-once delivery allows (a relay that dies after a confirm but before its
commit publishes that event again).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import structlog

from financial.pkg.database.pool import Connection
from financial.pkg.database.queries import load_queries
from financial.pkg.messaging.publisher import Publisher, PublishError
from financial.pkg.observability.logging import mask_secrets

log = structlog.get_logger()

_SQL = load_queries("financial.pkg.outbox", "queries.sql")
_MAX_ERROR_CHARS = 2000


class OutboxError(RuntimeError):
    """An event that cannot go into the outbox as given."""


@dataclass(frozen=True, slots=True)
class RelayResult:
    """What one relay pass did: `sent` confirmed, `failed` left pending with an error.

    `stopped` is true when the pass gave up early on a connection-level failure (broker down or
    not answering); the events it did not try wait for the next pass.
    """

    sent: int
    failed: int
    stopped: bool = False


def _json_default(value: object) -> str:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _to_json(value: Mapping[str, Any], what: str, routing_key: str) -> str:
    try:
        return json.dumps(value, default=_json_default, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise OutboxError(
            f"outbox event {routing_key!r}: {what} cannot be stored as JSON ({exc}); expected "
            "a mapping of JSON values (datetimes, dates, UUIDs and Decimals become strings)"
        ) from exc


async def add(
    conn: Connection,
    routing_key: str,
    payload: Mapping[str, Any],
    *,
    headers: Mapping[str, Any] | None = None,
    message_id: str | None = None,
    available_at: datetime | None = None,
    require_transaction: bool = True,
) -> str:
    """Insert an event into the outbox on `conn` and return its `message_id` (a UUID string).

    Meant to run inside the transaction that changes the data the event describes; raises
    `OutboxError` when `conn` is not in a transaction (unless `require_transaction=False`).
    `available_at` delays the event; by default it is relayed at the next pass.
    """
    if not routing_key:
        raise OutboxError("outbox event with an empty routing key; expected a dotted topic")
    if not isinstance(payload, Mapping):
        raise OutboxError(
            f"outbox event {routing_key!r}: payload is a {type(payload).__name__}; expected a "
            "mapping (a JSON object)"
        )
    if require_transaction and not conn.is_in_transaction():
        raise OutboxError(
            f"outbox event {routing_key!r} written outside a transaction; expected add() inside "
            "the transaction that changes the data it describes (or require_transaction=False)"
        )
    try:
        event_id = uuid.UUID(message_id) if message_id is not None else uuid.uuid4()
    except ValueError as exc:
        raise OutboxError(
            f"outbox event {routing_key!r}: message_id {message_id!r} is not a UUID"
        ) from exc
    await conn.execute(
        _SQL["insert"],
        event_id,
        routing_key,
        _to_json(payload, "payload", routing_key),
        _to_json(headers or {}, "headers", routing_key),
        available_at,
    )
    return str(event_id)


def _failure_delay(
    connection_level: bool, attempts: int, retry_backoff: timedelta, max_retry_backoff: timedelta
) -> timedelta:
    if connection_level:
        # The broker, not the message, is the problem: retry as soon as it is back.
        return timedelta(0)
    return min(retry_backoff * (1 << min(attempts, 30)), max_retry_backoff)


async def relay_once(
    db: asyncpg.Pool | Connection,
    publisher: Publisher,
    *,
    batch_size: int = 100,
    retry_backoff: timedelta = timedelta(seconds=5),
    max_retry_backoff: timedelta = timedelta(minutes=10),
) -> RelayResult:
    """Publish up to `batch_size` pending events, oldest first, and mark each confirmed one sent.

    The batch is claimed with `FOR UPDATE SKIP LOCKED` and held until its transaction commits,
    so concurrent relays (replicas) never publish one row twice at the same time. A failed event
    stays pending with `attempts + 1` and `last_error`; one that failed on its own (unroutable,
    refused) waits `retry_backoff * 2**attempts` (at most `max_retry_backoff`) before its next
    try. A connection-level failure stops the batch: the other events wait for the next pass.
    """
    if batch_size < 1:
        raise ValueError(f"relay_once: batch_size={batch_size}; expected at least 1")
    if isinstance(db, asyncpg.Pool):
        async with db.acquire() as conn:
            return await _relay(conn, publisher, batch_size, retry_backoff, max_retry_backoff)
    return await _relay(db, publisher, batch_size, retry_backoff, max_retry_backoff)


async def _relay(
    conn: Connection,
    publisher: Publisher,
    batch_size: int,
    retry_backoff: timedelta,
    max_retry_backoff: timedelta,
) -> RelayResult:
    sent_ids: list[int] = []
    failed = 0
    stopped = False
    async with conn.transaction():
        rows = await conn.fetch(_SQL["claim_batch"], batch_size)
        for row in rows:
            message_id = str(row["message_id"])
            try:
                await publisher.publish(
                    row["routing_key"],
                    json.loads(row["payload"]),
                    message_id=message_id,
                    headers=json.loads(row["headers"]) or None,
                )
            except PublishError as exc:
                reason, connection_level, error = exc.reason.value, exc.connection_level, str(exc)
            except Exception as exc:
                # A bug, or an event no broker would take (a routing key over 255 bytes): it
                # must not hold back the events behind it, so it fails like an unroutable one.
                log.exception("outbox_publish_crashed", message_id=message_id)
                reason, connection_level = "error", False
                error = f"publish of message {message_id} failed: {type(exc).__name__}: {exc}"
            else:
                sent_ids.append(row["id"])
                continue
            failed += 1
            error = mask_secrets(error)[:_MAX_ERROR_CHARS]
            delay = _failure_delay(
                connection_level, row["attempts"], retry_backoff, max_retry_backoff
            )
            await conn.execute(_SQL["mark_failed"], row["id"], error, delay)
            log.warning(
                "outbox_publish_failed",
                message_id=message_id,
                routing_key=row["routing_key"],
                reason=reason,
                attempts=row["attempts"] + 1,
                error=error,
            )
            if connection_level:
                stopped = True
                break
        if sent_ids:
            await conn.execute(_SQL["mark_sent"], sent_ids)
    if rows:
        log.info(
            "outbox_relayed", sent=len(sent_ids), failed=failed, claimed=len(rows), stopped=stopped
        )
    return RelayResult(sent=len(sent_ids), failed=failed, stopped=stopped)


async def backlog(db: asyncpg.Pool | Connection) -> int:
    """How many events are waiting to be sent."""
    count = await db.fetchval(_SQL["backlog"])
    return int(count)


async def prune_sent(
    db: asyncpg.Pool | Connection, retention: timedelta, *, batch_size: int = 1000
) -> int:
    """Delete events sent more than `retention` ago, in batches; return how many went."""
    if retention < timedelta(0):
        raise ValueError(f"prune_sent: retention={retention}; expected zero or more")
    deleted = 0
    while True:
        status = await db.execute(_SQL["prune_sent"], retention, batch_size)
        count = int(status.split()[-1])
        deleted += count
        if count < batch_size:
            break
    if deleted:
        log.info("outbox_pruned", deleted=deleted, retention_s=retention.total_seconds())
    return deleted
