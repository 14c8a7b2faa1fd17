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

Frozen = list[tuple[str, list[int], float]]
"""Each job's bucket counts (not cumulative) and total sum, as `Histograms.freeze` took them."""


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

    def freeze(self) -> Frozen:
        """Each job's bucket counts and total sum as of now, on the loop thread like `record`:
        the sum since the last scrape is folded into the total here, so that a family rendered
        from it on another thread loses no value recorded meanwhile."""
        frozen: Frozen = []
        for job, buckets in list(self.by_job.items()):
            buckets.scraped_sum, buckets.sum = buckets.sum + buckets.scraped_sum, 0.0
            frozen.append((job, list(buckets.counts), buckets.scraped_sum))
        return frozen

    def family(self, frozen: Frozen | None = None) -> HistogramMetricFamily | None:
        """The family of `frozen` (by default, of now), or None before the first value (as the
        exporter does)."""
        frozen = self.freeze() if frozen is None else frozen
        if not frozen:
            return None
        family = HistogramMetricFamily(self.name, self.description, labels=["job"], unit="seconds")
        for job, counts, total in frozen:
            family.add_metric([job], list(zip(self._le, accumulate(counts), strict=True)), total)
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
        self._frozen: list[Frozen] | None = None

    def describe(self) -> list[Metric]:
        # The names are only known at collection; without this the registry would collect (and
        # run the reader's callbacks) when registering.
        return []

    def freeze(self) -> None:
        """Take the histograms' values now, on the loop thread; the next `collect`, on whatever
        thread, renders these (without it, `collect` takes them itself)."""
        self._frozen = [histograms.freeze() for histograms in self._histograms]

    def collect(self) -> Iterator[Metric]:
        frozen, self._frozen = self._frozen, None
        pending = True
        for family in self._source.collect():
            yield family
            if family.name == self._after:
                pending = False
                yield from self._families(frozen)
        if pending:
            yield from self._families(frozen)

    def _families(self, frozen: list[Frozen] | None) -> Iterator[Metric]:
        for i, histograms in enumerate(self._histograms):
            family = histograms.family(frozen[i] if frozen is not None else None)
            if family is not None:
                yield family
