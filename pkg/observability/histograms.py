"""Per-job histograms aggregated by the worker itself, and the collector that exposes them.

Every run records a few measurements, on a path that runs thousands of times a second, so
`Metrics` (`metrics.py`) records run duration and start lateness into these plain buckets rather
than through OpenTelemetry SDK instruments, and `Exposition` renders them at scrape time exactly
as the OpenTelemetry Prometheus exporter rendered its histograms, between the reader's own
families (`tests/unit/test_metrics.py` compares the text with the SDK's). What this saves is in
`benchmarks/README.md#what-the-shortcuts-save`.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from itertools import accumulate

from prometheus_client import CollectorRegistry
from prometheus_client.core import HistogramMetricFamily, Metric


class Buckets:
    __slots__ = ("counts", "scraped_sum", "sum")

    def __init__(self, size: int) -> None:
        self.counts = [0] * size
        self.sum = 0.0  # since the last scrape
        self.scraped_sum = 0.0


class Histograms:
    """One explicit-bucket histogram per job, rendered as OpenTelemetry's exporter renders one.

    Same name, unit, HELP text, `le` values (`f"{bound}"`, then `+Inf`), cumulative bucket
    counts, `_count` and `_sum`. The SDK sums the values between two scrapes, then adds that to
    the total at the scrape; so does this, so that `_sum` is the same float to the last digit.
    """

    def __init__(self, name: str, description: str, bounds: tuple[float, ...]) -> None:
        self.name = name
        self.description = description
        self.bounds = bounds
        self._le = [*(f"{bound}" for bound in bounds), "+Inf"]
        self.by_job: dict[str, Buckets] = {}

    def record(self, job: str, value: float) -> None:
        buckets = self.by_job.get(job)
        if buckets is None:
            buckets = self.by_job[job] = Buckets(len(self.bounds) + 1)
        # `bisect_left`: a value equal to a bound counts in that bound's bucket (`le`).
        buckets.counts[bisect_left(self.bounds, value)] += 1
        buckets.sum += value

    def family(self) -> HistogramMetricFamily | None:
        """The family at scrape time, or None before the first value (as the exporter does)."""
        if not self.by_job:
            return None
        family = HistogramMetricFamily(self.name, self.description, labels=["job"], unit="seconds")
        for job, buckets in list(self.by_job.items()):
            # Resetting `sum` is safe because scrapes run on the loop thread, like `record`; a
            # scrape on another thread could lose a value recorded between these two steps.
            buckets.scraped_sum, buckets.sum = buckets.sum + buckets.scraped_sum, 0.0
            cumulative = zip(self._le, accumulate(list(buckets.counts)), strict=True)
            family.add_metric([job], list(cumulative), buckets.scraped_sum)
        return family


class Exposition:
    """The one collector in `Metrics.registry`: the OpenTelemetry reader's families, with the
    histograms aggregated here placed after the family `after` (`runs_total`, where the reader
    listed them when a run came before the first scrape), so the order no longer depends on what
    came first."""

    def __init__(self, source: CollectorRegistry, histograms: list[Histograms], after: str) -> None:
        self._source = source
        self._histograms = histograms
        self._after = after

    def describe(self) -> list[Metric]:
        # The names are only known at collection; without this the registry would collect (and
        # run the reader's callbacks) when registering.
        return []

    def collect(self) -> Iterator[Metric]:
        pending = True
        for family in self._source.collect():
            yield family
            if family.name == self._after:
                pending = False
                yield from self._families()
        if pending:
            yield from self._families()

    def _families(self) -> Iterator[Metric]:
        for histograms in self._histograms:
            family = histograms.family()
            if family is not None:
                yield family
