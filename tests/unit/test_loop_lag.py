"""The event-loop lag monitor: how late the loop wakes, sampled only while runs are in flight,
and its two series."""

from __future__ import annotations

import asyncio

import pytest

from financial.pkg.observability.metrics import EventLoopLagMonitor, Metrics
from tests.unit.metrics_scrape import scrape, value


async def test_loop_lag_monitor_samples_how_late_the_loop_wakes() -> None:
    now = [100.0]
    extra = [0.0, 0.002, 4.0, 0.0]
    woke = asyncio.Event()

    async def sleep(delay: float) -> None:
        if not extra:
            woke.set()
            await asyncio.Event().wait()
        now[0] += delay + extra.pop(0)

    monitor = EventLoopLagMonitor(0.5, window_s=1.2, monotonic=lambda: now[0], sleep=sleep)
    monitor.start()
    await asyncio.wait_for(woke.wait(), 5)
    await monitor.stop()
    assert monitor.latest_s == pytest.approx(0.0)
    # The 4 s stall is the worst sample of the window; the 2 ms one has aged out of it.
    assert monitor.max_s == pytest.approx(4.0)
    assert len(monitor._samples) == 2


async def test_loop_lag_series(metrics: Metrics) -> None:
    assert value(await scrape(metrics), "financial_worker_event_loop_lag_seconds") is None
    now = asyncio.get_running_loop().time()
    metrics.loop_lag.record(now - 0.5, 0.25)
    metrics.loop_lag.record(now, 0.001)
    samples = await scrape(metrics)
    assert value(samples, "financial_worker_event_loop_lag_seconds") == 0.001
    assert value(samples, "financial_worker_event_loop_lag_max_seconds") == 0.25


async def test_the_workers_lag_probe_samples_only_while_runs_are_in_flight() -> None:
    now = [100.0]
    woke: list[float] = []
    released = asyncio.Event()

    async def sleep(delay: float) -> None:
        now[0] += delay
        woke.append(now[0])
        await released.wait()
        released.clear()

    monitor = EventLoopLagMonitor(
        0.5, window_s=60.0, monotonic=lambda: now[0], sleep=sleep, while_busy=True
    )
    monitor.start()
    for _ in range(5):
        await asyncio.sleep(0)
    assert woke == []  # idle: no wake-up at all
    monitor.busy(+1)
    for _ in range(5):
        await asyncio.sleep(0)
    assert woke == [100.5]
    monitor.busy(-1)
    released.set()
    for _ in range(5):
        await asyncio.sleep(0)
    assert woke == [100.5] and monitor.latest_s == 0.0  # the sample taken, then idle again
    # Idle, the samples age out by the clock, so an old stall stops showing.
    now[0] += 61.0
    assert monitor.max_s is None and monitor.latest_s is None
    await monitor.stop()


async def test_attempts_in_flight_drive_the_lag_probe(metrics: Metrics) -> None:
    metrics.add_in_flight("daily", 1)
    metrics.add_in_flight("hourly", 1)
    metrics.add_in_flight("daily", -1)
    assert metrics.loop_lag._busy == 1
    metrics.add_in_flight("hourly", -1)
    assert metrics.loop_lag._busy == 0


async def test_loop_lag_monitor_on_the_real_loop_stops_cleanly() -> None:
    monitor = EventLoopLagMonitor(0.001)
    monitor.start()
    monitor.start()  # idempotent
    await asyncio.sleep(0.02)
    await monitor.stop()
    await monitor.stop()
    assert monitor.latest_s is not None and monitor.latest_s >= 0.0
