"""Database and broker child spans come from the OpenTelemetry asyncpg and aio-pika
instrumentations (`instrument_clients`), on real PostgreSQL and RabbitMQ; the health probe's
database ping makes none."""

from __future__ import annotations

from collections.abc import Iterator

import aio_pika
import asyncpg
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from financial.pkg.database.handle import Database
from financial.pkg.health import database_ping
from financial.pkg.observability.metrics import instrument_clients

pytestmark = pytest.mark.integration


@pytest.fixture
def traced() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    uninstrument = instrument_clients(provider)
    yield provider, exporter
    uninstrument()
    provider.shutdown()


async def test_a_query_in_a_run_is_a_client_span_of_the_run(
    traced: tuple[TracerProvider, InMemorySpanExporter], db_pool: asyncpg.Pool
) -> None:
    provider, exporter = traced
    with provider.get_tracer("test").start_as_current_span("job.run report") as run:
        assert await db_pool.fetchval("SELECT count(*) FROM job_runs WHERE job = $1", "x") == 0
    queries = [
        s
        for s in exporter.get_finished_spans()
        if s.kind is SpanKind.CLIENT and "job_runs" in str((s.attributes or {}).get("db.statement"))
    ]
    assert len(queries) == 1, [s.name for s in exporter.get_finished_spans()]
    query = queries[0]
    assert query.name == "SELECT"
    assert query.parent is not None
    assert query.parent.span_id == run.get_span_context().span_id
    assert query.attributes is not None and query.attributes.get("db.system") == "postgresql"
    # Bound parameters are not recorded: they may hold personal data.
    assert not any(str(v) == "x" for v in query.attributes.values())


async def test_the_readiness_ping_makes_no_span(
    traced: tuple[TracerProvider, InMemorySpanExporter], db_pool: asyncpg.Pool
) -> None:
    _, exporter = traced
    db = Database()
    db.attach(db_pool)
    exporter.clear()  # the fixtures' own statements (creating the test database)
    await database_ping(db)()
    assert exporter.get_finished_spans() == ()


async def test_a_publish_in_a_run_is_a_producer_span_of_the_run(
    traced: tuple[TracerProvider, InMemorySpanExporter], amqp_url: str
) -> None:
    provider, exporter = traced
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        with provider.get_tracer("test").start_as_current_span("job.run relay") as run:
            await channel.default_exchange.publish(
                aio_pika.Message(b"{}"), routing_key="financial.test.nowhere"
            )
    finally:
        await connection.close()
    producers = [s for s in exporter.get_finished_spans() if s.kind is SpanKind.PRODUCER]
    assert len(producers) == 1, [s.name for s in exporter.get_finished_spans()]
    assert producers[0].parent is not None
    assert producers[0].parent.span_id == run.get_span_context().span_id
