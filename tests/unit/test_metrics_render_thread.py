"""A `/metrics` scrape builds its text on a thread of its own, so the loop keeps running its
ticks meanwhile (the figures: `python -m benchmarks.metrics_scrape`): what the loop records
during a scrape is never lost nor half-counted, and what the callbacks read works off the loop."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime

from financial.pkg.jobs.model import RunStatus
from financial.pkg.observability.metrics import EventLoopLagMonitor, Metrics
from tests.unit.metrics_scrape import scrape, value

TICK = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
DURATION = "financial_worker_run_duration_seconds"


async def test_the_exposition_is_built_off_the_loop_thread(metrics: Metrics) -> None:
    read_on: list[int] = []

    def next_ticks() -> dict[str, datetime]:
        read_on.append(threading.get_ident())
        return {"report": TICK}

    metrics.watch_next_fire_times(next_ticks)
    samples = await scrape(metrics)

    assert value(samples, "financial_worker_next_fire_timestamp_seconds", job="report") == (
        TICK.timestamp()
    )
    assert read_on and threading.get_ident() not in read_on


async def test_a_run_recorded_during_a_scrape_is_in_the_next_one_whole(metrics: Metrics) -> None:
    loop = asyncio.get_running_loop()
    metrics.record_attempt("report", RunStatus.SUCCEEDED, 1.0)
    recorded_during = threading.Event()

    def next_ticks() -> dict[str, datetime]:
        # On the scrape's thread, after the histograms were frozen: the loop records a run now.
        if not recorded_during.is_set():
            loop.call_soon_threadsafe(record_on_the_loop)
            assert recorded_during.wait(5)
        return {}

    def record_on_the_loop() -> None:
        metrics.record_attempt("report", RunStatus.SUCCEEDED, 2.0)
        recorded_during.set()

    metrics.watch_next_fire_times(next_ticks)
    first = await scrape(metrics)
    second = await scrape(metrics)

    # The first scrape is the histogram as frozen: its count, +Inf bucket and sum agree.
    assert value(first, DURATION + "_count", job="report") == 1
    assert value(first, DURATION + "_bucket", job="report", le="+Inf") == 1
    assert value(first, DURATION + "_sum", job="report") == 1.0
    assert value(second, DURATION + "_count", job="report") == 2
    assert value(second, DURATION + "_bucket", job="report", le="+Inf") == 2
    assert value(second, DURATION + "_sum", job="report") == 3.0


async def test_scrapes_at_once_each_get_the_whole_text(metrics: Metrics) -> None:
    for i in range(50):
        metrics.record_attempt(f"job-{i}", RunStatus.SUCCEEDED, 0.2)
    texts = await asyncio.gather(*(metrics.render() for _ in range(4)))
    for text in texts:
        assert text.decode().count(DURATION + "_count{") == 50


async def test_the_loop_lag_reads_from_another_thread() -> None:
    monitor = EventLoopLagMonitor(0.5, while_busy=True)  # the process's monotonic clock
    monitor.record(time.monotonic(), 0.03)
    assert await asyncio.to_thread(lambda: (monitor.latest_s, monitor.max_s)) == (0.03, 0.03)


async def test_the_loop_lag_ages_out_for_a_reader_on_another_thread() -> None:
    now = [100.0]
    monitor = EventLoopLagMonitor(0.5, window_s=60.0, monotonic=lambda: now[0], while_busy=True)
    monitor.record(99.0, 0.25)
    monitor.record(100.0, 0.002)

    latest, worst = await asyncio.to_thread(lambda: (monitor.latest_s, monitor.max_s))
    assert (latest, worst) == (0.002, 0.25)
    now[0] = 159.5  # the first sample is out of the window, the second not yet
    assert await asyncio.to_thread(lambda: monitor.max_s) == 0.002
    now[0] = 200.0
    assert await asyncio.to_thread(lambda: (monitor.latest_s, monitor.max_s)) == (None, None)
