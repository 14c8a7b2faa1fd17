"""What happens to one tick, top to bottom: claim, admit, acquire a slot, start, attempts, record.

- **claim** (`claims.py`): the runs due at one instant together (`run_batch`), others alone
  (`run_tick`); each claimed run is then carried by a task of its own;
- **admit** (`overlap.py`): the job's overlap policy;
- **acquire a slot** (`slots.py`): the concurrency cap, in tick order, before the start deadline;
- **start** and **attempts** (`attempt.py`): the job called through its chain, retried by its
  policy;
- **record** (`records.py`): each attempt's end, the final failure's hook and event.

Each tick is carried by a `Run` (`run.py`) and ends with exactly one final status in the store:
`succeeded`, `failed`, `timed_out`, `skipped` (paused, or overlap), `missed` (could not start in
time), `interrupted` (shutdown, or a `replace` tick) or `abandoned` (its lease lapsed: written by
the sweep of whichever replica saw it, never by the worker that lost it).
A store that fails stops nothing: what it could not take waits in the backlog (`backlog.py`).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Coroutine, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import structlog

from financial.pkg.jobs.context import frozen_args
from financial.pkg.jobs.model import Overlap, RunStatus, Trigger
from financial.pkg.scheduler.clock import Clock
from financial.pkg.scheduler.execution.aftermath import (
    FailureHandler,
    report_final_failure,
    run_hook,
)
from financial.pkg.scheduler.execution.attempt import Attempts
from financial.pkg.scheduler.execution.backlog import Backlog
from financial.pkg.scheduler.execution.chain import Around, Outcome
from financial.pkg.scheduler.execution.leases import LeaseKeeper
from financial.pkg.scheduler.execution.overlap import OverlapGate
from financial.pkg.scheduler.execution.records import STOPPING_REASON, RunNotStarted, RunRecords
from financial.pkg.scheduler.execution.run import Due, Run, RunState
from financial.pkg.scheduler.execution.slots import OrderedSlots
from financial.pkg.scheduler.execution.starts_first import StartsFirst, StartTicket
from financial.pkg.scheduler.executors import Executors
from financial.pkg.scheduler.registry import JobSpec
from financial.pkg.scheduler.store import (
    RunError,
    RunRecord,
    RunStore,
    skipped_for_pause,
)

log = structlog.get_logger("financial.scheduler")

OVERLAP_POLL = timedelta(seconds=1)


class TickRunner:
    """Runs ticks of registered jobs against a run store, a clock and the slot pool."""

    def __init__(
        self,
        *,
        store: RunStore,
        clock: Clock,
        slots: OrderedSlots,
        worker_id: str,
        stopping: asyncio.Event,
        hooks: Sequence[Around] = (),
        on_final_failure: FailureHandler | None = None,
        on_unstarted: Callable[[RunRecord], None] | None = None,
        overlap_poll: timedelta = OVERLAP_POLL,
        executors: Executors | None = None,
        spawn: Callable[[Coroutine[Any, Any, object]], object] = asyncio.ensure_future,
    ) -> None:
        self._clock = clock
        self._spawn = spawn  # where the task carrying each claimed run of a batch is made
        self._executors = executors if executors is not None else Executors()
        self._slots = slots
        self._records = RunRecords(store, clock, worker_id, self._lease_lost)
        self._claims = self._records.claims
        self.starts = StartsFirst(clock)
        self._stopping = stopping
        self._on_final_failure = on_final_failure
        self._on_unstarted = on_unstarted
        self._live: set[Run] = set()  # the runs under way, for the drain to cancel
        # Set the moment the worker is asked to stop, before the drain sets `stopping`: a run
        # claimed just before then is recorded `missed` rather than started.
        self._halted = False
        self.overlap = OverlapGate(
            store=store, clock=clock, stopping=stopping, cancel=self.cancel, poll=overlap_poll
        )
        self._attempt = Attempts(
            clock=clock,
            records=self._records,
            slots=slots,
            starts=self.starts,
            executors=self._executors,
            hooks=hooks,
            stopping=stopping,
            halted=lambda: self._halted,
        )

    @property
    def interrupted(self) -> int:
        """Attempts cancelled by the worker (shutdown, `replace`), recorded `interrupted`."""
        return self._attempt.interrupted

    @property
    def leases(self) -> LeaseKeeper:
        return self._records.leases

    @property
    def backlog(self) -> Backlog:
        """The ticks and ends the store could not take while it was away."""
        return self._records.backlog

    def notify_unstarted(self, record: RunRecord) -> None:
        """Tell the `on_unstarted` hook (metrics) of a run that ended with no attempt here:
        skipped, missed, or abandoned by a replica that died with its own counts."""
        if self._on_unstarted is not None:
            self._on_unstarted(record)

    # -- entry points -------------------------------------------------------------------------

    async def run_batch(self, due: Sequence[Due]) -> None:
        """The runs due at one instant: claimed in one call to the store (`claim_batch`), then
        each claimed one carried by a task of its own, in the order they were due. No run has a
        task before its claim is answered, but for one whose job has a claim or an end still in
        flight, which claims alone in its own task, after them."""
        runs = [Run(d.spec.name, ticket=d.ticket) for d in due]
        self._live.update(runs)
        try:
            records, alone = await self._claims.claim_batch(runs, due)
        except BaseException:
            for run in runs:
                self._records.release(run)
                self._done(run)
            raise
        for i, (d, run, record) in enumerate(zip(due, runs, records, strict=True)):
            if i in alone or (record is not None and not record.status.is_final):
                self._spawn(self._carried(run, d, record))
            else:
                self._done(run)
                self._unclaimed(d.spec, d.at, record)

    async def _carried(self, run: Run, due: Due, record: RunRecord | None) -> RunRecord | None:
        """The task of one run of a batch, claimed already (`record`) or to claim alone."""
        task = asyncio.current_task()
        assert task is not None, "a run is carried by an asyncio task"
        run.attach(task)
        spec = due.spec
        try:
            if record is None:
                record = await self._claims.claim(
                    run, due.at, 1, Trigger.SCHEDULE, spec.options.overlap, due.start_by
                )
                if record is None or record.status.is_final:
                    return self._unclaimed(spec, due.at, record)
            return await self._carry(
                run, spec, record, Trigger.SCHEDULE, due.next_tick, due.start_by
            )
        finally:
            self._done(run)

    async def run_tick(
        self,
        spec: JobSpec,
        scheduled_at: datetime,
        trigger: Trigger,
        next_tick: datetime | None,
        *,
        attempt: int = 1,
        start_by: datetime | None = None,
        ticket: StartTicket | None = None,
        args: Mapping[str, Any] | None = None,
    ) -> RunRecord | None:
        """Run one tick to its final status, in the current task; None when another worker
        claimed it. For a tick that is not part of a batch: a manual run, a catch-up, a
        recovery, a job with jitter, a tick after missed ones.

        `start_by` defaults to the tick's own start deadline; a catch-up or a recovery of an
        older tick passes one counted from now. `ticket`, from `starts.ticket()` at dispatch, is
        settled once the job starts or will not (see `starts_first.py`). `args`: `ctx.args`.
        """
        run = self._begin(spec, ticket)
        run.args = frozen_args(args)
        try:
            if spec.options.jitter:
                run.settle_ticket()  # a run that waits on purpose holds no one back
                # Spread the start, not the tick: scheduled_at stays the tick the run belongs to.
                spread = spec.options.jitter * random.random()
                await self._clock.sleep_until(scheduled_at + spread, self._stopping)
            if start_by is None:
                start_by = spec.start_by(scheduled_at, next_tick)
            record = await self._claims.claim(
                run, scheduled_at, attempt, trigger, spec.options.overlap, start_by
            )
            if record is None or record.status.is_final:
                return self._unclaimed(spec, scheduled_at, record)
            return await self._carry(run, spec, record, trigger, next_tick, start_by)
        finally:
            self._done(run)

    def _begin(self, spec: JobSpec, ticket: StartTicket | None = None) -> Run:
        """A run of `spec` carried by the current task."""
        run = Run(spec.name, ticket=ticket)
        task = asyncio.current_task()
        assert task is not None, "a run is carried by an asyncio task"
        run.attach(task)
        self._live.add(run)
        return run

    def _done(self, run: Run) -> None:
        self._live.discard(run)
        run.settle_ticket()

    def _unclaimed(
        self, spec: JobSpec, scheduled_at: datetime, record: RunRecord | None
    ) -> RunRecord | None:
        """A tick claimed elsewhere (None) or ended at its claim (skipped, missed)."""
        if record is not None and record.error is not None:
            # A pause is an operator's choice, an overlap a sign the job runs too long.
            emit = log.info if skipped_for_pause(record) else log.warning
            emit(
                f"job_{record.status.value}",
                job=spec.name,
                run_id=record.run_id,
                scheduled_at=scheduled_at.isoformat(),
                reason=record.error.message,
            )
        if record is not None:
            self.notify_unstarted(record)
        return record

    async def _carry(
        self,
        run: Run,
        spec: JobSpec,
        record: RunRecord,
        trigger: Trigger,
        next_tick: datetime | None,
        start_by: datetime,
    ) -> RunRecord:
        """A claimed run, to its final status: admit it, then its attempts."""
        structlog.contextvars.bind_contextvars(
            job=spec.name,
            run_id=record.run_id,
            scheduled_at=record.scheduled_at.isoformat(),
            attempt=record.attempt,
        )
        state = self.overlap.state(spec.name)
        try:
            if self._halted:
                return await self._finish_unstarted(run, record, RunStatus.MISSED, STOPPING_REASON)
            if not self.overlap.clear(spec):
                if spec.options.overlap in (Overlap.QUEUE, Overlap.REPLACE):
                    run.settle_ticket()  # it may wait for another run to end
                refusal = await self.overlap.admit(spec, run, record, start_by)
                if refusal is not None:
                    status, reason = refusal
                    return await self._finish_unstarted(run, record, status, reason)
            run.state = RunState.ADMITTED
            state.active.add(run)
            try:
                return await self._attempts(run, spec, record, trigger, start_by, next_tick)
            finally:
                state.active.discard(run)
                state.changed.set()
        finally:
            self._records.release(run)

    async def record_missed(self, spec: JobSpec, scheduled_at: datetime, reason: str) -> None:
        """Claim a tick that can no longer start and record it `missed`."""
        run = self._begin(spec)
        try:
            record = await self._claims.claim(run, scheduled_at, 1, Trigger.SCHEDULE, Overlap.ALLOW)
            if record is None or record.status.is_final:
                return
            await self._finish_unstarted(run, record, RunStatus.MISSED, reason)
        finally:
            self._records.release(run)
            self._done(run)

    def halt(self) -> None:
        """The worker is stopping: no claimed run starts from now on."""
        self._halted = True
        self.starts.close()

    def cancel(self, run: Run, reason: str) -> None:
        """Cancel a run; it is recorded `interrupted` with `reason`."""
        run.cancel(reason)

    def cancel_all(self, reason: str) -> None:
        """Cancel every run under way (the shutdown deadline passed)."""
        for run in list(self._live):
            run.cancel(reason)

    def wake_waiters(self) -> None:
        """Wake every tick waiting on overlap, so it sees the worker is stopping."""
        self.overlap.wake_all()

    def _lease_lost(self, run: Run, reason: str) -> None:
        run.lost_reason = reason
        run.cancel(f"lease lost: {reason}")

    # -- stages -------------------------------------------------------------------------------

    async def _attempts(
        self,
        run: Run,
        spec: JobSpec,
        record: RunRecord,
        trigger: Trigger,
        start_by: datetime,
        next_tick: datetime | None,
    ) -> RunRecord:
        first = record.attempt
        while True:
            run.state = RunState.WAITING_FOR_SLOT
            if not await self._slots.acquire(record.scheduled_at, start_by, run.ticket):
                reason = (
                    STOPPING_REASON
                    if self._stopping.is_set()
                    else f"no free slot before the start deadline {start_by.isoformat()}"
                )
                return await self._finish_unstarted(run, record, RunStatus.MISSED, reason)
            run.holds_slot = True
            try:
                outcome, ctx = await self._attempt.run(run, spec, record, trigger)
            finally:
                # The slot is for running the job: recording its end does not hold it.
                self._attempt.release_slot(run)
            record = await self._record(run, record, outcome)
            if outcome.status is RunStatus.SUCCEEDED:
                await run_hook(spec.job, "on_success", ctx)
                return record
            if isinstance(outcome.error, RunNotStarted) and not outcome.error.retry:
                return record  # lost to another worker, or the worker is stopping
            retry_at = self._retry_at(spec, record.attempt - first + 1, next_tick)
            if retry_at is None:
                break
            ctx.log.warning(
                "retry_scheduled", retry_at=retry_at.isoformat(), next_attempt=record.attempt + 1
            )
            await self._clock.sleep_until(retry_at, self._stopping)
            if self._stopping.is_set():
                ctx.log.warning("retry_cancelled", reason="worker stopping")
                break
            claimed = await self._claims.claim(
                run, record.scheduled_at, record.attempt + 1, Trigger.RETRY, Overlap.ALLOW
            )
            if claimed is None or claimed.status.is_final:
                return claimed or record
            record, trigger = claimed, Trigger.RETRY
            structlog.contextvars.bind_contextvars(run_id=record.run_id, attempt=record.attempt)
            start_by = next_tick or retry_at + spec.start_deadline
        await report_final_failure(
            self._clock, self._on_final_failure, spec.job, record, outcome.error, ctx
        )
        return record

    def _retry_at(self, spec: JobSpec, retry: int, next_tick: datetime | None) -> datetime | None:
        if self._stopping.is_set() or self._halted:
            return None
        delay = spec.options.retry.delay_before(retry)
        if delay is None:
            return None
        retry_at = self._clock.now() + delay
        if next_tick is not None and retry_at >= next_tick:
            log.warning("retry_dropped", reason="would start at or after the next tick")
            return None
        return retry_at

    async def _record(self, run: Run, record: RunRecord, outcome: Outcome) -> RunRecord:
        """Record how the attempt ended."""
        if isinstance(outcome.error, RunNotStarted):
            if outcome.error.lost:
                log.warning("job_lease_lost", reason=str(outcome.error))
                return outcome.error.record
            # The chain's wrappers (metrics) saw this attempt already: no second notice.
            reason = str(outcome.error)
            return await self._finish_unstarted(run, record, outcome.status, reason, notify=False)
        error = RunError.of(outcome.error) if outcome.error is not None else None
        duration_ms = None if outcome.duration_s is None else outcome.duration_s * 1000.0
        return await self._records.finish(run, record, outcome.status, error, duration_ms)

    async def _finish_unstarted(
        self, run: Run, record: RunRecord, status: RunStatus, reason: str, *, notify: bool = True
    ) -> RunRecord:
        log.warning(
            f"job_{status.value}",
            job=record.job,
            run_id=record.run_id,
            scheduled_at=record.scheduled_at.isoformat(),
            reason=reason,
        )
        finished = await self._records.finish(run, record, status, RunError(status.value, reason))
        if notify:
            self.notify_unstarted(finished)
        return finished
