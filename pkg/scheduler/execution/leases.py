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
from datetime import datetime

import structlog

from financial.pkg.scheduler.clock import Clock
from financial.pkg.scheduler.execution.run import Lease, Run
from financial.pkg.scheduler.store import RunRecord, RunStore, describe

log = structlog.get_logger("financial.scheduler")

LostHandler = Callable[[Run, str], None]


class LeaseKeeper:
    """Renews the leases of this worker's live runs (`Run.lease`); gives up the lost ones."""

    def __init__(self, store: RunStore, clock: Clock, on_lost: LostHandler) -> None:
        self._store = store
        self._clock = clock
        self._on_lost = on_lost
        self.interval = store.lease / 3
        # Give up a run this long before its lease could lapse, so it has stopped by the time
        # another replica may see the lease expired.
        self.margin = store.lease / 6
        self._held: set[Run] = set()
        self._next_renewal: datetime | None = None
        self._renewing: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    @property
    def held(self) -> int:
        return len(self._held)

    def hold(self, run: Run, record: RunRecord, claimed_at: datetime) -> None:
        """`run` now holds `record`, claimed by a request sent at `claimed_at`."""
        run.lease = Lease(record.run_id, record.fence, valid_until=claimed_at + self._store.lease)
        self._held.add(run)
        if self._next_renewal is None:
            # The keeper was idle. Otherwise it need not wake: its next wake-up, the renewal due
            # within a third of the lease, comes before this lease could need watching (at
            # five sixths), and waking it for every claim would walk every held run each time.
            self._next_renewal = claimed_at + self.interval
            self._wake.set()

    def settle(self, run: Run) -> None:
        """The run is recording its end: keep renewing, never cancel it."""
        if run.lease is not None:
            run.lease.cancellable = False

    def release(self, run: Run) -> None:
        """The run is final (or was never started); stop renewing it."""
        run.lease = None
        if run in self._held:
            self._held.discard(run)
            if not self._held:
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
        instants = [
            lease.valid_until - self.margin for lease in self._leases() if lease.cancellable
        ]
        # A renewal in flight wakes the keeper when it ends (or fails at its time limit): its
        # due instant, already past, is not a deadline to sleep until.
        if self._next_renewal is not None and not self._renewal_in_flight():
            instants.append(self._next_renewal)
        return min(instants) if instants else None

    def _leases(self) -> list[Lease]:
        return [run.lease for run in self._held if run.lease is not None]

    def _expire(self, now: datetime) -> None:
        for run in list(self._held):
            lease = run.lease
            if lease is not None and lease.cancellable and now >= lease.valid_until - self.margin:
                self._lose(run, lease, "its lease could not be renewed before it lapsed")

    def _lose(self, run: Run, lease: Lease, reason: str) -> None:
        self._held.discard(run)
        run.lease = None
        if not self._held:
            self._next_renewal = None
        log.warning("lease_lost", job=run.job, run_id=lease.run_id, reason=reason)
        self._on_lost(run, reason)

    async def _renew(self) -> None:
        snapshot = {
            run: (run.lease.run_id, run.lease.fence) for run in self._held if run.lease is not None
        }
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
        for run, (run_id, fence) in snapshot.items():
            lease = run.lease
            if lease is None or lease.run_id != run_id or lease.fence != fence:
                continue  # released, or holding a newer row, while we asked
            if run_id in renewed:
                lease.valid_until = max(lease.valid_until, sent + self._store.lease)
            elif lease.cancellable:
                self._lose(run, lease, "its run was ended by another worker")
            else:
                self.release(run)
        self._wake.set()
