"""Where the time of one run goes: CPU microseconds per run, by layer and by component.

    python -m benchmarks.breakdown

Sampling profilers disagree on a run this short (tens of microseconds spread over twenty
functions), so this measures instead. Part 1 drives the real scheduler with `FakeClock` (no
waiting for real seconds) through many ticks of many jobs and divides process CPU by runs, for
the production wiring and with layers taken away; beside it, the CPU from the tick to the start
of its last run, per run, which is what start lateness grows with (each job reads the thread's
CPU clock, a fraction of a microsecond). Part 2 times the components a run goes through, each
in a tight loop.
"""

from __future__ import annotations

import asyncio
import gc
import json
import resource
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import structlog

from benchmarks.common import bench_logging
from benchmarks.ours import HEARTBEAT, PRODUCTION_CAP, memory_store, observed
from financial.cmd.collector import tune_collector
from financial.pkg.jobs import JobContext, Trigger, cron_job
from financial.pkg.scheduler.clock import FakeClock
from financial.pkg.scheduler.loop.scheduler import Scheduler, SchedulerConfig
from financial.pkg.scheduler.registry import JobRegistry
from financial.pkg.scheduler.schedules.schedule import parse_schedule

JOBS = 1000
TICKS = 10
PYTHON_GC_THRESHOLDS = (700, 10, 10)  # CPython 3.11's own


def _cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


async def per_run_us(
    log_level: str, tracing: bool, *, metrics: bool = True, collector: bool = True
) -> tuple[float, float]:
    """CPU microseconds per run, in all and before its tick's last run starts: `JOBS`
    every-second jobs for `TICKS` ticks on a fake clock. The second is what start lateness
    grows with (the last of N runs starts about N times it after the tick). `tracing` and
    `metrics` keep those hooks; `collector=False` leaves CPython's garbage collector as it
    comes instead of the worker's setting."""
    runs = 0
    last_start = 0.0

    async def job(ctx: JobContext) -> None:
        nonlocal runs, last_start
        runs += 1
        last_start = time.thread_time()

    registry = JobRegistry()
    for i in range(JOBS):
        registry.add(cron_job("* * * * * *", name=f"j{i}")(job))
    clock = FakeClock(datetime(2026, 1, 5, tzinfo=UTC))
    hooks, _ = observed(registry, clock, "bench", tracing=tracing, metrics_wrapper=metrics)
    with tempfile.TemporaryDirectory() as tmp, bench_logging(log_level, Path(tmp)):
        if collector:
            tune_collector()
        else:
            gc.unfreeze()
            gc.set_threshold(*PYTHON_GC_THRESHOLDS)
        scheduler = Scheduler(
            registry,
            store=memory_store(clock),
            clock=clock,
            config=SchedulerConfig(
                worker_id="bench", max_concurrent_jobs=PRODUCTION_CAP, heartbeat_interval=HEARTBEAT
            ),
            hooks=hooks,
        )
        loop_task = asyncio.create_task(scheduler.run())
        await clock.advance(1)  # warm-up tick
        runs = 0
        before = _cpu_s()
        to_last_start = 0.0
        for _ in range(TICKS):
            tick_began = time.thread_time()
            await clock.advance(1)
            to_last_start += last_start - tick_began
        spent = _cpu_s() - before
        scheduler.stop()
        await loop_task
        await scheduler.drain(timedelta(seconds=1))
    return spent / runs * 1e6, to_last_start / runs * 1e6


def _loop_us(fn: Callable[[], object], n: int = 20_000) -> float:
    began = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - began) / n * 1e6


