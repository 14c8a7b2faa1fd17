"""The runner's side of the run store: claims (`claims.py`), starts, finishes, failures.

Every call the runner makes to the store goes through here or `claims.py`, so a store that fails
never escapes into the scheduler: a run whose end cannot be written is logged
`run_not_recorded` and its end is kept to be written once the store answers: before any new
claim (so the job's next tick does not find it still `running` and skip as an overlap) and by
the loop's housekeeping. Should another replica sweep the run `abandoned` first (its lease lapsed
during a long outage), the fence keeps that status and the late end changes nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace

import structlog

from financial.pkg.jobs.model import RunStatus
from financial.pkg.scheduler.clock import Clock
from financial.pkg.scheduler.execution.backlog import Backlog, UnwrittenEnd
from financial.pkg.scheduler.execution.batch import Batcher
from financial.pkg.scheduler.execution.claims import Claims
from financial.pkg.scheduler.execution.leases import LeaseKeeper, LostHandler
from financial.pkg.scheduler.execution.run import Run, RunState
from financial.pkg.scheduler.execution.turns import JobTurns
from financial.pkg.scheduler.store import (
    FinishRequest,
    RunError,
    RunNotFound,
    RunRecord,
    RunStore,
    StartRequest,
    describe,
)

log = structlog.get_logger("financial.scheduler")

STOPPING_REASON = "worker stopping before the run could start"


class RunNotStarted(Exception):
    """The run was not started: `lost` when another worker ended it first (nothing to write),
    else to be recorded with `status`. Only a run the store failed to mark is tried again."""

    def __init__(self, message: str, *, record: RunRecord, status: RunStatus, lost: bool) -> None:
        super().__init__(message)
        self.record = record
        self.status = status
        self.lost = lost

    @property
    def retry(self) -> bool:
        return not self.lost and self.status is RunStatus.FAILED


class RunRecords:
    """Claims, starts and finishes the runs of one worker, keeping their leases.

    Claims, starts and finishes made in one pass of the event loop go to the store as one batch
    each (`batch.py`): the runs of a tick share their round trips.
    """

    def __init__(self, store: RunStore, clock: Clock, worker_id: str, on_lost: LostHandler) -> None:
        self._store = store
        self._clock = clock
        self._worker_id = worker_id
        self.leases = LeaseKeeper(store, clock, on_lost)
        self._on_lost = on_lost
        self.backlog = Backlog(store, worker_id)
        # Each job's claims and ends in flight: the job's next claim waits for them.
        self.turns = JobTurns()
        self._starts: Batcher[StartRequest, RunRecord | None] | None = None
        self._finishes: Batcher[FinishRequest, RunRecord | None] | None = None
        if store.batched:
            self._starts = Batcher(store.start_many)
            self._finishes = Batcher(store.finish_many)
        self.claims = Claims(store, clock, worker_id, self)

    async def _finish(self, request: FinishRequest) -> RunRecord | None:
        if self._finishes is not None:
            return await self._finishes.submit(request)
        try:
            return await self._store.finish(
                request.run_id,
                request.status,
                fence=request.fence,
                error=request.error,
                duration_ms=request.duration_ms,
            )
        except RunNotFound:
            return None

    async def mark_started(
        self, run: Run, trace_id: str | None, halted: Callable[[], bool]
    ) -> None:
        """Mark `run` `running`; RunNotStarted when it must not go on.

        `halted` is asked before and after the store call: a worker asked to stop in between
        does not start the job.
        """
        record = run.record
        assert record is not None, "a run is marked started once claimed"
        if halted():
            raise RunNotStarted(STOPPING_REASON, record=record, status=RunStatus.MISSED, lost=False)
        if self._starts is not None:
            self._start_in_background(self._starts, run, record, trace_id)
            return
        try:
            now = await self._store.start(record.run_id, fence=record.fence, trace_id=trace_id)
        except Exception as exc:
            raise RunNotStarted(
                f"run store unavailable: {describe(exc)}",
                record=record,
                status=RunStatus.FAILED,
                lost=False,
            ) from exc
        if _lost(record, now):
            raise RunNotStarted(
                f"the run was ended by another worker before it started ({now.status.value})",
                record=now,
                status=now.status,
                lost=True,
            )
        run.record = now
        if halted():
            raise RunNotStarted(STOPPING_REASON, record=now, status=RunStatus.MISSED, lost=False)

    def _start_in_background(
        self,
        starts: Batcher[StartRequest, RunRecord | None],
        run: Run,
        record: RunRecord,
        trace_id: str | None,
    ) -> None:
        """A batched store: the run starts now and its `running` mark follows in the batch.

        The claim already made the tick this worker's, so the job does not wait a round trip
        (with the cap full, each wave of starts would). Should the mark find the run ended by
        another worker (a `replace` elsewhere), the run is cancelled as for a lost lease and
        nothing more is written; should it fail, the run goes on and its end is recorded as
        usual. The end is written only after the mark has been answered.
        """
        starting = run.starting = starts.submit(StartRequest(record.run_id, record.fence, trace_id))

        def answered(done: asyncio.Future[RunRecord | None]) -> None:
            if done.cancelled() or run.starting is not done:
                return  # the run is recording its end: `finish` reads the answer
            exc = done.exception()
            if exc is not None:
                log.warning(
                    "run_start_not_recorded",
                    job=record.job,
                    run_id=record.run_id,
                    reason=f"run store unavailable: {describe(exc)}",
                )
                return
            now = done.result()
            if _lost(record, now):
                self._on_lost(run, _lost_reason(now))
            elif now is not None and run.record is record:
                run.record = now

        starting.add_done_callback(answered)

    async def finish(
        self,
        run: Run,
        record: RunRecord,
        status: RunStatus,
        error: RunError | None,
        duration_ms: float | None = None,
    ) -> RunRecord:
        """Record the run's end (`duration_ms`: the job's own time, when it ran); on a store
        failure, log it and return the run as we saw it."""
        self.leases.settle(run)
        starting, run.starting = run.starting, None
        if starting is not None:
            try:
                now = await starting
            except Exception:
                pass  # logged by the mark; the end is recorded all the same
            else:
                if _lost(record, now):
                    log.warning("job_lease_lost", reason=_lost_reason(now))
                    return now or record
        request = FinishRequest(record.run_id, status, record.fence, error, duration_ms)
        mine, run.ending = run.ending or self.turns.begin(run.job), None
        try:
            finished = await self._finish(request)
        except (ConnectionError, TimeoutError) as exc:  # RunStoreUnavailable among them
            reason = f"run store unavailable: {describe(exc)}; the end is written once it answers"
            self.backlog.unwritten.append(UnwrittenEnd(record, request))
        except Exception as exc:
            # Not an outage: writing it again would fail again, on every claim.
            reason = f"run store refused the end: {describe(exc)}"
        else:
            if finished is not None:
                return finished
            reason = "the run is not in the run store"
        finally:
            self.turns.end(run.job, mine)
        log.error(
            "run_not_recorded",
            job=record.job,
            run_id=record.run_id,
            scheduled_at=record.scheduled_at.isoformat(),
            attempt=record.attempt,
            status=status.value,
            reason=reason,
        )
        return replace(record, status=status, error=error, duration_ms=duration_ms)

    def ending(self, run: Run) -> None:
        """The run's job has returned: its end is on its way from now on, and the job's next
        claim waits for it (the running mark the end waits for may be slow in an outage)."""
        run.state = RunState.ENDING
        if run.ending is None:
            run.ending = self.turns.begin(run.job)

    def release(self, run: Run) -> None:
        """The run holds no row any more: final, or never started."""
        if run.ending is not None:
            self.turns.end(run.job, run.ending)  # ended without writing (a lost lease)
            run.ending = None
        run.starting = None
        run.state = RunState.FINAL
        self.leases.release(run)


def _lost(record: RunRecord, now: RunRecord | None) -> bool:
    """Whether the store's answer shows the run was no longer ours to run."""
    return now is None or now.status is not RunStatus.RUNNING or now.fence != record.fence


def _lost_reason(now: RunRecord | None) -> str:
    status = now.status.value if now is not None else "not found"
    return f"the run was ended by another worker as it started ({status})"
