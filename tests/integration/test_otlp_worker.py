"""A real worker pushing its metrics and traces over OTLP/HTTP to a real receiver on loopback,
configured only by the standard OTEL_* variables; the Prometheus endpoint kept or turned off."""

from __future__ import annotations

import signal
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.integration.services import free_port
from tests.integration.worker_process import WorkerProcess
from tests.unit.otlp_receiver import Received, otlp_receiver

pytestmark = pytest.mark.integration


def status_of(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def succeeded_ticks(received: Received) -> int:
    """The largest `runs{job=tick,status=succeeded}` any export carried (cumulative)."""
    best = 0
    for request in list(received.metrics):
        for resource in request.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name != "financial_worker_runs":
                        continue
                    for point in metric.sum.data_points:
                        attrs = {kv.key: kv.value.string_value for kv in point.attributes}
                        if attrs == {"job": "tick", "status": "succeeded"}:
                            best = max(best, point.as_int)
    return best


def start(database_dsn: str, cwd: Path, port: int, **otel: str) -> WorkerProcess:
    return WorkerProcess(
        "worker",
        cwd=cwd,
        env={
            "DATABASE_URL": database_dsn,
            "WORKER_JOB_MODULES": "tests.fixtures.worker_jobs",
            "WORKER_ID": "otlp-worker",
            "WORKER_HEALTH_ADDR": f"127.0.0.1:{port}",
            "WORKER_SHUTDOWN_TIMEOUT_SECONDS": "5",
            "OTEL_METRIC_EXPORT_INTERVAL": "300",
            **otel,
        },
    )


def test_metrics_and_traces_reach_the_collector_and_prometheus_stays(
    database_dsn: str, open_tmp_path: Path
) -> None:
    port = free_port()
    with otlp_receiver() as received:
        worker = start(
            database_dsn,
            open_tmp_path,
            port,
            OTEL_EXPORTER_OTLP_ENDPOINT=received.url,
            OTEL_RESOURCE_ATTRIBUTES="deployment.environment=it,team=pay%20ments",
            OTEL_SERVICE_NAME="worker-under-test",
        )
        try:
            worker.wait_event("job_succeeded", job="tick", timeout_s=60)
            deadline = time.monotonic() + 20
            while succeeded_ticks(received) < 2 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert succeeded_ticks(received) >= 2, received.paths[-5:]
            assert status_of(f"http://127.0.0.1:{port}/metrics") == 200
            worker.signal(signal.SIGTERM)
            assert worker.wait_exit() == 0
        finally:
            worker.kill()
        request = received.metrics[-1]
        resource = {
            kv.key: kv.value.string_value for kv in request.resource_metrics[0].resource.attributes
        }
        assert resource["service.name"] == "worker-under-test"
        assert resource["service.instance.id"] == "otlp-worker"
        assert resource["deployment.environment"] == "it"
        assert resource["team"] == "pay ments"
        names = {
            metric.name
            for resource_metrics in request.resource_metrics
            for scope in resource_metrics.scope_metrics
            for metric in scope.metrics
        }
        assert {"financial_worker_runs", "financial_worker_run_duration"} <= names
        assert "financial_worker_start_lateness" in names
        spans = [
            span.name
            for trace in received.traces
            for resource_spans in trace.resource_spans
            for scope in resource_spans.scope_spans
            for span in scope.spans
        ]
        assert "job.run tick" in spans
        assert set(received.paths) == {"/v1/metrics", "/v1/traces"}


def test_otlp_alone_turns_the_prometheus_endpoint_off(
    database_dsn: str, open_tmp_path: Path
) -> None:
    port = free_port()
    with otlp_receiver() as received:
        worker = start(
            database_dsn,
            open_tmp_path,
            port,
            OTEL_EXPORTER_OTLP_METRICS_ENDPOINT=received.url + "/ingest/metrics",
            OTEL_METRICS_EXPORTER="otlp",
            OTEL_TRACES_EXPORTER="none",
        )
        try:
            worker.wait_event("job_succeeded", job="tick", timeout_s=60)
            deadline = time.monotonic() + 20
            while succeeded_ticks(received) < 1 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert succeeded_ticks(received) >= 1
            assert status_of(f"http://127.0.0.1:{port}/metrics") == 404
            assert status_of(f"http://127.0.0.1:{port}/livez") == 200
            worker.signal(signal.SIGTERM)
            assert worker.wait_exit() == 0
        finally:
            worker.kill()
        # The signal's own URL was used as is, and no trace was sent anywhere.
        assert set(received.paths) == {"/ingest/metrics"}
        assert received.traces == []
