"""The one seam for time: `Clock.now()` and a wakeable `sleep_until`.

Nothing else in the scheduler reads the wall clock. Unit tests use `FakeClock`, which moves only
when the test says so, so no test waits for a real cron tick.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from abc import ABC, abstractmethod
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

# Re-read the wall clock at least this often while sleeping, so a clock step or a suspend
# cannot make the scheduler sleep through a tick.
MAX_SLEEP = timedelta(seconds=30)

# How long before a deadline `SystemClock` stops sleeping on the event loop's timer. That timer
# fires late: the selector rounds its timeout up to a whole millisecond, and CPython's epoll
# rounds the result up again (a float a hair above n ms waits n + 1 ms), so it can fire two
# milliseconds after its time, and the kernel's timer slack on top (how late it fired on the
# benchmark machine: benchmarks/README.md#what-the-shortcuts-save). From this far out the clock
# yields to the loop until the deadline instead, which costs at most this much CPU per wake-up.
PRECISE_LEAD = timedelta(milliseconds=2.5)


class Clock(ABC):
    """Wall-clock time as aware UTC datetimes, and sleeping until an instant."""

    @abstractmethod
    def now(self) -> datetime:
        """The current instant, timezone-aware, in UTC."""

    @abstractmethod
    async def sleep_until(self, deadline: datetime, wake: asyncio.Event | None = None) -> bool:
        """Sleep until `deadline` or until `wake` is set; True when the deadline was reached.

        Never returns True before `now() >= deadline`, and always yields to the event loop at
        least once, even for a deadline already past: a loop that waits on a past deadline
        must let the work it waits for (a store call in flight) go on, not spin.
        """

    async def sleep(self, delay: timedelta) -> None:
        await self.sleep_until(self.now() + delay)

    @abstractmethod
    def timeout_at(self, deadline: datetime) -> TimeoutScope:
        """An async context manager that cancels its body at `deadline` and raises TimeoutError.

        Its `expired()` tells a timeout from a TimeoutError the body raised itself.
        """


class TimeoutScope(Protocol):
    """What `Clock.timeout_at` returns: `asyncio.Timeout`'s shape."""

    async def __aenter__(self) -> Any: ...
    async def __aexit__(self, *exc_info: Any) -> bool | None: ...
    def expired(self) -> bool: ...


class SystemClock(Clock):
    """The real clock: never wakes before its deadline, and wakes within microseconds after it.

    `sleep_until` sleeps on the event loop's timer in slices of at most `max_sleep`, re-reading
    the wall clock after each, until `precise_lead` before the deadline; it then yields to the
    loop (other tasks keep running) until the wall clock reaches the deadline. The loop's timer
    alone fires up to about 2 ms late (see `PRECISE_LEAD`), and every such millisecond is start
    lateness for each run due at that tick. The price is at most `precise_lead` of CPU per
    deadline reached; `precise_lead=timedelta(0)` turns the precise finish off.
    """

    def __init__(
        self, max_sleep: timedelta = MAX_SLEEP, precise_lead: timedelta = PRECISE_LEAD
    ) -> None:
        self._max_sleep_s = max_sleep.total_seconds()
        self._lead_s = max(precise_lead.total_seconds(), 0.0)

    def now(self) -> datetime:
        return datetime.now(UTC)

    def timeout_at(self, deadline: datetime) -> TimeoutScope:
        loop = asyncio.get_running_loop()
        return asyncio.timeout_at(loop.time() + (deadline - self.now()).total_seconds())

    async def sleep_until(self, deadline: datetime, wake: asyncio.Event | None = None) -> bool:
        loop = asyncio.get_running_loop()
        waited = False
        while True:
            remaining_s = (deadline - self.now()).total_seconds()
            if remaining_s <= 0 or (wake is not None and wake.is_set()):
                if not waited:
                    await asyncio.sleep(0)  # a wait on a past deadline still yields
                return self.now() >= deadline
            waited = True
            if remaining_s <= self._lead_s:
                # The last stretch: yield so other tasks run, and look at the clock again.
                await asyncio.sleep(0)
                continue
            slice_s = min(remaining_s - self._lead_s, self._max_sleep_s)
            await _wait(wake, loop.time() + slice_s)


