"""Tracing: the span of a run, its log correlation, child spans, and a bounded shutdown."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
import structlog
from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_INSTANCE_ID, SERVICE_NAME
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode, Tracer
from structlog.testing import capture_logs

from financial.pkg.jobs.context import JobContext
from financial.pkg.jobs.model import RunStatus
from financial.pkg.observability import tracing
from financial.pkg.observability.tracing import (
    child_span,
    current_span_id,
    current_trace_id,
    setup_tracing,
    with_tracing,
)
from financial.pkg.scheduler.clock import FakeClock
from financial.pkg.scheduler.execution.chain import (
    SUCCEEDED,
    Outcome,
    RunTimeoutError,
    Step,
    Wrapper,
    compose,
    with_logging,
    with_recovery,
)
from tests.unit.scheduling import job_context


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracer(exporter: InMemorySpanExporter) -> Iterator[Tracer]:
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider.get_tracer("test")
    provider.shutdown()


def returning(outcome: Outcome) -> Step:
    async def step(ctx: JobContext) -> Outcome:
        return outcome

    return step


def only_span(exporter: InMemorySpanExporter) -> ReadableSpan:
    spans = exporter.get_finished_spans()
    assert len(spans) == 1, spans
    return spans[0]


def exception_event(span: ReadableSpan) -> dict[str, object]:
    events = [e for e in span.events if e.name == "exception"]
    assert len(events) == 1, span.events
    return dict(events[0].attributes or {})


async def test_a_successful_attempt_makes_one_span_with_the_run_attributes(
    tracer: Tracer, exporter: InMemorySpanExporter
) -> None:
    outcome = await with_tracing(tracer)(returning(SUCCEEDED))(job_context(attempt=2))

    assert outcome is SUCCEEDED
    span = only_span(exporter)
    assert span.name == "job.run nightly_report"
    assert span.kind is SpanKind.INTERNAL
    assert dict(span.attributes or {}) == {
        "job.name": "nightly_report",
        "job.run_id": "run-1",
        "job.scheduled_at": "2026-01-05T02:30:00+00:00",
        "job.attempt": 2,
        "job.trigger": "schedule",
        "job.status": "succeeded",
    }
    assert span.status.status_code is StatusCode.UNSET
    assert span.events == ()


async def test_a_failed_outcome_sets_error_and_records_the_exception(
    tracer: Tracer, exporter: InMemorySpanExporter
) -> None:
    error = ValueError("bad row 7")
    await with_tracing(tracer)(returning(Outcome(RunStatus.FAILED, error)))(job_context())

    span = only_span(exporter)
    assert span.attributes is not None and span.attributes["job.status"] == "failed"
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "ValueError: bad row 7"
    event = exception_event(span)
    assert event["exception.type"] == "ValueError"
    assert event["exception.message"] == "bad row 7"


async def test_a_timed_out_outcome_is_an_error_with_the_timeout_recorded(
    tracer: Tracer, exporter: InMemorySpanExporter
) -> None:
    error = RunTimeoutError("run of 'nightly_report' passed its deadline")
    await with_tracing(tracer)(returning(Outcome(RunStatus.TIMED_OUT, error)))(job_context())

    span = only_span(exporter)
    assert span.attributes is not None and span.attributes["job.status"] == "timed_out"
    assert span.status.status_code is StatusCode.ERROR
    assert str(exception_event(span)["exception.type"]).endswith("RunTimeoutError")


async def test_credentials_in_a_recorded_exception_are_masked(
    tracer: Tracer, exporter: InMemorySpanExporter
) -> None:
    error = ConnectionError("cannot reach postgresql://app:hunter2@db:5432/app")
    await with_tracing(tracer)(returning(Outcome(RunStatus.FAILED, error)))(job_context())

    span = only_span(exporter)
    event = exception_event(span)
    texts = [str(event["exception.message"]), str(event["exception.stacktrace"])]
    texts.append(span.status.description or "")
    assert all("hunter2" not in text for text in texts)
    assert "postgresql://app:***@db:5432/app" in texts[0]


async def test_the_run_ids_are_bound_for_logs_during_the_attempt_and_restored_after(
    tracer: Tracer, exporter: InMemorySpanExporter
) -> None:
    seen: dict[str, object] = {}

    async def step(ctx: JobContext) -> Outcome:
        seen.update(structlog.contextvars.get_contextvars())
        seen["current_trace_id"] = current_trace_id()
        seen["current_span_id"] = current_span_id()
        return SUCCEEDED

    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(job="nightly_report", span_id="outer")
    try:
        await with_tracing(tracer)(step)(job_context())
        after = structlog.contextvars.get_contextvars()
    finally:
        structlog.contextvars.clear_contextvars()

    ids = only_span(exporter).context
    assert ids is not None
    trace_id, span_id = f"{ids.trace_id:032x}", f"{ids.span_id:016x}"
    assert seen["trace_id"] == seen["current_trace_id"] == trace_id
    assert seen["span_id"] == seen["current_span_id"] == span_id
    assert len(trace_id) == 32 and len(span_id) == 16
    assert seen["job"] == "nightly_report"
    assert after == {"job": "nightly_report", "span_id": "outer"}
    assert current_trace_id() is None and current_span_id() is None


async def test_a_cancelled_attempt_ends_its_span_interrupted_and_propagates(
    tracer: Tracer, exporter: InMemorySpanExporter
) -> None:
    started = asyncio.Event()

    async def step(ctx: JobContext) -> Outcome:
        started.set()
        await asyncio.Event().wait()
        return SUCCEEDED

    traced = with_tracing(tracer)(step)

    async def attempt() -> Outcome:
        return await traced(job_context())

    task = asyncio.create_task(attempt())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    span = only_span(exporter)
    assert span.attributes is not None and span.attributes["job.status"] == "interrupted"
    assert span.status.status_code is StatusCode.ERROR
    assert span.end_time is not None


async def test_an_exception_escaping_the_step_is_recorded_and_reraised(
    tracer: Tracer, exporter: InMemorySpanExporter
) -> None:
    async def step(ctx: JobContext) -> Outcome:
        raise KeyError("lost")

    with pytest.raises(KeyError):
        await with_tracing(tracer)(step)(job_context())

    span = only_span(exporter)
    assert span.status.status_code is StatusCode.ERROR
    assert exception_event(span)["exception.type"] == "KeyError"
    assert span.attributes is not None and "job.status" not in span.attributes
    assert structlog.contextvars.get_contextvars().get("trace_id") is None


async def test_outermost_in_the_chain_it_sees_the_recovered_failure(
    tracer: Tracer, exporter: InMemorySpanExporter
) -> None:
    seen: list[object] = []

    async def job(ctx: JobContext) -> Outcome:
        seen.append(structlog.contextvars.get_contextvars().get("trace_id"))
        raise RuntimeError("upstream 503")

    chain: list[Wrapper] = [
        with_tracing(tracer),
        with_logging(FakeClock()),
        with_recovery(FakeClock()),
    ]
    outcome = await compose(job, chain)(job_context())

    assert outcome.status is RunStatus.FAILED
    span = only_span(exporter)
    assert span.context is not None and seen == [f"{span.context.trace_id:032x}"]
    assert span.status.status_code is StatusCode.ERROR
    assert exception_event(span)["exception.message"] == "upstream 503"


async def test_child_spans_hang_under_the_run_span(
    tracer: Tracer, exporter: InMemorySpanExporter
) -> None:
    async def step(ctx: JobContext) -> Outcome:
        with child_span(tracer, "db.query", **{"db.system": "postgresql"}) as span:
            assert span.is_recording()
        with child_span(tracer, "orders publish", SpanKind.PRODUCER):
            pass
        return SUCCEEDED

    await with_tracing(tracer)(step)(job_context())

    query, publish, run = exporter.get_finished_spans()
    assert run.name == "job.run nightly_report"
    for child in (query, publish):
        assert child.parent is not None and run.context is not None and child.context is not None
        assert child.parent.span_id == run.context.span_id
        assert child.context.trace_id == run.context.trace_id
    assert query.kind is SpanKind.CLIENT
    assert dict(query.attributes or {}) == {"db.system": "postgresql"}
    assert publish.kind is SpanKind.PRODUCER


async def test_a_failing_child_call_is_an_error_span_and_the_error_propagates(
    tracer: Tracer, exporter: InMemorySpanExporter
) -> None:
    with pytest.raises(OSError, match="refused"), child_span(tracer, "db.query"):
        raise OSError("connection refused")

    span = only_span(exporter)
    assert span.status.status_code is StatusCode.ERROR
    assert exception_event(span)["exception.message"] == "connection refused"


async def test_a_cancelled_child_call_is_an_error_span_without_an_exception_event(
    tracer: Tracer, exporter: InMemorySpanExporter
) -> None:
    with pytest.raises(asyncio.CancelledError), child_span(tracer, "amqp.publish"):
        raise asyncio.CancelledError

    span = only_span(exporter)
    assert span.status.status_code is StatusCode.ERROR
    assert span.events == ()


async def test_a_no_op_tracer_leaves_the_step_as_it_is() -> None:
    step = returning(SUCCEEDED)
    assert with_tracing(trace.NoOpTracer())(step) is step


async def test_disabled_tracing_has_a_no_op_tracer_and_nothing_to_shut_down() -> None:
    telemetry = setup_tracing("financial-worker", endpoint="http://127.0.0.1:9", disabled=True)

    assert isinstance(telemetry.tracer, trace.NoOpTracer)
    assert telemetry.provider is None
    await telemetry.shutdown()


async def test_without_an_exporter_spans_are_only_ids_for_the_logs() -> None:
    telemetry = setup_tracing("financial-worker", endpoint=None)
    seen: dict[str, object] = {}

    async def step(ctx: JobContext) -> Outcome:
        seen.update(structlog.contextvars.get_contextvars())
        with child_span(telemetry.tracer, "db.query") as span:
            seen["child_trace_id"], seen["child_span_id"] = current_trace_id(), current_span_id()
            seen["child_recording"] = span.is_recording()
        return SUCCEEDED

    await with_tracing(telemetry.tracer)(step)(job_context())
    await telemetry.shutdown()

    assert telemetry.provider is None and telemetry.exporter is None
    trace_id, span_id = seen["trace_id"], seen["span_id"]
    assert isinstance(trace_id, str) and len(trace_id) == 32 and int(trace_id, 16) != 0
    assert isinstance(span_id, str) and len(span_id) == 16 and int(span_id, 16) != 0
    assert seen["child_trace_id"] == trace_id and seen["child_span_id"] != span_id
    assert seen["child_recording"] is False
    assert structlog.contextvars.get_contextvars().get("trace_id") is None


async def test_each_run_without_an_exporter_gets_its_own_trace_id() -> None:
    tracer = setup_tracing("financial-worker", endpoint=None).tracer
    seen: list[object] = []

    async def step(ctx: JobContext) -> Outcome:
        seen.append(current_trace_id())
        return SUCCEEDED

    traced = with_tracing(tracer)(step)
    await traced(job_context())
    await traced(job_context())

    assert len(set(seen)) == 2 and None not in seen


async def test_shutdown_flushes_the_batched_spans_with_the_service_resource(
    exporter: InMemorySpanExporter,
) -> None:
    telemetry = setup_tracing(
        "financial-worker",
        endpoint=None,
        exporter=exporter,
        instance_id="worker-7",
        set_global=False,
    )
    await with_tracing(telemetry.tracer)(returning(SUCCEEDED))(job_context())

    await telemetry.shutdown()
    await telemetry.shutdown()  # a second call is harmless

    span = only_span(exporter)
    assert span.resource.attributes[SERVICE_NAME] == "financial-worker"
    assert span.resource.attributes[SERVICE_INSTANCE_ID] == "worker-7"


def test_the_blocking_shutdown_flushes_too(exporter: InMemorySpanExporter) -> None:
    telemetry = setup_tracing(
        "financial-worker", endpoint=None, exporter=exporter, set_global=False
    )
    with telemetry.tracer.start_as_current_span("probe"):
        pass

    telemetry.shutdown_blocking()

    assert [s.name for s in exporter.get_finished_spans()] == ["probe"]
    assert (
        telemetry.provider is not None
        and telemetry.provider.resource.attributes[SERVICE_INSTANCE_ID]
    )


async def test_shutdown_returns_in_bounded_time_when_the_collector_is_unreachable() -> None:
    # Port 9 (discard) is closed on loopback: every export is refused and retried with backoff.
    telemetry = setup_tracing(
        "financial-worker", endpoint="http://127.0.0.1:9", shutdown_timeout_s=0.3, set_global=False
    )
    await with_tracing(telemetry.tracer)(returning(SUCCEEDED))(job_context())

    started = time.monotonic()
    with capture_logs() as logs:
        await telemetry.shutdown()

    assert time.monotonic() - started < 3.0
    assert [e["event"] for e in logs] == ["tracing_shutdown_timed_out"]


def test_the_endpoint_is_the_otlp_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    assert tracing._traces_endpoint("http://collector:4318/") == "http://collector:4318/v1/traces"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://traces:4318/custom")
    # None: the exporter then reads the signal-specific variable, which the specification favours.
    assert tracing._traces_endpoint("http://collector:4318") is None
