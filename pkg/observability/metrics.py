"""Metrics: OpenTelemetry instruments exposed in Prometheus' text format on `/metrics`.

`setup_metrics` builds an SDK `MeterProvider` whose one reader is the OpenTelemetry Prometheus
exporter, and a `CollectorRegistry` of its own (never prometheus_client's global one), so tests
and the daemon can hold several side by side and nothing is touched at import time.

What a run records is plain arithmetic on this module's own state, published at scrape time,
rather than SDK synchronous measurements: a run made five, some of them before its job started
(and so behind it every other run of the tick); what this saves is in
`benchmarks/README.md#what-the-shortcuts-save`. The counters and the in-flight gauge
are observable instruments whose callbacks read that state; the two histograms are aggregated here
(`_Histograms`, OpenTelemetry's explicit-bucket aggregation: `bisect_left` into the bounds) and
rendered as the exporter renders a histogram, so the exposition is the same text as when the SDK
aggregated them.

Series (every name starts `financial_worker_`):

- `runs_total{job,status}`: runs by final status. Attempts that ran are counted by
  `with_metrics`; runs that never started (`skipped`, `missed`) or that another replica found
  `abandoned` are counted through `Metrics.count_run`, so the counter adds up to the run history.
- `run_duration_seconds{job}` and `start_lateness_seconds{job}` histograms; lateness is the start
  of a scheduled run's first attempt minus its tick, so it includes any configured jitter.
- `runs_in_flight{job}`: attempts executing now in this process.
- `last_success_timestamp_seconds{job}` and `next_fire_timestamp_seconds{job}`: Unix seconds, so
  an alert can say "job X has not succeeded since ..." (`time() - max by (job) (...)` across
  replicas, since each replica only sees the runs it executed after its start plus what
  `observe_last_success` seeded from the run store).
- `outbox_backlog`: unsent outbox events, read at scrape time by `watch_outbox_backlog` (and
  on the export period when the series are pushed over OTLP).
- `executor_stuck_threads`: threads of the blocking-job pool still running a run that was
  abandoned (timed out, or shutdown), read at scrape time by `watch_stuck_threads`.
- `event_loop_lag_seconds` (latest sample) and `event_loop_lag_max_seconds` (worst sample over the
  last minute), from `EventLoopLagMonitor`, which samples every half second while runs are in
  flight (an idle worker does not wake for it): a job that blocks the loop shows here.

With an OTLP URL, `setup_metrics` adds a periodic OTLP/HTTP reader (`otlp_metrics.py`) that
sends the same series, the worker's own histograms included, every `export_interval_ms`.

`instrument_clients` turns on the OpenTelemetry asyncpg and aio-pika instrumentations, so database
and broker calls get their child spans from them instead of hand-written ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Final

import structlog
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExporter, MetricReader
from opentelemetry.sdk.resources import SERVICE_INSTANCE_ID, SERVICE_NAME, Resource
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from financial.pkg.jobs.model import RunStatus
from financial.pkg.observability.histograms import Exposition, Histograms
from financial.pkg.observability.instrumentation import instrument_clients
from financial.pkg.observability.logging import mask_secrets
from financial.pkg.observability.loop_lag import EventLoopLagMonitor
from financial.pkg.observability.otlp_metrics import DEFAULT_EXPORT_INTERVAL_MS, otlp_metric_reader

__all__ = [
    "DURATION_BUCKETS_S",
    "LATENESS_BUCKETS_S",
    "EventLoopLagMonitor",
    "Metrics",
    "instrument_clients",
    "setup_metrics",
]

log = structlog.get_logger("financial.metrics")

METER_NAME = "financial.scheduler"
PREFIX = "financial_worker_"

DURATION_BUCKETS_S: Final = (
    *(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    *(60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0),
)
"""Run durations: jobs take from milliseconds (the outbox relay) to an hour (reports)."""

LATENESS_BUCKETS_S: Final = (
    *(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5),
    *(1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
"""Start lateness: milliseconds when healthy; seconds when the cap is full or the loop stalls."""

SHUTDOWN_TIMEOUT_MS = 5_000
"""Bound on the provider's shutdown: the OTLP reader's last export to a missing collector."""

BACKLOG_TIMEOUT_S = 2.0
"""How long a scrape waits for the outbox backlog query before leaving the series out."""


StatusLabel = RunStatus | str

FINAL_STATUSES: Final = tuple(status for status in RunStatus if status.is_final)


class Metrics:
    """The worker's instruments, and the registry `/metrics` renders.

    Build it with `setup_metrics`. `render()` is what the health server serves; `shutdown()`
    goes on the worker's `AsyncExitStack`.
    """

    content_type: str = CONTENT_TYPE_LATEST

    def __init__(
        self,
        provider: MeterProvider,
        registry: CollectorRegistry,
        source: CollectorRegistry,
    ) -> None:
        """`source` is the registry the provider's Prometheus reader is in; `registry` is the one
        scraped, which reads it (see `Exposition`)."""
        self.provider = provider
        self.registry = registry
        self._runs: dict[tuple[str, StatusLabel], int] = {}
        self._in_flight: dict[str, int] = {}
        self._lateness = Histograms(
            PREFIX + "start_lateness",
            "Start of a scheduled run's first attempt minus its tick.",
            LATENESS_BUCKETS_S,
        )
        self._duration = Histograms(
            PREFIX + "run_duration", "Duration of one attempt of a job.", DURATION_BUCKETS_S
        )
        self.histograms = (self._lateness, self._duration)
        self._exposition = Exposition(
            source, [self._lateness, self._duration], after=PREFIX + "runs"
        )
        registry.register(self._exposition)
        # Not asyncio's default executor, which jobs may fill (`asyncio.to_thread`).
        self._renderer = ThreadPoolExecutor(1, thread_name_prefix="metrics-render")
        self._render_lock = asyncio.Lock()
        self._last_success: dict[str, float] = {}
        self._next_fire: Callable[[], Mapping[str, datetime]] | None = None
        self._backlog_query: Callable[[], Awaitable[int]] | None = None
        self._backlog: int | None = None
        # Set by `setup_metrics` when the series are also pushed (OTLP): nobody scrapes then,
        # so the backlog is refreshed on this period instead of at each scrape only.
        self.push_interval_s: float | None = None
        self._backlog_task: asyncio.Task[None] | None = None
        self._stuck_threads: Callable[[], int] | None = None
        self._late: Callable[[], Mapping[str, int]] | None = None
        # It samples while runs are in flight (`add_in_flight`): an idle worker does not wake.
        self.loop_lag = EventLoopLagMonitor(while_busy=True)
        meter = provider.get_meter(METER_NAME)
        # Callbacks run in this order at each collection, and the exporter lists the series in
        # the order it first saw them: in flight and runs first, as when `known_jobs` set them.
        meter.create_observable_up_down_counter(
            PREFIX + "runs_in_flight",
            callbacks=[self._observe_in_flight],
            unit="{run}",
            description="Attempts executing now.",
        )
        meter.create_observable_counter(
            PREFIX + "runs",
            callbacks=[self._observe_runs],
            unit="{run}",
            description="Runs by job and final status.",
        )
        meter.create_observable_gauge(
            PREFIX + "last_success_timestamp",
            callbacks=[self._observe_last_success],
            unit="s",
            description="When each job last succeeded (Unix time).",
        )
        meter.create_observable_gauge(
            PREFIX + "next_fire_timestamp",
            callbacks=[self._observe_next_fire],
            unit="s",
            description="Each job's next tick (Unix time).",
        )
        meter.create_observable_gauge(
            PREFIX + "outbox_backlog",
            callbacks=[self._observe_backlog],
            unit="{event}",
            description="Outbox events not yet published.",
        )
        meter.create_observable_gauge(
            PREFIX + "executor_stuck_threads",
            callbacks=[self._observe_stuck_threads],
            unit="{thread}",
            description="Blocking-job threads still running a run that was abandoned.",
        )
        meter.create_observable_gauge(
            PREFIX + "job_late",
            callbacks=[self._observe_late],
            unit="1",
            description="1 while a job with alert_after is late (dead-man alert), else 0.",
        )
        meter.create_observable_gauge(
            PREFIX + "event_loop_lag",
            callbacks=[self._observe_lag],
            unit="s",
            description="How late the event loop woke the lag probe, latest sample.",
        )
        meter.create_observable_gauge(
            PREFIX + "event_loop_lag_max",
            callbacks=[self._observe_lag_max],
            unit="s",
            description="Worst event loop lag over the last minute.",
        )

    # -- recording ------------------------------------------------------------------------------

    def known_jobs(self, names: Iterable[str]) -> None:
        """Start every job's counters at 0, so `increase()` sees a job's first run and its
        first failure, and a dashboard lists a job that has not run yet."""
        for name in names:
            self._in_flight.setdefault(name, 0)
            for status in FINAL_STATUSES:
                self._runs.setdefault((name, status), 0)

    def count_run(self, job: str, status: StatusLabel) -> None:
        """Count a run that ended outside the chain: `skipped`, `missed`, `abandoned`."""
        # A `RunStatus` and its value are equal and hash alike: one key either way.
        key = (job, status)
        self._runs[key] = self._runs.get(key, 0) + 1

    def record_attempt(self, job: str, status: StatusLabel, duration_s: float) -> None:
        """Count an attempt that ran, with its duration (what `with_metrics` records)."""
        self._duration.record(job, duration_s)
        self.count_run(job, status)

    def record_lateness(self, job: str, lateness_s: float) -> None:
        """A scheduled run's first attempt started `lateness_s` after its tick."""
        self._lateness.record(job, max(lateness_s, 0.0))

    def add_in_flight(self, job: str, delta: int) -> None:
        """An attempt of `job` began (+1) or ended (-1)."""
        self._in_flight[job] = self._in_flight.get(job, 0) + delta
        self.loop_lag.busy(delta)

    def observe_last_success(self, job: str, at: datetime) -> None:
        """Record a success; older instants than the one held are ignored (seeding at start)."""
        stamp = at.timestamp()
        if stamp > self._last_success.get(job, -math.inf):
            self._last_success[job] = stamp

    def watch_next_fire_times(self, source: Callable[[], Mapping[str, datetime]]) -> None:
        """Read each job's next tick at scrape time (`Scheduler.next_fire_times`)."""
        self._next_fire = source

    def watch_outbox_backlog(self, query: Callable[[], Awaitable[int]]) -> None:
        """Count unsent outbox events at each scrape (`lambda: outbox.backlog(db.pool)`) and,
        when the series are pushed, every `push_interval_s` too (call it on the loop then)."""
        self._backlog_query = query
        if self.push_interval_s is not None and self._backlog_task is None:
            self._backlog_task = asyncio.create_task(
                self._refresh_backlog_every(self.push_interval_s)
            )

    async def _refresh_backlog_every(self, period_s: float) -> None:
        while True:
            await self._refresh_backlog()
            await asyncio.sleep(period_s)

    def watch_stuck_threads(self, source: Callable[[], int]) -> None:
        """Read the pool's stuck threads at scrape time (`Executors.stuck_threads`)."""
        self._stuck_threads = source

    def watch_late_jobs(self, source: Callable[[], Mapping[str, int]]) -> None:
        """Read each watched job's late flag at scrape time (`LateChecker.late_flags`)."""
        self._late = source

    # -- exposition -----------------------------------------------------------------------------

    async def render(self) -> bytes:
        """The Prometheus text exposition, after refreshing what needs I/O (the backlog).

        The text is built on a thread of its own: at 1,000 jobs it is about 47,000 lines and
        0.4 s of CPU, which on the loop would hold every run due meanwhile (on the thread, the
        loop takes its turns at the interpreter's switch interval). The histograms are frozen
        on the loop first; one scrape at a time, so each renders what it froze."""
        async with self._render_lock:
            await self._refresh_backlog()
            self._exposition.freeze()
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._renderer, generate_latest, self.registry)

    async def shutdown(self) -> None:
        """Stop the backlog refresh, the lag monitor and the provider, and leave the registry."""
        if self._backlog_task is not None:
            self._backlog_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._backlog_task
        await self.loop_lag.stop()
        self._renderer.shutdown(wait=False)
        # A thread: with an OTLP reader, the last export blocks on HTTP (bounded).
        await asyncio.to_thread(self.provider.shutdown, timeout_millis=SHUTDOWN_TIMEOUT_MS)
        with contextlib.suppress(KeyError):  # shut down already
            self.registry.unregister(self._exposition)

    async def _refresh_backlog(self) -> None:
        if self._backlog_query is None:
            return
        try:
            async with asyncio.timeout(BACKLOG_TIMEOUT_S):
                self._backlog = await self._backlog_query()
        except Exception as exc:
            # A stale count would read as "the relay is keeping up": leave the series out, and
            # let an `absent()` alert or the database's own alerts speak.
            self._backlog = None
            log.debug("outbox_backlog_unavailable", error=mask_secrets(str(exc)))

    # The callbacks run on a scrape's thread (`render`) or the OTLP reader's, while the loop
    # records: each copies what it reads in one step (`list(...)`, atomic under the GIL), since
    # a dict that grows while iterated would raise.

    def _observe_in_flight(self, _options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(n, {"job": job}) for job, n in list(self._in_flight.items())]

    def _observe_runs(self, _options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(n, {"job": job, "status": str(status)})
            for (job, status), n in list(self._runs.items())
        ]

    def _observe_last_success(self, _options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(at, {"job": job}) for job, at in list(self._last_success.items())]

    def _observe_next_fire(self, _options: CallbackOptions) -> Iterable[Observation]:
        if self._next_fire is None:
            return []
        ticks = self._next_fire()
        return [Observation(at.timestamp(), {"job": job}) for job, at in ticks.items()]

    def _observe_backlog(self, _options: CallbackOptions) -> Iterable[Observation]:
        return [] if self._backlog is None else [Observation(self._backlog)]

    def _observe_stuck_threads(self, _options: CallbackOptions) -> Iterable[Observation]:
        return [] if self._stuck_threads is None else [Observation(self._stuck_threads())]

    def _observe_late(self, _options: CallbackOptions) -> Iterable[Observation]:
        if self._late is None:
            return []
        return [Observation(flag, {"job": job}) for job, flag in self._late().items()]

    def _observe_lag(self, _options: CallbackOptions) -> Iterable[Observation]:
        latest = self.loop_lag.latest_s
        return [] if latest is None else [Observation(latest)]

    def _observe_lag_max(self, _options: CallbackOptions) -> Iterable[Observation]:
        worst = self.loop_lag.max_s
        return [] if worst is None else [Observation(worst)]


