"""The same scenarios on APScheduler 3.11's `AsyncIOScheduler`, the peer.

Jobs are coroutine functions on `CronTrigger`s, run by the default `AsyncIOExecutor` with
APScheduler's defaults (coalesce, `max_instances=1`, `misfire_grace_time=1`; the burst raises
the grace to our 60 s start deadline). The stdlib root logger stays at WARNING (Python's default
and what `configure_logging` sets), so APScheduler's per-run INFO lines are not written.

APScheduler does not hand a job its scheduled time: a subclass of the executor puts the run
times it submits in a context variable, which the task it creates inherits.
"""

from __future__ import annotations

import asyncio
import contextvars
import math
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.common import (
    Countdown,
    Result,
    Usage,
    Wakeups,
    bench_logging,
    lateness_summary,
    on_overrun,
    overrun_result,
    peak_rss_mb,
    sleep_until_epoch,
)

try:
    from apscheduler.executors.asyncio import (  # type: ignore[import-untyped, import-not-found, unused-ignore]
        AsyncIOExecutor,
    )
    from apscheduler.schedulers.asyncio import (  # type: ignore[import-untyped, import-not-found, unused-ignore]
        AsyncIOScheduler,
    )
    from apscheduler.triggers.cron import (  # type: ignore[import-untyped, import-not-found, unused-ignore]
        CronTrigger,
    )
except ImportError as exc:  # pragma: no cover - the `bench` extra is not installed
    raise ImportError(f"APScheduler 3.11 is missing ({exc}): pip install -e '.[bench]'") from exc

_RUN_TIMES: contextvars.ContextVar[list[datetime]] = contextvars.ContextVar("run_times")
Start = tuple[str, float, float]


class RecordingExecutor(AsyncIOExecutor):  # type: ignore[misc]
    """`AsyncIOExecutor` whose tasks can read the run times they were submitted for."""

    def _do_submit_job(self, job: Any, run_times: list[datetime]) -> None:
        token = _RUN_TIMES.set(list(run_times))
        try:
            super()._do_submit_job(job, run_times)
        finally:
            _RUN_TIMES.reset(token)


def scheduled_at() -> float:
    """The run time of the current run, as epoch seconds (coalesced: the one run time)."""
    return _RUN_TIMES.get()[0].timestamp()


def new_scheduler() -> Any:
    return AsyncIOScheduler(timezone=UTC, executors={"default": RecordingExecutor()})


def version() -> str:
    """The installed APScheduler version."""
    from importlib.metadata import version as dist_version

    return dist_version("apscheduler")


async def shut_down(scheduler: Any, wait_s: float = 60.0) -> None:
    """Stop submitting (pause), let submitted runs finish, then shut down."""
    scheduler.pause()
    pending = set(scheduler._lookup_executor("default")._pending_futures)
    if pending:
        await asyncio.wait(pending, timeout=wait_s)
    scheduler.shutdown(wait=False)
    await asyncio.sleep(0.01)  # shutdown runs through call_soon_threadsafe


def recording_job(name: str, sink: Callable[[Start], None]) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        started = time.time()
        sink((name, scheduled_at(), started))

    return run


async def lateness(jobs: int, duration_s: int, log_level: str) -> Result:
    """`jobs` jobs on `CronTrigger(second="*")`; lateness over `duration_s` ticks."""
    starts: list[Start] = []
    with tempfile.TemporaryDirectory() as tmp, bench_logging(log_level, Path(tmp)):
        scheduler = new_scheduler()
        for i in range(jobs):
            name = f"j{i}"
            trigger = CronTrigger(second="*", timezone=UTC)
            scheduler.add_job(recording_job(name, starts.append), trigger, id=name, name=name)
        first_tick = math.floor(time.time()) + 2
        last_tick = first_tick + duration_s - 1
        before = Usage.now()
        on_overrun(lambda: overrun_result(starts, first_tick, last_tick, jobs, before))
        scheduler.start()
        await sleep_until_epoch(last_tick + 0.5)
        await shut_down(scheduler)
        after = Usage.now()
    return {
        **lateness_summary(starts, first_tick, last_tick, jobs),
        "cpu_per_s": (after.cpu_s - before.cpu_s) / (after.wall_s - before.wall_s),
        "rss_mb": peak_rss_mb(),
    }


async def idle(jobs: int, duration_s: int, log_level: str) -> Result:
    """`jobs` daily jobs at 03:00 and nothing due: CPU seconds over `duration_s`."""
    with tempfile.TemporaryDirectory() as tmp, bench_logging(log_level, Path(tmp)):
        scheduler = new_scheduler()
        for i in range(jobs):
            trigger = CronTrigger.from_crontab("0 3 * * *", timezone=UTC)
            scheduler.add_job(recording_job(f"j{i}", lambda _: None), trigger, id=f"j{i}")
        scheduler.start()
        await asyncio.sleep(0.5)
        before = Usage.now()
        woke = Wakeups.count
        await asyncio.sleep(duration_s)
        after = Usage.now()
        woke = Wakeups.count - woke
        await shut_down(scheduler)
    return {
        "cpu_s": after.cpu_s - before.cpu_s,
        "wall_s": after.wall_s - before.wall_s,
        "wakeups": woke,
    }


async def burst(runs: int, cap: int, work_s: float, log_level: str) -> Result:
    """`runs` jobs due at the same second; the cap is a shared semaphore (APScheduler's
    asyncio executor has none of its own)."""
    ends: list[float] = []
    done = Countdown(runs)
    slots = asyncio.Semaphore(cap)
    fire_at = math.floor(time.time()) + 3 + runs // 2000
    at = datetime.fromtimestamp(fire_at, UTC)

    async def run() -> None:
        async with slots:
            await asyncio.sleep(work_s)
            ends.append(time.time())
            done.tick()

    with tempfile.TemporaryDirectory() as tmp, bench_logging(log_level, Path(tmp)):
        scheduler = new_scheduler()
        for i in range(runs):
            trigger = CronTrigger(
                year=at.year,
                month=at.month,
                day=at.day,
                hour=at.hour,
                minute=at.minute,
                second=at.second,
                timezone=UTC,
            )
            scheduler.add_job(run, trigger, id=f"b{i}", misfire_grace_time=60)
        scheduler.start()
        if time.time() > fire_at - 0.5:
            raise RuntimeError("setup ran into the burst's fire time: raise the margin")
        await sleep_until_epoch(fire_at + 0.5)
        await done.wait(fire_at + 120 - time.time())
        await shut_down(scheduler)
    return {
        "completed": len(ends),
        "expected": runs,
        "seconds": (max(ends) - fire_at) if ends else math.nan,
        "rss_mb": peak_rss_mb(),
    }
