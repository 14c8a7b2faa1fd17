"""Scenarios driven through our scheduler, wired as `financial worker` wires it.

The wiring mirrors `cmd/worker.py` with nothing configured: the in-memory run store, the system
clock, the production concurrency cap (10) and heartbeat (5 s), the tracing wrapper with no
OTLP endpoint (trace and span ids for the log lines, no exporter), the metrics wrapper and the
event loop lag probe of `/metrics`, and the worker's setting of the garbage collector
(`collector.py`). Jobs do nothing but record
when they started, so the figures are the scheduler's.
"""

from __future__ import annotations

import asyncio
import importlib
import math
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

from benchmarks.common import (
    Countdown,
    Result,
    Usage,
    Wakeups,
    bench_logging,
    count_lines,
    lateness_summary,
    on_overrun,
    overrun_result,
    peak_rss_mb,
    sleep_until_epoch,
)
from financial.cmd.collector import tune_collector
from financial.pkg.jobs import FunctionJob, JobContext, cron_job
from financial.pkg.observability.metrics import Metrics, setup_metrics
from financial.pkg.observability.run_metrics import with_metrics
from financial.pkg.observability.tracing import setup_tracing, with_tracing
from financial.pkg.scheduler.clock import Clock, SystemClock
from financial.pkg.scheduler.execution.chain import Around
from financial.pkg.scheduler.loop.scheduler import Scheduler, SchedulerConfig
from financial.pkg.scheduler.registry import JobRegistry
from financial.pkg.scheduler.store import RunStore

# The production defaults of `financial worker` (configs/settings.py, cmd/worker.py).
PRODUCTION_CAP = 10
HEARTBEAT = timedelta(seconds=5)

Start = tuple[str, float, float]


def memory_store(clock: Clock | None = None) -> RunStore:
    """The in-memory run store (on `clock` when given), wherever this revision keeps it."""
    try:
        module = importlib.import_module("financial.pkg.scheduler.store.memory")
    except ImportError:
        module = importlib.import_module("financial.pkg.scheduler.store")
    store = module.MemoryRunStore() if clock is None else module.MemoryRunStore(clock)
    return cast(RunStore, store)


def observed(
    registry: JobRegistry,
    clock: Clock,
    worker_id: str,
    *,
    tracing: bool = True,
    metrics_wrapper: bool = True,
) -> tuple[list[Around], Metrics]:
    """The hooks `cmd/worker.py` puts around every run: tracing with no OTLP endpoint (ids
    for the log lines, no exporter) and the metrics of `/metrics` (either left out on request,
    to measure what it costs)."""
    metrics = setup_metrics("financial-worker", instance_id=worker_id)
    metrics.known_jobs(spec.name for spec in registry)
    hooks: list[Around] = []
    if tracing:
        telemetry = setup_tracing("financial-worker", endpoint=None, set_global=False)
        hooks.append(with_tracing(telemetry.tracer))
    if metrics_wrapper:
        hooks.append(with_metrics(metrics, clock))
    return hooks, metrics


def build_scheduler(
    registry: JobRegistry,
    *,
    cap: int = PRODUCTION_CAP,
    store: RunStore | None = None,
    worker_id: str = "bench",
) -> Scheduler:
    """A scheduler wired as `cmd/worker.py` wires it when nothing is configured, the event loop
    lag probe of `/metrics` included (it samples while runs are in flight)."""
    clock = SystemClock()
    hooks, metrics = observed(registry, clock, worker_id)
    metrics.loop_lag.start()
    tune_collector()
    return Scheduler(
        registry,
        store=store if store is not None else memory_store(),
        clock=clock,
        config=SchedulerConfig(
            worker_id=worker_id, max_concurrent_jobs=cap, heartbeat_interval=HEARTBEAT
        ),
        hooks=hooks,
        on_unstarted=lambda record: metrics.count_run(record.job, record.status),
    )


def recording_job(name: str, schedule: str, sink: Callable[[Start], None]) -> FunctionJob:
    """A job that records (job, tick, start) and returns: epoch seconds, read first thing."""

    async def run(ctx: JobContext) -> None:
        started = time.time()
        sink((ctx.job_name, ctx.scheduled_at.timestamp(), started))

    return cron_job(schedule, name=name)(run)