async def _components() -> dict[str, float]:
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp, bench_logging("INFO", Path(tmp)):
        proxy = structlog.get_logger("financial.scheduler")
        concrete = proxy.bind()
        structlog.contextvars.bind_contextvars(
            job="j1", run_id=str(uuid.uuid4()), scheduled_at="2026-01-05T00:00:01+00:00",
            attempt=1, trace_id="0af7651916cd43dd8448eb211c80319c", span_id="b7ad6b7169203331",
        )  # fmt: skip
        out["one INFO JSON line, module-level logger (lazy proxy)"] = _loop_us(
            lambda: proxy.info("job_succeeded", duration_ms=0.012)
        )
        out["one INFO JSON line, concrete bound logger"] = _loop_us(
            lambda: concrete.info("job_succeeded", duration_ms=0.012)
        )
        structlog.contextvars.clear_contextvars()
    with tempfile.TemporaryDirectory() as tmp, bench_logging("WARNING", Path(tmp)):
        proxy = structlog.get_logger("financial.scheduler")
        concrete = proxy.bind()
        out["one filtered .info() at WARNING, lazy proxy"] = _loop_us(lambda: proxy.info("x"))
        out["one filtered .info() at WARNING, concrete logger"] = _loop_us(
            lambda: concrete.info("x")
        )
    bind = structlog.contextvars.bind_contextvars
    out["bind_contextvars, 4 keys"] = _loop_us(
        lambda: bind(job="j", run_id="r", scheduled_at="s", attempt=1)
    )
    schedule = parse_schedule("* * * * * *", "UTC")
    at = datetime(2026, 1, 5, tzinfo=UTC)
    out["Schedule.next_after, `* * * * * *`"] = _loop_us(lambda: schedule.next_after(at))
    out["uuid.uuid4() (a PostgreSQL claim's run id)"] = _loop_us(uuid.uuid4)
    store = memory_store(FakeClock(at))
    counter = iter(range(1, 10**9))

    async def claim_start_finish() -> None:
        tick = at + timedelta(seconds=next(counter))
        r = await store.claim("j", tick, attempt=1, trigger=Trigger.SCHEDULE, worker_id="w")
        assert r is not None
        await store.start(r.run_id, fence=r.fence)
        await store.finish(r.run_id, r.status.SUCCEEDED, fence=r.fence)

    began = time.perf_counter()
    for _ in range(5000):
        await claim_start_finish()
    out["MemoryRunStore claim + start + finish (5,000 runs in the store)"] = (
        (time.perf_counter() - began) / 5000 * 1e6
    )
    loop = asyncio.get_running_loop()

    async def empty() -> None:
        return None

    began = time.perf_counter()
    await asyncio.gather(*(asyncio.ensure_future(empty()) for _ in range(20_000)))
    out["a task per run: create, run, gather"] = (time.perf_counter() - began) / 20_000 * 1e6

    async def scoped() -> None:
        async with asyncio.timeout_at(loop.time() + 300):
            await empty()

    began = time.perf_counter()
    for _ in range(20_000):
        await scoped()
    out["asyncio.timeout_at scope around a run"] = (time.perf_counter() - began) / 20_000 * 1e6
    return out


async def main_async() -> dict[str, Any]:
    """Both parts, as a dict."""
    layers = {
        "production wiring, INFO": await per_run_us("INFO", tracing=True),
        "production wiring, WARNING": await per_run_us("WARNING", tracing=True),
        "WARNING, no tracing wrapper": await per_run_us("WARNING", tracing=False),
        "WARNING, no metrics wrapper": await per_run_us("WARNING", tracing=True, metrics=False),
        "WARNING, Python's default garbage collector": await per_run_us(
            "WARNING", tracing=True, collector=False
        ),
    }
    return {"per_run_us": layers, "components_us": await _components()}


def main() -> int:
    """Print the breakdown as markdown (and JSON with --json)."""
    result = asyncio.run(main_async())
    if "--json" in sys.argv:
        print(json.dumps(result, indent=1))
        return 0
    print(
        f"| layer ({JOBS} jobs, {TICKS} ticks, fake clock) | CPU µs per run "
        "| of which before the tick's last start |\n|---|---|---|"
    )
    for name, (total, to_last_start) in result["per_run_us"].items():
        print(f"| {name} | {total:.1f} | {to_last_start:.1f} |")
    print("\n| component | µs per call |\n|---|---|")
    for name, us in result["components_us"].items():
        print(f"| {name} | {us:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
