"""What every scenario shares: resource readings, percentiles, log setup, wall-clock waits."""

from __future__ import annotations

import asyncio
import json
import math
import os
import resource
import selectors
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

# A result is plain JSON: it crosses a process boundary and ends in a table.
Result = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Usage:
    """Process CPU seconds (user + system, every thread) at a wall-clock instant."""

    cpu_s: float
    wall_s: float

    @classmethod
    def now(cls) -> Usage:
        ru = resource.getrusage(resource.RUSAGE_SELF)
        return cls(cpu_s=ru.ru_utime + ru.ru_stime, wall_s=time.perf_counter())


def peak_rss_mb() -> float:
    """The process's peak resident set so far, in MiB (Linux reports `ru_maxrss` in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (`q` in 0..100) of values sorted ascending; NaN when empty."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100.0 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def lateness_summary(
    starts: Sequence[tuple[str, float, float]], first_tick: int, last_tick: int, jobs: int
) -> Result:
    """p50/p99/max start lateness in ms, expected/observed runs and duplicates.

    `starts` holds (job, scheduled epoch seconds, start epoch seconds); only ticks in
    [first_tick, last_tick] count, so the warm-up tick and anything after the stop are left out.
    """
    window = [s for s in starts if first_tick <= s[1] <= last_tick + 1e-6]
    keys = {(job, round(at, 6)) for job, at, _ in window}
    late_ms = sorted((started - at) * 1000.0 for _, at, started in window)
    return {
        "p50_ms": percentile(late_ms, 50),
        "p99_ms": percentile(late_ms, 99),
        "max_ms": late_ms[-1] if late_ms else math.nan,
        "expected": jobs * (last_tick - first_tick + 1),
        "observed": len(keys),
        "duplicates": len(window) - len(keys),
    }


def overrun_result(
    starts: Sequence[tuple[str, float, float]],
    first_tick: int,
    last_tick: int,
    jobs: int,
    before: Usage,
) -> Result:
    """The lateness figures of a run cut short: runs that had not started count as missed."""
    after = Usage.now()
    rss_mb = peak_rss_mb()
    return {
        **lateness_summary(list(starts), first_tick, last_tick, jobs),
        "cpu_per_s": (after.cpu_s - before.cpu_s) / (after.wall_s - before.wall_s),
        "cpu_s": after.cpu_s - before.cpu_s,
        "runs": len(starts),
        "rss_mb": rss_mb,
    }


@contextmanager
def bench_logging(level: str, log_dir: Path) -> Iterator[Path]:
    """The production log setup (JSON, one line per event) writing to a real file.

    A file rather than os.devnull: the worker's stdout goes to a pipe (journald, the container
    runtime), and a file costs the same write() per line, so formatting and writing are both in
    the figures. Yields the file's path; the file is closed afterwards.
    """
    # Imported here: the peer's process runs without our package.
    from financial.pkg.observability.logging import configure_logging

    path = log_dir / "worker.log"
    stream: TextIO = path.open("w", encoding="utf-8")
    try:
        configure_logging(level, "json", stream=stream)
        yield path
    finally:
        stream.close()


class Watchdog:
    """Writes a partial result and ends the process when a scenario overruns its budget.

    A scheduler that cannot keep up queues more work than it finishes, and its event loop may
    never get round to stopping; this thread (it gets the GIL at the interpreter's switch
    interval) writes what was measured so far, marked `overloaded`, and exits.
    """

    def __init__(self, budget_s: float, result_path: Path) -> None:
        self._result_path = result_path
        self._partial: Callable[[], Result] | None = None
        self._timer = threading.Timer(budget_s, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def partial(self, provider: Callable[[], Result]) -> None:
        """What to write if the budget runs out."""
        self._partial = provider

    def cancel(self) -> None:
        self._timer.cancel()

    def _expire(self) -> None:
        result: Result = {"overloaded": True}
        if self._partial is not None:
            result.update(self._partial())
        self._result_path.write_text(json.dumps(result), encoding="utf-8")
        os._exit(0)


WATCHDOG: Watchdog | None = None


def on_overrun(provider: Callable[[], Result]) -> None:
    """Register what the watchdog writes if this scenario overruns (no-op without one)."""
    if WATCHDOG is not None:
        WATCHDOG.partial(provider)


class Wakeups:
    """Counts the event loop's blocking waits in its selector: each ends in a wake-up.

    Installed on the selector class before the loop is made; `count` goes up by one per
    `select()` that may block (a timeout other than 0), which is what an idle daemon should
    hardly do (a poller does it often). Non-blocking polls between ready callbacks, such as
    the clock's last stretch before a deadline, are not wake-ups and are not counted.
    """

    count = 0
    installed = False  # not under uvloop, which waits in libuv, not in a selector

    @classmethod
    def install(cls) -> None:
        cls.installed = True
        selector: Any = selectors.DefaultSelector
        if getattr(selector.select, "_counted", False):
            return
        original = selector.select

        def select(self: Any, timeout: float | None = None) -> Any:
            if timeout is None or timeout > 0:
                cls.count += 1
            return original(self, timeout)

        select._counted = True  # type: ignore[attr-defined]
        selector.select = select


def count_lines(path: Path) -> int:
    """How many log lines a run wrote."""
    with path.open("rb") as f:
        return sum(1 for _ in f)


async def sleep_until_epoch(at_s: float) -> None:
    """Sleep until about when the wall clock reads `at_s` (for starting and stopping a run)."""
    await asyncio.sleep(max(0.0, at_s - time.time()))


class Countdown:
    """An event set once `count` calls of `tick` were made (runs that completed)."""

    def __init__(self, count: int) -> None:
        self.left = count
        self.done = asyncio.Event()
        if count <= 0:
            self.done.set()

    def tick(self) -> None:
        self.left -= 1
        if self.left <= 0:
            self.done.set()

    async def wait(self, timeout_s: float) -> None:
        """Wait for the count to run out, or `timeout_s` at most."""
        try:
            async with asyncio.timeout(timeout_s):
                await self.done.wait()
        except TimeoutError:
            pass
