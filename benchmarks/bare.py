"""Floors to compare with: what the machine gives with no scheduler bookkeeping at all.

- `lateness`: a bare dispatcher: a heap of (next fire time, job), the same `SystemClock` sleep,
  `Schedule.next_after` for the next tick and one task per run that records its start. No
  claim, no logging, no tracing, no history: the floor a real scheduler approaches.
- `idle`: an event loop with nothing to do, for the idle CPU to be read against.
"""

from __future__ import annotations

import asyncio
import heapq
import math
import time
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any

from benchmarks.common import (
    Result,
    Usage,
    Wakeups,
    lateness_summary,
    on_overrun,
    overrun_result,
    peak_rss_mb,
    sleep_until_epoch,
)
from financial.pkg.scheduler.clock import SystemClock
from financial.pkg.scheduler.schedules.schedule import Schedule, parse_schedule

Start = tuple[str, float, float]


async def lateness(jobs: int, duration_s: int, log_level: str) -> Result:
    """`jobs` every-second jobs on the bare dispatcher; `log_level` is ignored (no logging)."""
    starts: list[Start] = []
    schedule = parse_schedule("* * * * * *", "UTC")
    clock = SystemClock()
    stop = asyncio.Event()
    tasks: set[asyncio.Task[None]] = set()

    def job(name: str, at: datetime) -> Callable[[], Coroutine[Any, Any, None]]:
        async def run() -> None:
            started = time.time()
            starts.append((name, at.timestamp(), started))

        return run

    async def dispatch(specs: list[tuple[str, Schedule]]) -> None:
        now = clock.now()
        heap = [(schedule.next_after(now), i, name, sched) for i, (name, sched) in enumerate(specs)]
        heapq.heapify(heap)
        while not stop.is_set():
            now = clock.now()
            # Jobs on the same schedule due at the same tick share their next tick: computed
            # once per (schedule, tick), not once per job.
            following: dict[tuple[Schedule, datetime], datetime] = {}
            while heap[0][0] <= now:
                at, i, name, sched = heapq.heappop(heap)
                task = asyncio.create_task(job(name, at)())
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                nxt = following.get((sched, at))
                if nxt is None:
                    nxt = following[(sched, at)] = sched.next_after(at)
                heapq.heappush(heap, (nxt, i, name, sched))
            await clock.sleep_until(heap[0][0], stop)

    first_tick = math.floor(time.time()) + 2
    last_tick = first_tick + duration_s - 1
    before = Usage.now()
    on_overrun(lambda: overrun_result(starts, first_tick, last_tick, jobs, before))
    loop_task = asyncio.create_task(dispatch([(f"j{i}", schedule) for i in range(jobs)]))
    await sleep_until_epoch(last_tick + 0.5)
    stop.set()
    await loop_task
    if tasks:
        await asyncio.gather(*tasks)
    after = Usage.now()
    rss_mb = peak_rss_mb()  # before the summary's own lists and sets
    return {
        **lateness_summary(starts, first_tick, last_tick, jobs),
        "cpu_per_s": (after.cpu_s - before.cpu_s) / (after.wall_s - before.wall_s),
        "cpu_s": after.cpu_s - before.cpu_s,
        "runs": len(starts),
        "rss_mb": rss_mb,
    }


async def idle(jobs: int, duration_s: int, log_level: str) -> Result:
    """An idle event loop: the CPU a process uses doing nothing for `duration_s`."""
    await asyncio.sleep(0.5)
    before = Usage.now()
    woke = Wakeups.count
    await asyncio.sleep(duration_s)
    after = Usage.now()
    woke = Wakeups.count - woke
    return {
        "cpu_s": after.cpu_s - before.cpu_s,
        "wall_s": after.wall_s - before.wall_s,
        "wakeups": woke,
    }
