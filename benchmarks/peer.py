"""The same scenarios on APScheduler 3.11's `AsyncIOScheduler`, the peer, as it ships.

The scheduler is made with nothing but its timezone: the stock `AsyncIOExecutor` and
`MemoryJobStore`, and APScheduler's defaults (coalesce, `max_instances=1`,
`misfire_grace_time=1`; the burst raises the grace to our 60 s start deadline). Jobs are
coroutine functions on `CronTrigger`s. Nothing configures logging here: the stdlib root logger
stays at Python's default, WARNING (what `configure_logging` sets too), so APScheduler's per-run
INFO lines are not written, and this process does not import our package at all.

APScheduler does not hand a job its scheduled time, and nothing is put in its path to learn it
(an executor subclass that did was measured as the peer's own cost). A job notes its name and
its start instant and returns, which is what our job does; each run's tick is derived afterwards
from its start instant: the latest tick at or before it, for jobs firing every second the whole
second at or before the start. That is the run's own tick as long as runs start within a second
of their tick; a run later than that would be counted against the next tick and show in the
table as a duplicate there and a run missed (`verify_ticks` checks the derivation against the
run times APScheduler submitted, off the measured path).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from benchmarks.common import (
    Countdown,
    Result,
    Usage,
    Wakeups,
    lateness_summary,
    on_overrun,
    overrun_result,
    peak_rss_mb,
    sleep_until_epoch,
)

try:
    from apscheduler.events import (  # type: ignore[import-untyped, import-not-found, unused-ignore]
        EVENT_JOB_SUBMITTED,
    )
    from apscheduler.schedulers.asyncio import (  # type: ignore[import-untyped, import-not-found, unused-ignore]
        AsyncIOScheduler,
    )
    from apscheduler.triggers.cron import (  # type: ignore[import-untyped, import-not-found, unused-ignore]
        CronTrigger,
    )
    from apscheduler.triggers.interval import (  # type: ignore[import-untyped, import-not-found, unused-ignore]
        IntervalTrigger,
    )
except ImportError as exc:  # pragma: no cover - the `bench` extra is not installed
    raise ImportError(f"APScheduler 3.11 is missing ({exc}): pip install -e '.[bench]'") from exc

Start = tuple[str, float, float]
Noted = tuple[str, float]


def new_scheduler() -> Any:
    """APScheduler's asyncio scheduler as it ships: its default executor and job store."""
    return AsyncIOScheduler(timezone=UTC)


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


def noting_job(name: str, sink: Callable[[Noted], None]) -> Callable[[], Awaitable[None]]:
    """A job that notes (job, start epoch seconds), read first thing, and returns."""

    async def run() -> None:
        sink((name, time.time()))

    return run


def with_ticks(noted: list[Noted]) -> list[Start]:
    """Each run with the tick derived from its start: the whole second at or before it."""
    return [(name, float(math.floor(started)), started) for name, started in noted]


def tick_mismatches(noted: list[Noted], submitted: dict[str, list[float]]) -> int:
    """Runs whose derived tick is not the run time APScheduler submitted them for (each job's
    runs start in the order they were submitted: `max_instances=1`)."""
    runs: dict[str, list[float]] = defaultdict(list)
    for name, started in noted:
        runs[name].append(started)
    wrong = 0
    for name, starts in runs.items():
        times = submitted.get(name, [])
        wrong += abs(len(starts) - len(times))
        wrong += sum(math.floor(s) != t for s, t in zip(starts, times, strict=False))
    return wrong


def every_second(trigger: str) -> Any:
    """A trigger firing on every whole second: `CronTrigger(second="*")`, the table's (our jobs
    are on the cron schedule `* * * * * *`), or `IntervalTrigger(seconds=1)` from the next whole
    second, which spares APScheduler its cron arithmetic (to show what that costs)."""
    if trigger == "cron":
        return CronTrigger(second="*", timezone=UTC)
    if trigger == "interval":
        start = datetime.fromtimestamp(math.floor(time.time()) + 1, UTC)
        return IntervalTrigger(seconds=1, start_date=start, timezone=UTC)
    raise ValueError(f"unknown trigger {trigger!r}: cron or interval")


async def lateness(
    jobs: int,
    duration_s: int,
    log_level: str,
    verify_ticks: bool = False,
    trigger: str = "cron",
) -> Result:
    """`jobs` jobs firing every second (`trigger`, see `every_second`); lateness over
    `duration_s` ticks.

    `log_level` is not used (the peer is measured without log output). `verify_ticks` adds a
    listener for APScheduler's submission events, which is in the peer's path: for checking the
    derived ticks, not for the table.
    """
    noted: list[Noted] = []
    submitted: dict[str, list[float]] = defaultdict(list)

    def on_submitted(event: Any) -> None:
        submitted[event.job_id] += [t.timestamp() for t in event.scheduled_run_times]

    scheduler = new_scheduler()
    if verify_ticks:
        scheduler.add_listener(on_submitted, EVENT_JOB_SUBMITTED)
    for i in range(jobs):
        name = f"j{i}"
        scheduler.add_job(noting_job(name, noted.append), every_second(trigger), id=name, name=name)
    first_tick = math.floor(time.time()) + 2
    last_tick = first_tick + duration_s - 1
    before = Usage.now()
    on_overrun(lambda: overrun_result(with_ticks(noted), first_tick, last_tick, jobs, before))
    scheduler.start()
    await sleep_until_epoch(last_tick + 0.5)
    await shut_down(scheduler)
    after = Usage.now()
    rss_mb = peak_rss_mb()  # before the summary's own lists and sets
    result: Result = {
        **lateness_summary(with_ticks(noted), first_tick, last_tick, jobs),
        "cpu_per_s": (after.cpu_s - before.cpu_s) / (after.wall_s - before.wall_s),
        "cpu_s": after.cpu_s - before.cpu_s,
        "runs": len(noted),
        "rss_mb": rss_mb,
    }
    if verify_ticks:
        result["tick_mismatches"] = tick_mismatches(noted, submitted)
    return result


async def idle(jobs: int, duration_s: int, log_level: str) -> Result:
    """`jobs` daily jobs at 03:00 and nothing due: CPU seconds over `duration_s`."""
    scheduler = new_scheduler()
    for i in range(jobs):
        trigger = CronTrigger.from_crontab("0 3 * * *", timezone=UTC)
        scheduler.add_job(noting_job(f"j{i}", lambda _: None), trigger, id=f"j{i}")
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