async def _wait(wake: asyncio.Event | None, until_loop_time: float) -> None:
    """Wait on the loop's timer until `until_loop_time` (loop clock), or until `wake` is set."""
    if wake is None:
        await asyncio.sleep(until_loop_time - asyncio.get_running_loop().time())
        return
    # A timeout scope around the event's wait costs one timer handle; `asyncio.wait_for` would
    # also create a task for each wait (the cap's queue holds one sleeper per waiting run).
    try:
        async with asyncio.timeout_at(until_loop_time):
            await wake.wait()
    except TimeoutError:
        pass


class FakeClock(Clock):
    """A clock that moves only through `advance()` / `set()`; sleepers wake in deadline order.

    `advance` lets every task that became due run (by yielding to the loop until it is idle)
    before it moves time further, so a test reads like a timeline.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 5, 0, 0, tzinfo=UTC)
        self._sleepers: list[tuple[datetime, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now(self) -> datetime:
        return self._now

    async def sleep_until(self, deadline: datetime, wake: asyncio.Event | None = None) -> bool:
        if self._now >= deadline:
            await asyncio.sleep(0)
            return True
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (deadline, next(self._seq), fut))
        if wake is None:
            await fut
            return True
        waker = asyncio.ensure_future(wake.wait())
        try:
            await asyncio.wait((fut, waker), return_when=asyncio.FIRST_COMPLETED)
        finally:
            waker.cancel()
            if not fut.done():
                fut.cancel()
        return self._now >= deadline

    def timeout_at(self, deadline: datetime) -> TimeoutScope:
        return _FakeTimeout(self, deadline)

    def _alarm(self, deadline: datetime) -> asyncio.Future[None]:
        """A future resolved when fake time reaches `deadline`."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._now >= deadline:
            fut.set_result(None)
        else:
            heapq.heappush(self._sleepers, (deadline, next(self._seq), fut))
        return fut

    @property
    def next_deadline(self) -> datetime | None:
        """The earliest instant a sleeper waits for, if any."""
        self._drop_cancelled()
        return self._sleepers[0][0] if self._sleepers else None

    async def settle(self) -> None:
        """Let the event loop run until nothing more is ready (tasks blocked on time or I/O)."""
        for _ in range(200):
            await asyncio.sleep(0)

    def jump(self, delta: timedelta | float) -> None:
        """Move time forward at once, waking nobody: what a task that holds the event loop
        (a blocking call in an async job) leaves the others to find when it lets go."""
        self._now += delta if isinstance(delta, timedelta) else timedelta(seconds=delta)

    async def advance(self, delta: timedelta | float) -> None:
        """Move time forward by `delta`, waking sleepers one deadline at a time."""
        step = delta if isinstance(delta, timedelta) else timedelta(seconds=delta)
        await self.set(self._now + step)

    async def set(self, target: datetime) -> None:
        """Move time forward to `target`, stopping at each sleeper's deadline on the way."""
        await self.settle()
        while True:
            self._drop_cancelled()
            if not self._sleepers or self._sleepers[0][0] > target:
                break
            deadline = self._sleepers[0][0]
            self._now = max(self._now, deadline)
            while self._sleepers and self._sleepers[0][0] <= self._now:
                _, _, fut = heapq.heappop(self._sleepers)
                if not fut.done():
                    fut.set_result(None)
            await self.settle()
        self._now = max(self._now, target)
        await self.settle()

    def _drop_cancelled(self) -> None:
        while self._sleepers and self._sleepers[0][2].done():
            heapq.heappop(self._sleepers)


class _FakeTimeout:
    """`asyncio.Timeout` driven by fake time: expires when the fake clock reaches the deadline."""

    def __init__(self, clock: FakeClock, deadline: datetime) -> None:
        self._clock = clock
        self._deadline = deadline
        self._timeout = asyncio.Timeout(None)
        self._alarm: asyncio.Future[None] | None = None

    async def __aenter__(self) -> _FakeTimeout:
        await self._timeout.__aenter__()
        self._alarm = self._clock._alarm(self._deadline)
        self._alarm.add_done_callback(self._expire)
        return self

    def _expire(self, alarm: asyncio.Future[None]) -> None:
        if not alarm.cancelled():
            self._timeout.reschedule(asyncio.get_running_loop().time())

    async def __aexit__(self, *exc_info: Any) -> bool | None:
        if self._alarm is not None and not self._alarm.done():
            self._alarm.cancel()
        await self._timeout.__aexit__(*exc_info)
        return None

    def expired(self) -> bool:
        return self._timeout.expired()
