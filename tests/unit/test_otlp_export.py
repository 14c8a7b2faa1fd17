"""OTLP export of metrics and traces, received and decoded by a real OTLP/HTTP receiver."""

from __future__ import annotations

import asyncio

import pytest

from financial.pkg.jobs.model import RunStatus
from financial.pkg.observability.metrics import setup_metrics
from financial.pkg.observability.tracing import setup_tracing
from tests.unit.otlp_receiver import Received, otlp_receiver

HOUR_MS = 3_600_000  # exports happen on force_flush only, never on the reader's timer


def attributes(kvs: object) -> dict[str, object]:
    result: dict[str, object] = {}
    for kv in kvs:  # type: ignore[attr-defined]
        value = kv.value
        result[kv.key] = getattr(value, value.WhichOneof("value"))
    return result


def metrics_by_name(received: Received) -> dict[str, object]:
    [request] = received.metrics
    [resource] = request.resource_metrics
    return {metric.name: metric for scope in resource.scope_metrics for metric in scope.metrics}


@pytest.fixture
def receiver() -> object:
    with otlp_receiver() as received:
        yield received


async def test_metrics_reach_an_otlp_receiver_with_the_histograms_and_resource(
    receiver: Received,
) -> None:
    metrics = setup_metrics(
        "financial-worker",
        instance_id="worker-7",
        otlp_url=receiver.url + "/v1/metrics",
        export_interval_ms=HOUR_MS,
        resource_attributes={"deployment.environment": "prod", "service.name": "ignored"},
    )
    try:
        metrics.known_jobs(["relay", "report"])
        metrics.record_attempt("relay", RunStatus.SUCCEEDED, 0.2)
        metrics.record_attempt("relay", RunStatus.SUCCEEDED, 3.0)
        metrics.record_attempt("relay", RunStatus.FAILED, 0.04)
        metrics.count_run("report", RunStatus.SKIPPED)
        assert metrics.provider.force_flush(timeout_millis=10_000)
    finally:
        await metrics.shutdown()

    assert receiver.paths[0] == "/v1/metrics"
    assert receiver.content_types[0] == "application/x-protobuf"
    [request, *_] = receiver.metrics
    resource = attributes(request.resource_metrics[0].resource.attributes)
    assert resource["service.name"] == "financial-worker"  # OTEL_SERVICE_NAME wins
    assert resource["service.instance.id"] == "worker-7"
    assert resource["deployment.environment"] == "prod"

    receiver.metrics[1:] = []  # the shutdown's last export is not this test's subject
    by_name = metrics_by_name(receiver)
    runs = by_name["financial_worker_runs"]
    counts = {
        (attrs["job"], attrs["status"]): point.as_int
        for point in runs.sum.data_points  # type: ignore[attr-defined]
        for attrs in [attributes(point.attributes)]
    }
    assert counts[("relay", "succeeded")] == 2
    assert counts[("relay", "failed")] == 1
    assert counts[("report", "skipped")] == 1
    assert counts[("report", "failed")] == 0
    assert runs.sum.is_monotonic  # type: ignore[attr-defined]

    duration = by_name["financial_worker_run_duration"]
    [point] = duration.histogram.data_points  # type: ignore[attr-defined]
    assert attributes(point.attributes) == {"job": "relay"}
    assert point.count == 3
    assert point.sum == pytest.approx(3.24)
    bounds = list(point.explicit_bounds)
    assert bounds[:4] == [0.01, 0.05, 0.1, 0.25]
    assert len(point.bucket_counts) == len(bounds) + 1
    # 0.04 in (0.01, 0.05], 0.2 in (0.1, 0.25], 3.0 in (2.5, 5.0].
    assert point.bucket_counts[1] == 1 and point.bucket_counts[3] == 1
    assert point.bucket_counts[bounds.index(5.0)] == 1
    assert sum(point.bucket_counts) == 3
    assert not point.HasField("min")
    assert duration.unit == "s"  # type: ignore[attr-defined]


async def test_prometheus_and_otlp_show_the_same_counts(receiver: Received) -> None:
    metrics = setup_metrics(
        "financial-worker", otlp_url=receiver.url + "/v1/metrics", export_interval_ms=HOUR_MS
    )
    try:
        metrics.record_attempt("relay", RunStatus.SUCCEEDED, 1.0)
        text = (await metrics.render()).decode()
        assert metrics.provider.force_flush(timeout_millis=10_000)
    finally:
        await metrics.shutdown()
    assert 'financial_worker_runs_total{job="relay",status="succeeded"} 1.0' in text
    assert 'financial_worker_run_duration_seconds_count{job="relay"} 1.0' in text
    receiver.metrics[1:] = []
    by_name = metrics_by_name(receiver)
    [point] = by_name["financial_worker_run_duration"].histogram.data_points  # type: ignore[attr-defined]
    # The scrape moved the running sum into the scraped one: OTLP still sees the whole sum.
    assert point.count == 1 and point.sum == 1.0


def test_traces_reach_the_receiver_at_the_url_given(receiver: Received) -> None:
    telemetry = setup_tracing(
        "financial-worker",
        endpoint=None,
        traces_url=receiver.url + "/v1/traces",
        resource_attributes={"team": "payments"},
        instance_id="worker-7",
        set_global=False,
    )
    with telemetry.tracer.start_as_current_span("job.run relay"):
        pass
    assert telemetry.provider is not None
    assert telemetry.provider.force_flush(10_000)
    telemetry.shutdown_blocking()
    [request] = receiver.traces
    [resource_spans] = request.resource_spans
    resource = attributes(resource_spans.resource.attributes)
    assert resource["team"] == "payments" and resource["service.name"] == "financial-worker"
    [span] = resource_spans.scope_spans[0].spans
    assert span.name == "job.run relay"


async def test_pushed_series_carry_the_outbox_backlog_with_nobody_scraping(
    receiver: Received,
) -> None:
    metrics = setup_metrics("financial-worker", otlp_url=receiver.url + "/v1/metrics")
    backlog = [7]

    async def count() -> int:
        return backlog[0]

    try:
        metrics.watch_outbox_backlog(count)  # read at once, then every export period
        await asyncio.sleep(0)
        assert metrics.provider.force_flush(timeout_millis=10_000)
    finally:
        await metrics.shutdown()
    receiver.metrics[1:] = []
    gauge = metrics_by_name(receiver)["financial_worker_outbox_backlog"]
    [point] = gauge.gauge.data_points  # type: ignore[attr-defined]
    assert point.as_int == 7


async def test_without_a_push_exporter_the_backlog_is_read_at_scrape_time_only() -> None:
    metrics = setup_metrics("financial-worker")
    reads: list[int] = []

    async def count() -> int:
        reads.append(1)
        return 3

    try:
        metrics.watch_outbox_backlog(count)
        await asyncio.sleep(0)
        assert reads == []
        assert b"financial_worker_outbox_backlog 3.0" in await metrics.render()
        assert reads == [1]
    finally:
        await metrics.shutdown()