async def stop(scheduler: Scheduler, loop_task: asyncio.Task[None]) -> None:
    """Stop dispatching, then let every dispatched run finish (the drain)."""
    scheduler.stop()
    await loop_task
    await scheduler.drain(timedelta(seconds=60))


async def lateness(jobs: int, duration_s: int, log_level: str) -> Result:
    """`jobs` jobs firing every second; lateness over `duration_s` ticks after one warm-up."""
    starts: list[Start] = []
    registry = JobRegistry()
    for i in range(jobs):
        registry.add(recording_job(f"j{i}", "* * * * * *", starts.append))
    with tempfile.TemporaryDirectory() as tmp, bench_logging(log_level, Path(tmp)) as log_path:
        scheduler = build_scheduler(registry)
        first_tick = math.floor(time.time()) + 2  # the tick before it is a warm-up
        last_tick = first_tick + duration_s - 1
        before = Usage.now()
        on_overrun(lambda: overrun_result(starts, first_tick, last_tick, jobs, before))
        loop_task = asyncio.create_task(scheduler.run())
        await sleep_until_epoch(last_tick + 0.5)
        await stop(scheduler, loop_task)
        after = Usage.now()
        rss_mb = peak_rss_mb()  # before the summary's own lists and sets
        lines = count_lines(log_path)
    return {
        **lateness_summary(starts, first_tick, last_tick, jobs),
        "cpu_per_s": (after.cpu_s - before.cpu_s) / (after.wall_s - before.wall_s),
        "cpu_s": after.cpu_s - before.cpu_s,
        "runs": len(starts),
        "rss_mb": rss_mb,
        "log_lines": lines,
    }


async def idle(jobs: int, duration_s: int, log_level: str) -> Result:
    """`jobs` daily jobs (`0 3 * * *`) and nothing due: CPU seconds over `duration_s`."""
    registry = JobRegistry()
    for i in range(jobs):
        registry.add(recording_job(f"j{i}", "0 3 * * *", lambda _: None))
    with tempfile.TemporaryDirectory() as tmp, bench_logging(log_level, Path(tmp)):
        scheduler = build_scheduler(registry)
        loop_task = asyncio.create_task(scheduler.run())
        await asyncio.sleep(0.5)  # start-up (the first fire time of each job) is not idling
        before = Usage.now()
        woke = Wakeups.count
        await asyncio.sleep(duration_s)
        after = Usage.now()
        woke = Wakeups.count - woke
        await stop(scheduler, loop_task)
    return {
        "cpu_s": after.cpu_s - before.cpu_s,
        "wall_s": after.wall_s - before.wall_s,
        "wakeups": woke if Wakeups.installed else None,
    }


async def burst(runs: int, cap: int, work_s: float, log_level: str) -> Result:
    """`runs` jobs due at the same second, at most `cap` at once, each awaiting `work_s`."""
    ends: list[float] = []
    done = Countdown(runs)
    fire_at = math.floor(time.time()) + 3 + runs // 2000  # registration takes a while
    at = datetime.fromtimestamp(fire_at, UTC)
    schedule = f"{at.second} {at.minute} {at.hour} {at.day} {at.month} *"

    def busy_job(name: str) -> FunctionJob:
        async def run(ctx: JobContext) -> None:
            await asyncio.sleep(work_s)
            ends.append(time.time())
            done.tick()

        return cron_job(schedule, name=name)(run)

    registry = JobRegistry()
    for i in range(runs):
        registry.add(busy_job(f"b{i}"))
    with tempfile.TemporaryDirectory() as tmp, bench_logging(log_level, Path(tmp)):
        scheduler = build_scheduler(registry, cap=cap)
        loop_task = asyncio.create_task(scheduler.run())
        if time.time() > fire_at - 0.5:
            raise RuntimeError("setup ran into the burst's fire time: raise the margin")
        await sleep_until_epoch(fire_at + 0.5)
        await done.wait(fire_at + 120 - time.time())
        await stop(scheduler, loop_task)
    return {
        "completed": len(ends),
        "expected": runs,
        "seconds": (max(ends) - fire_at) if ends else math.nan,
        "rss_mb": peak_rss_mb(),
    }
