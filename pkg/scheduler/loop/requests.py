"""The request watcher: runs an operator asked the cluster for (`jobs trigger`, `jobs backfill`).

Every replica runs one. It claims pending requests (`store/requests.py`) while its scheduler has
room under the concurrency cap, and runs each through the scheduler's whole chain (claim, overlap,
slot, hooks, retries, timeout, history, leases) as a new attempt of the request's tick, with the
request's trigger (`manual`, `backfill`) and arguments (`ctx.args`). It then records the run and
its final status on the request.

It wakes on a PostgreSQL notification on `REQUESTS_CHANNEL` (the worker's one LISTEN connection,
`pkg/database/notifications.py`, named `LISTENER_PREFIX` + worker id, which is how `jobs trigger`
tells that a worker is there, calls `notified` for each one and `wake` each time it listens
again) and polls
every `poll_interval` all the same, so a notification lost while the connection was down costs a
few seconds, never a request. A store that fails is logged and tried again: the watcher never
stops the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

import structlog

from financial.pkg.jobs.model import RunStatus
from financial.pkg.scheduler.clock import Clock
from financial.pkg.scheduler.loop.scheduler import Scheduler
from financial.pkg.scheduler.registry import JobSpec
from financial.pkg.scheduler.store import RunRecord, describe
from financial.pkg.scheduler.store.requests import RequestStore, RunRequest

log = structlog.get_logger("financial.scheduler")

POLL_INTERVAL = timedelta(seconds=2)
# How long a request cut short by the drain's deadline may take to be recorded.
LAST_WRITE_S = 2.0
# A claim of a tick's attempt can lose to another run of that tick recorded in between (a
# scheduled one, a retry): tried again with the next attempt this many times.
ATTEMPT_TRIES = 3


class RequestWatcher:
    """Claims run requests for `scheduler`'s jobs and runs them; `stop()` only sets an event."""

    def __init__(
        self,
        *,
        requests: RequestStore,
        scheduler: Scheduler,
        clock: Clock,
        worker_id: str,
        poll_interval: timedelta = POLL_INTERVAL,
    ) -> None:
        self._requests = requests
        self._scheduler = scheduler
        self._clock = clock
        self._worker_id = worker_id
        self._poll = poll_interval
        self._held: set[str] = set()  # ids of the requests this worker is running
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()

    @property
    def _specs(self) -> dict[str, JobSpec]:
        # Read each time: the scheduler's jobs are those it runs now (a runtime setting may
        # change them), and a request runs with the job's current spec.
        return {spec.name: spec for spec in self._scheduler.jobs}

    def wake(self) -> None:
        """Look for requests now (a notification came, or the LISTEN connection is back)."""
        self._wake.set()

    def notified(self, _job: str) -> None:
        """A request for the job was recorded (a notification on `REQUESTS_CHANNEL`)."""
        self._wake.set()

    def stop(self) -> None:
        """Claim no more requests; those under way are the scheduler's drain's."""
        self._stop.set()
        self._wake.set()

    async def run(self) -> None:
        """Claim and start requests until `stop()`; then keep renewing the claims of the runs
        still under way (the scheduler's drain ends them) until none is left."""
        while not self._stop.is_set() or self._held:
            await self.run_pass()
            self._wake.clear()
            await self._clock.sleep_until(self._clock.now() + self._poll, self._wake)

    async def run_pass(self) -> list[RunRequest]:
        """Renew the claims held, then claim what the cap has room for and start each."""
        try:
            if self._held:
                await self._requests.renew(sorted(self._held), worker_id=self._worker_id)
            slots = self._scheduler.slots
            room = slots.capacity - slots.in_use - slots.waiting
            if room < 1 or self._stop.is_set() or not self._specs:
                return []
            claimed = await self._requests.claim(
                sorted(self._specs), worker_id=self._worker_id, limit=room
            )
        except Exception as exc:
            log.warning("run_requests_unavailable", error=describe(exc))
            return []
        for request in claimed:
            self._held.add(request.request_id)
            log.info(
                "run_request_claimed",
                job=request.job,
                request_id=request.request_id,
                scheduled_at=request.tick.isoformat(),
                trigger=request.trigger.value,
                requested_by=request.requested_by,
            )
            self._scheduler.spawn(self._carry(request))
        return claimed

    async def _carry(self, request: RunRequest) -> RunRecord | None:
        """Run one claimed request to its final status and record it on the request."""
        try:
            try:
                record = await self._run(request)
            except asyncio.CancelledError:
                # The drain's deadline: the run is recorded `interrupted`; so is the request.
                # A task of its own, bounded: this one is being cancelled.
                ending = self._complete(request, None, RunStatus.INTERRUPTED)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ending, LAST_WRITE_S)
                raise
            status = record.status if record is not None else RunStatus.MISSED
            if not status.is_final:  # the store took no end (lease lost): it will be swept
                status = RunStatus.ABANDONED
            await self._complete(request, record, status)
            return record
        finally:
            self._held.discard(request.request_id)
            self._wake.set()  # the job's next request may go now

    async def _run(self, request: RunRequest) -> RunRecord | None:
        record: RunRecord | None = None
        try:
            spec = self._specs[request.job]
            for _ in range(ATTEMPT_TRIES):
                attempt = await self._requests.next_attempt(request.job, request.tick)
                record = await self._scheduler.run_requested(
                    spec, request.tick, request.trigger, attempt, request.args
                )
                if record is not None:
                    break
        except Exception as exc:
            log.error("run_request_failed", request_id=request.request_id, error=describe(exc))
        return record

    async def _complete(
        self, request: RunRequest, record: RunRecord | None, status: RunStatus
    ) -> None:
        try:
            await self._requests.complete(
                request.request_id,
                worker_id=self._worker_id,
                run_id=record.run_id if record is not None else None,
                status=status,
            )
        except Exception as exc:
            # Its claim lapses and another replica ends it `abandoned`.
            log.warning("run_request_not_completed", request_id=request.request_id, error=str(exc))
            return
        log.info(
            "run_request_done", job=request.job, request_id=request.request_id, status=status.value
        )
