"""The process-wide concurrency cap: slots handed out in order of scheduled time."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from datetime import datetime

from financial.pkg.scheduler.clock import Clock


class _Waiter:
    __slots__ = ("event", "gone", "granted")

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.granted = False
        self.gone = False


class OrderedSlots:
    """At most `capacity` holders; waiters get a slot earliest `scheduled_at` first.

    A waiter gives up at its deadline (the run's start deadline) or when the slots are closed
    (shutdown): `acquire` then returns False and the caller records the run `missed`.
    """

    def __init__(self, capacity: int, clock: Clock) -> None:
        if capacity < 1:
            raise ValueError(f"concurrency cap {capacity}: expected >= 1")
        self.capacity = capacity
        self._clock = clock
        self._in_use = 0
        self._closed = False
        self._waiters: list[tuple[datetime, int, _Waiter]] = []
        self._seq = itertools.count()

    @property
    def in_use(self) -> int:
        return self._in_use

    @property
    def waiting(self) -> int:
        return sum(1 for *_, w in self._waiters if not w.gone)

    async def acquire(self, priority: datetime, deadline: datetime) -> bool:
        """Take a slot; False when none came before `deadline` or the slots were closed."""
        if self._closed:
            return False
        if self._in_use < self.capacity and not self._waiters:
            self._in_use += 1
            return True
        waiter = _Waiter()
        heapq.heappush(self._waiters, (priority, next(self._seq), waiter))
        try:
            while not waiter.granted and not self._closed and self._clock.now() < deadline:
                await self._clock.sleep_until(deadline, waiter.event)
        except BaseException:
            # Cancelled while waiting: a slot handed over in the meantime goes to the next one.
            if waiter.granted:
                self.release()
            waiter.gone = True
            raise
        if waiter.granted:
            return True
        waiter.gone = True
        return False

    def release(self) -> None:
        """Give a slot back, handing it straight to the earliest waiter still waiting."""
        while self._waiters:
            _, _, waiter = heapq.heappop(self._waiters)
            if waiter.gone:
                continue
            waiter.granted = True
            waiter.event.set()
            return
        self._in_use -= 1

    def close(self) -> None:
        """Refuse new holders and wake every waiter empty-handed (shutdown)."""
        self._closed = True
        for _, _, waiter in self._waiters:
            waiter.event.set()