def setup_metrics(
    service_name: str,
    *,
    instance_id: str | None = None,
    registry: CollectorRegistry | None = None,
    otlp_url: str | None = None,
    otlp_exporter: MetricExporter | None = None,
    export_interval_ms: int = DEFAULT_EXPORT_INTERVAL_MS,
    resource_attributes: Mapping[str, str] | None = None,
) -> Metrics:
    """Build the meter provider, its Prometheus reader and the worker's instruments.

    `instance_id` becomes `service.instance.id` on `target_info` (pass the worker id, as
    `setup_tracing` gets). The instruments' scope labels are left off every series: one scope,
    and they would only lengthen each line. With `otlp_url` (the full metrics URL; or
    `otlp_exporter`, which tests pass) the series are also pushed every `export_interval_ms`.
    `resource_attributes` (`OTEL_RESOURCE_ATTRIBUTES`, parsed) go on the resource; the service
    name and instance id win over theirs. Register `Metrics.shutdown` on the exit stack.
    """
    registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
    # The reader gets a registry of its own, which `Metrics` reads from its collector in
    # `registry`, so that the histograms it aggregates itself take their usual place.
    source = CollectorRegistry()
    reader = PrometheusMetricReader(scope_info_enabled=False, registry=source)
    resource = Resource.create(
        {
            **(resource_attributes or {}),
            SERVICE_NAME: service_name,
            SERVICE_INSTANCE_ID: instance_id or str(uuid.uuid4()),
        }
    )
    readers: list[MetricReader] = [reader]
    bridge = None
    if otlp_url is not None or otlp_exporter is not None:
        otlp, bridge = otlp_metric_reader(
            otlp_url or "", export_interval_ms=export_interval_ms, exporter=otlp_exporter
        )
        readers.append(otlp)
    # No atexit hook: the exit stack owns shutdown.
    provider = MeterProvider(resource=resource, metric_readers=readers, shutdown_on_exit=False)
    metrics = Metrics(provider, registry, source)
    if bridge is not None:
        bridge.histograms = metrics.histograms
        metrics.push_interval_s = export_interval_ms / 1000
    return metrics
