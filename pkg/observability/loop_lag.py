"""The event loop lag probe behind `event_loop_lag_seconds` and `event_loop_lag_max_seconds`."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable

LAG_WINDOW_S = 60.0
"""The window of `event_loop_lag_max_seconds`."""


class EventLoopLagMonitor:
    """Samples how late the event loop wakes a sleeper that asked for `interval_s`.

    This measures the real loop, so it reads the process's monotonic clock (`time.monotonic`,
    the one asyncio's loop keeps) rather than the scheduler's `Clock` (which may be a fake one);
    `monotonic` and `sleep` are parameters for tests. A job that blocks the loop for 10 s shows
    as a 10 s sample right after it lets go. `latest_s` and `max_s` may be read from any thread
    (a `/metrics` scrape's, the OTLP reader's).

    With `while_busy`, it samples only while `busy()` counts work in flight (the worker's runs:
    only a job's code can hold the loop for long), so an idle worker does not wake for it; its
    samples then age out of the window by the clock, not only as new ones come.
    """

    def __init__(
        self,
        interval_s: float = 0.5,
        *,
        window_s: float = LAG_WINDOW_S,
        monotonic: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        while_busy: bool = False,
    ) -> None:
        self.interval_s = interval_s
        self.window_s = window_s
        self._monotonic = monotonic or time.monotonic
        self._sleep = sleep
        self._samples: deque[tuple[float, float]] = deque()
        self._task: asyncio.Task[None] | None = None
        self._while_busy = while_busy
        self._busy = 0
        self._work = asyncio.Event()

    @property
    def latest_s(self) -> float | None:
        recent = self._recent()
        return recent[-1][1] if recent else None

    @property
    def max_s(self) -> float | None:
        recent = self._recent()
        return max(lag for _, lag in recent) if recent else None

    def busy(self, delta: int) -> None:
        """Work began (+1) or ended (-1); with `while_busy`, the probe samples while any is on."""
        self._busy += delta
        if self._busy > 0:
            self._work.set()

    def start(self) -> None:
        """Start sampling in a task of the running loop (idempotent)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="loop-lag")

    async def stop(self) -> None:
        """Stop sampling and wait for the task to end."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    def record(self, at: float, lag_s: float) -> None:
        """Keep one sample, dropping those older than the window."""
        self._samples.append((at, lag_s))
        while self._samples and self._samples[0][0] < at - self.window_s:
            self._samples.popleft()

    def _recent(self) -> list[tuple[float, float]]:
        """The samples of the window, read in one step without changing them: the readers may
        be on another thread than `record`, which alone drops old samples. Sampling only while
        busy, the samples of an idle worker age out by the clock."""
        samples = list(self._samples)  # one step: the loop may append meanwhile
        if not self._while_busy or not samples:
            return samples
        cutoff = self._monotonic() - self.window_s
        return [sample for sample in samples if sample[0] >= cutoff]

    async def _run(self) -> None:
        monotonic = self._monotonic
        while True:
            if self._while_busy and self._busy <= 0:
                self._work.clear()
                await self._work.wait()
                continue
            before = monotonic()
            await self._sleep(self.interval_s)
            after = monotonic()
            self.record(after, max(after - before - self.interval_s, 0.0))
