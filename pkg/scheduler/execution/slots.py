"""The process-wide concurrency cap: slots handed out in order of scheduled time."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from datetime import datetime

from financial.pkg.scheduler.clock import Clock
from financial.pkg.scheduler.execution.starts_first import StartTicket


class OrderedSlots:
    """At most `capacity` holders; waiters get a slot earliest `scheduled_at` first.

    A waiter gives up at its deadline (the run's start deadline) or when the slots are closed
    (shutdown): `acquire` then returns False and the caller records the run `missed`.

    A waiter is a future in a heap, not a sleeper: when a tick's runs outnumber the slots,
    hundreds of them wait at once, and one watcher task (started with the first waiter, gone
    with the last) sleeps until the earliest deadline among them instead of each keeping a timer.
    """

    def __init__(self, capacity: int, clock: Clock) -> None:
        if capacity < 1:
            raise ValueError(f"concurrency cap {capacity}: expected >= 1")
        self.capacity = capacity
        self._clock = clock
        self._in_use = 0
        self._closed = False
        self._seq = itertools.count()
        # (priority, seq, future): resolved True when handed a slot, False at the deadline.
        self._waiters: list[tuple[datetime, int, asyncio.Future[bool]]] = []
        self._tickets: dict[asyncio.Future[bool], StartTicket] = {}
        self._deadlines: list[tuple[datetime, int, asyncio.Future[bool]]] = []
        self._watcher: asyncio.Task[None] | None = None
        self._watcher_wake = asyncio.Event()
        self._watching_until: datetime | None = None

    @property
    def in_use(self) -> int:
        return self._in_use

    @property
    def waiting(self) -> int:
        return sum(1 for *_, fut in self._waiters if not fut.done())

    async def acquire(
        self, priority: datetime, deadline: datetime, ticket: StartTicket | None = None
    ) -> bool:
        """Take a slot; False when none came before `deadline` or the slots were closed.

        A run that has to wait parks its start `ticket` until it is handed a slot.
        """
        if self._closed:
            return False
        if self._in_use < self.capacity:
            # Nobody waits while a slot is free: `release` hands slots straight to waiters.
            self._in_use += 1
            return True
        if self._clock.now() >= deadline:
            return False
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        seq = next(self._seq)
        heapq.heappush(self._waiters, (priority, seq, waiter))
        heapq.heappush(self._deadlines, (deadline, seq, waiter))
        self._watch(deadline)
        if ticket is not None:
            ticket.park()
            self._tickets[waiter] = ticket
        try:
            return await waiter
        except asyncio.CancelledError:
            # Cancelled after a slot was handed over: it goes to the next waiter.
            if waiter.done() and not waiter.cancelled() and waiter.result():
                self.release()
            raise
        finally:
            self._tickets.pop(waiter, None)

    def release(self) -> None:
        """Give a slot back, handing it straight to the earliest waiter still waiting."""
        while self._waiters:
            _, _, waiter = heapq.heappop(self._waiters)
            if waiter.done():
                continue
            waiter.set_result(True)
            ticket = self._tickets.get(waiter)
            if ticket is not None:
                ticket.unpark()  # it starts next: the end that gave the slot back waits
            return
        self._in_use -= 1

    def close(self) -> None:
        """Refuse new holders and wake every waiter empty-handed (shutdown)."""
        self._closed = True
        for _, _, waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(False)
        self._waiters.clear()
        self._deadlines.clear()
        self._watcher_wake.set()

    def _watch(self, deadline: datetime) -> None:
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.ensure_future(self._expire_waiters())
        elif self._watching_until is None or deadline < self._watching_until:
            self._watcher_wake.set()

    def expire(self, now: datetime) -> None:
        """Turn away every waiter whose deadline is `now` or earlier. The scheduler calls it
        before it dispatches the ticks due at `now`, so a run that could not start by the next
        tick of its job is given up before that tick is claimed."""
        while self._deadlines and (self._deadlines[0][2].done() or self._deadlines[0][0] <= now):
            _, _, waiter = heapq.heappop(self._deadlines)
            if not waiter.done():
                waiter.set_result(False)

    async def _expire_waiters(self) -> None:
        """Resolve False every waiter whose deadline passed; ends when none is left."""
        while self._deadlines:
            self.expire(self._clock.now())
            if not self._deadlines:
                break
            self._watching_until = self._deadlines[0][0]
            self._watcher_wake.clear()
            await self._clock.sleep_until(self._watching_until, self._watcher_wake)
        self._watching_until = None
