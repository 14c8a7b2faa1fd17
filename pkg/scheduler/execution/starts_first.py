"""Starts before ends: the bookkeeping after a run waits while runs due with it have yet to start.

The runs of one tick start one after the other on one event loop. Everything a run does after
its job returns (its log line, its span, writing its end to the run store) delays every run due
with it that has not started yet, and start lateness is what a scheduler is judged on. So the
scheduler hands each run it dispatches a `StartTicket`, settled the moment the run starts its
job (or will not start it); a run whose job has returned gives its slot back at once and then
waits here, while any ticket is open, before doing the rest.

A run waiting for a slot parks its ticket: it cannot start before a job ends, so nothing waits
for it (the ends then use the loop while the jobs run). The slot handed to it unparks the ticket
at once, so the end of the run that gave the slot back waits for this one to start.

The wait is bounded: after `max_hold` every waiting end goes ahead. It is skipped while the
worker stops, and a run cancelled while waiting goes on to record how its job ended instead.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from financial.pkg.scheduler.clock import Clock

# How long a finished run's bookkeeping may wait for the runs still to start. A tick of a
# thousand runs starts within a few hundred milliseconds; past this, something holds the slots.
MAX_HOLD = timedelta(seconds=1)


class StartTicket:
    """One dispatched run that has not started its job yet; `settle` once it has (or won't)."""

    __slots__ = ("_counted", "_gate", "_settled")

    def __init__(self, gate: StartsFirst) -> None:
        self._gate = gate
        self._counted = True  # holding ends back (not parked, not settled)
        self._settled = False

    def settle(self) -> None:
        """The run started its job, or will not start it. Idempotent."""
        self._settled = True
        self.park()

    def park(self) -> None:
        """The run waits for something other than the loop (a slot): it holds no end back."""
        if self._counted:
            self._counted = False
            self._gate._uncount()

    def unpark(self) -> None:
        """The run can go on (it was handed a slot): ends wait for it again."""
        if not self._counted and not self._settled:
            self._counted = True
            self._gate._count()


class StartsFirst:
    """Counts dispatched runs yet to start; `wait()` returns once there are none."""

    def __init__(self, clock: Clock, max_hold: timedelta = MAX_HOLD) -> None:
        self._clock = clock
        self._max_hold = max_hold
        self._pending = 0
        self._closed = False
        self._opened: asyncio.Event | None = None
        self._bound: asyncio.Task[None] | None = None  # a reference, so it is not collected

    @property
    def pending(self) -> int:
        return self._pending

    def ticket(self) -> StartTicket:
        """A ticket for a run being dispatched now (call it synchronously, at dispatch)."""
        self._pending += 1
        return StartTicket(self)

    def close(self) -> None:
        """The worker is stopping: nothing waits from now on."""
        self._closed = True
        self._open()

    async def wait(self) -> None:
        """Wait until no dispatched run is left to start, at most `max_hold`.

        A cancellation during the wait is taken back: the job has returned, and the caller goes
        on to record how (the one who cancelled sees the run end moments later).
        """
        if self._pending == 0 or self._closed:
            return
        opened = self._opened
        if opened is None:
            opened = self._opened = asyncio.Event()
            self._bound = asyncio.ensure_future(self._hold_at_most(opened))
        try:
            await opened.wait()
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()

    def _count(self) -> None:
        self._pending += 1

    def _uncount(self) -> None:
        self._pending -= 1
        if self._pending == 0:
            self._open()

    def _open(self) -> None:
        # The bound's sleep wakes on the event too, and finds nothing left to do.
        opened, self._opened = self._opened, None
        if opened is not None:
            opened.set()

    async def _hold_at_most(self, opened: asyncio.Event) -> None:
        await self._clock.sleep_until(self._clock.now() + self._max_hold, opened)
        if self._opened is opened:
            self._open()
