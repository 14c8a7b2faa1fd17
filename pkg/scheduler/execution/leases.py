"""Keeping the leases of this worker's live runs, and giving up a run whose lease is lost.

One keeper per worker renews every live run it holds in one batch, every third of the store's
lease, so the cost is one round trip per interval whatever the number of runs. A run is lost when
the store says its row is no longer ours (its fence moved on: swept `abandoned`, or `replace`d by
another replica), or when no renewal succeeded for so long that its lease is about to lapse: the
keeper then cancels the run's task before any other replica may see the lease expired. The worker
writes nothing more to a lost run's row: the row is final already, or the sweep of whichever
replica sees its lease expired records it `abandoned`.

A renewal has a time limit of its own, one interval: a store that does not answer (frozen, or its
traffic black-holed) fails the renewal within bounded time, and the next one is sent. While a
renewal is in flight the keeper waits for it or for the next lease to watch, never for a renewal
instant already past: every pass of its loop awaits.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import structlog

from financial.pkg.scheduler.clock import Clock
from financial.pkg.scheduler.store import RunRecord, RunStore, describe

log = structlog.get_logger("financial.scheduler")

LostHandler = Callable[[asyncio.Task[object], str], None]


@dataclass(slots=True)
class _Held:
    run_id: str
    job: str
    fence: int
    # Local instant (the keeper's clock) until which the lease is certainly ours: the store set
    # its expiry from an instant after we sent the request that got it.
    valid_until: datetime
    # False once the run is being recorded: its task is then never cancelled for the lease.
    cancellable: bool = True


class LeaseKeeper:
    """Renews the leases of the runs held by this worker's tasks; cancels the lost ones."""

    def __init__(self, store: RunStore, clock: Clock, on_lost: LostHandler) -> None:
        self._store = store
        self._clock = clock
        self._on_lost = on_lost
        self.interval = store.lease / 3
        # Give up a run this long before its lease could lapse, so it has stopped by the time
        # another replica may see the lease expired.
        self.margin = store.lease / 6
        self._held: dict[asyncio.Task[object], _Held] = {}
        self._next_renewal: datetime | None = None
        self._renewing: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    @property
    def held(self) -> int:
        return len(self._held)

    def hold(self, task: asyncio.Task[object], record: RunRecord, claimed_at: datetime) -> None:
        """`task` now runs `record`, claimed by a request sent at `claimed_at`."""
        self._held[task] = _Held(
            record.run_id, record.job, record.fence, valid_until=claimed_at + self._store.lease
        )
        if self._next_renewal is None:
            # The keeper was idle. Otherwise it need not wake: its next wake-up, the renewal due
            # within a third of the lease, comes before this lease could need watching (at
            # five sixths), and waking it for every claim would walk every held run each time.
            self._next_renewal = claimed_at + self.interval
            self._wake.set()

    def settle(self, task: asyncio.Task[object]) -> None:
        """The task is recording its run's end: keep renewing, never cancel it."""
        held = self._held.get(task)
        if held is not None:
            held.cancellable = False

    def release(self, task: asyncio.Task[object]) -> None:
        """The task's run is final (or was never started); stop renewing it."""
        if self._held.pop(task, None) is not None and not self._held:
            self._next_renewal = None

    async def run(self) -> None:
        """Renew and watch leases until cancelled."""
        try:
            while True:
                now = self._clock.now()
                self._expire(now)
                due = self._next_renewal
                if due is not None and now >= due and not self._renewal_in_flight():
                    self._renewing = asyncio.ensure_future(self._renew())
                    self._next_renewal = now + self.interval
                elif not self._held:
                    self._cancel_renewal()  # every run it was for is gone
                self._wake.clear()
                deadline = self._deadline()
                if deadline is None:
                    # Nothing held: no timer at all, so an idle worker stays asleep.
                    await self._wake.wait()
                else:
                    await self._clock.sleep_until(deadline, self._wake)
        finally:
            self._cancel_renewal()

    def _renewal_in_flight(self) -> bool:
        return self._renewing is not None and not self._renewing.done()

    def _cancel_renewal(self) -> None:
        if self._renewing is not None and not self._renewing.done():
            self._renewing.cancel()

    def _deadline(self) -> datetime | None:
        instants = [h.valid_until - self.margin for h in self._held.values() if h.cancellable]
        # A renewal in flight wakes the keeper when it ends (or fails at its time limit): its
        # due instant, already past, is not a deadline to sleep until.
        if self._next_renewal is not None and not self._renewal_in_flight():
            instants.append(self._next_renewal)
        return min(instants) if instants else None

    def _expire(self, now: datetime) -> None:
        for task, held in list(self._held.items()):
            if held.cancellable and now >= held.valid_until - self.margin:
                self._lose(task, held, "its lease could not be renewed before it lapsed")

    def _lose(self, task: asyncio.Task[object], held: _Held, reason: str) -> None:
        del self._held[task]
        if not self._held:
            self._next_renewal = None
        log.warning("lease_lost", job=held.job, run_id=held.run_id, reason=reason)
        self._on_lost(task, reason)

    async def _renew(self) -> None:
        snapshot = {task: (held.run_id, held.fence) for task, held in self._held.items()}
        if not snapshot:
            return
        sent = self._clock.now()
        try:
            async with self._clock.timeout_at(sent + self.interval):
                renewed = await self._store.renew(dict(snapshot.values()))
        except Exception as exc:
            # The next pass tries again; the runs go on until their leases are about to lapse.
            if isinstance(exc, TimeoutError):
                error = f"no answer within {self.interval.total_seconds():g} s"
            else:
                error = describe(exc)
            log.warning("lease_renewal_failed", runs=len(snapshot), error=error)
            self._wake.set()
            return
        for task, (run_id, fence) in snapshot.items():
            held = self._held.get(task)
            if held is None or held.run_id != run_id or held.fence != fence:
                continue  # released, or holding a newer run, while we asked
            if run_id in renewed:
                held.valid_until = max(held.valid_until, sent + self._store.lease)
            elif held.cancellable:
                self._lose(task, held, "its run was ended by another worker")
            else:
                self.release(task)
        self._wake.set()
