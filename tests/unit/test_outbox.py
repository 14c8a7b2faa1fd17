"""Outbox logic that needs no database: validation in add(), masking, back-off, the query file."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

import pytest

from financial.pkg.database.pool import Connection
from financial.pkg.database.queries import QueryFileError, load_queries, parse_queries
from financial.pkg.messaging import PublishError, PublishFailure
from financial.pkg.observability.logging import mask_secrets
from financial.pkg.outbox import OutboxError, add
from financial.pkg.outbox.outbox import _failure_delay


class FakeConnection:
    """Just enough of an asyncpg connection for add(): records what it was asked to run."""

    def __init__(self, *, in_transaction: bool = True) -> None:
        self.in_transaction = in_transaction
        self.executed: list[tuple[str, tuple[Any, ...]]] = []

    def is_in_transaction(self) -> bool:
        return self.in_transaction

    async def execute(self, query: str, *args: Any) -> str:
        self.executed.append((query, args))
        return "INSERT 0 1"


def fake(conn: FakeConnection) -> Connection:
    return cast("Connection", conn)


async def test_add_inserts_json_and_returns_a_uuid() -> None:
    conn = FakeConnection()
    at = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)

    message_id = await add(
        fake(conn),
        "budgets.created",
        {"at": at, "amount": Decimal("1.50"), "id": uuid.UUID(int=1), "name": "ação"},
        headers={"trace_id": "t"},
    )

    [(query, args)] = conn.executed
    assert "INSERT INTO outbox" in query
    assert args[0] == uuid.UUID(message_id)
    assert args[1] == "budgets.created"
    assert args[2] == (
        '{"at":"2025-01-02T03:04:05+00:00","amount":"1.50",'
        '"id":"00000000-0000-0000-0000-000000000001","name":"ação"}'
    )
    assert args[3] == '{"trace_id":"t"}'
    assert args[4] is None


async def test_add_keeps_a_given_message_id() -> None:
    conn = FakeConnection()
    given = str(uuid.uuid4())
    assert await add(fake(conn), "k", {}, message_id=given) == given


@pytest.mark.parametrize(
    ("routing_key", "payload", "kwargs", "match"),
    [
        ("", {}, {}, "empty routing key"),
        ("k", ["not", "a", "mapping"], {}, "expected a mapping"),
        ("k", {"x": object()}, {}, "cannot be stored as JSON"),
        ("k", {}, {"headers": {"h": {1, 2}}}, "headers cannot be stored as JSON"),
        ("k", {}, {"message_id": "not-a-uuid"}, "is not a UUID"),
    ],
)
async def test_add_refuses_bad_events(
    routing_key: str, payload: Any, kwargs: dict[str, Any], match: str
) -> None:
    conn = FakeConnection()
    with pytest.raises(OutboxError, match=match):
        await add(fake(conn), routing_key, payload, **kwargs)
    assert conn.executed == []


async def test_add_outside_a_transaction_is_refused_unless_asked_for() -> None:
    conn = FakeConnection(in_transaction=False)
    with pytest.raises(OutboxError, match="outside a transaction"):
        await add(fake(conn), "k", {})

    await add(fake(conn), "k", {}, require_transaction=False)
    assert len(conn.executed) == 1


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("amqp://guest:guest@127.0.0.1:5672/ down", "amqp://guest:***@127.0.0.1:5672/ down"),
        ("postgresql://u:p@ss@db/x", "postgresql://u:***@db/x"),
        ("dsn host=db password=hunter2 dbname=x", "dsn host=db password=*** dbname=x"),
        ("no secrets here", "no secrets here"),
    ],
)
def test_mask_secrets(text: str, masked: str) -> None:
    assert mask_secrets(text) == masked


@pytest.mark.parametrize(
    ("reason", "attempts", "delay_s"),
    [
        (PublishFailure.CONNECTION, 0, 0),
        (PublishFailure.TIMEOUT, 7, 0),
        (PublishFailure.UNROUTABLE, 0, 5),
        (PublishFailure.UNROUTABLE, 1, 10),
        (PublishFailure.NACK, 3, 40),
        (PublishFailure.UNROUTABLE, 10, 600),
        (PublishFailure.UNROUTABLE, 10_000, 600),
    ],
)
def test_failure_delay(reason: PublishFailure, attempts: int, delay_s: int) -> None:
    error = PublishError(reason, "x", routing_key="k", message_id="m")
    delay = _failure_delay(
        error.connection_level, attempts, timedelta(seconds=5), timedelta(minutes=10)
    )
    assert delay == timedelta(seconds=delay_s)


def test_outbox_query_file_has_every_query() -> None:
    queries = load_queries("financial.pkg.outbox", "queries.sql")
    assert set(queries) == {
        "insert",
        "claim_batch",
        "mark_sent",
        "mark_failed",
        "backlog",
        "prune_sent",
    }
    assert "FOR UPDATE SKIP LOCKED" in queries["claim_batch"]
    assert not any(sql.endswith(";") for sql in queries.values())


def test_parse_queries_rejects_malformed_files() -> None:
    with pytest.raises(QueryFileError, match="no '-- name"):
        parse_queries("SELECT 1;")
    with pytest.raises(QueryFileError, match="defined twice"):
        parse_queries("-- name: a\nSELECT 1;\n-- name: a\nSELECT 2;")
    with pytest.raises(QueryFileError, match="is empty"):
        parse_queries("-- name: a\n-- name: b\nSELECT 2;")
