"""OTLP export of the worker's metrics: the SDK's periodic reader, plus the histograms that
`Metrics` aggregates itself (`histograms.py`), which no SDK reader can see.

`otlp_metric_reader(url, ...)` gives a `PeriodicExportingMetricReader` whose exporter is
`HistogramBridge` around the OTLP/HTTP (protobuf) exporter: at each export it adds one OTLP
histogram per `Histograms` (cumulative, one data point per job, the same buckets as
`/metrics`) to what the SDK collected from the observable instruments. Headers, timeout,
compression and TLS come from the standard `OTEL_EXPORTER_OTLP_*` variables, which the exporter
reads itself.

The reader exports from its own thread. It reads the histograms' bucket lists with one copy
each (atomic under the GIL); a `/metrics` scrape that moves a job's running sum into its scraped
sum at that very instant can make one export's `_sum` of that job off by the values recorded
since the previous scrape; the next export is right again. Buckets and counts are never off.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricExporter,
    MetricExportResult,
    MetricsData,
    PeriodicExportingMetricReader,
    ResourceMetrics,
    ScopeMetrics,
)

from financial.pkg.observability.histograms import Histograms

__all__ = ["DEFAULT_EXPORT_INTERVAL_MS", "HistogramBridge", "otlp_metric_reader"]

DEFAULT_EXPORT_INTERVAL_MS = 60_000
"""`OTEL_METRIC_EXPORT_INTERVAL`'s default in the specification."""


class HistogramBridge(MetricExporter):
    """An exporter that adds the worker's own histograms to each batch, then hands it on.

    `histograms` is set once `Metrics` has built them (the reader exists before the instruments).
    """

    def __init__(self, inner: MetricExporter) -> None:
        super().__init__(
            preferred_temporality=inner._preferred_temporality,
            preferred_aggregation=inner._preferred_aggregation,
        )
        self.inner = inner
        self.histograms: Sequence[Histograms] = ()
        self._start_ns = time.time_ns()

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        return self.inner.export(self.with_histograms(metrics_data), timeout_millis=timeout_millis)

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self.inner.force_flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self.inner.shutdown(timeout_millis=timeout_millis)

    def with_histograms(self, data: MetricsData) -> MetricsData:
        """`data` with the histograms appended to its first scope (the worker's meter)."""
        extra = [m for m in (self._metric(h) for h in self.histograms) if m is not None]
        if not extra or not data.resource_metrics:
            return data
        first, *others = data.resource_metrics
        if first.scope_metrics:
            scope, *more = first.scope_metrics
            scopes = [
                ScopeMetrics(scope.scope, [*scope.metrics, *extra], scope.schema_url),
                *more,
            ]
        else:
            return data
        resource = ResourceMetrics(first.resource, scopes, first.schema_url)
        return MetricsData([resource, *others])

    def _metric(self, histograms: Histograms) -> Metric | None:
        now = time.time_ns()
        points = []
        for job, buckets in list(histograms.by_job.items()):
            counts = list(buckets.counts)
            points.append(
                HistogramDataPoint(
                    attributes={"job": job},
                    start_time_unix_nano=self._start_ns,
                    time_unix_nano=now,
                    count=sum(counts),
                    sum=buckets.scraped_sum + buckets.sum,
                    bucket_counts=counts,
                    explicit_bounds=list(histograms.bounds),
                    # Not kept (the hot path records bucket and sum only); OTLP makes them
                    # optional, and the encoder leaves them out when None.
                    min=None,  # type: ignore[arg-type]
                    max=None,  # type: ignore[arg-type]
                )
            )
        if not points:
            return None
        return Metric(
            name=histograms.name,
            description=histograms.description,
            unit="s",
            data=Histogram(points, AggregationTemporality.CUMULATIVE),
        )


def otlp_metric_reader(
    url: str,
    *,
    export_interval_ms: int = DEFAULT_EXPORT_INTERVAL_MS,
    exporter: MetricExporter | None = None,
) -> tuple[PeriodicExportingMetricReader, HistogramBridge]:
    """A periodic reader sending to `url` (the full OTLP/HTTP metrics URL), and its bridge.

    `exporter` replaces the OTLP exporter (tests); the reader owns it and shuts it down with the
    meter provider."""
    bridge = HistogramBridge(exporter if exporter is not None else OTLPMetricExporter(endpoint=url))
    reader = PeriodicExportingMetricReader(bridge, export_interval_millis=export_interval_ms)
    return reader, bridge
