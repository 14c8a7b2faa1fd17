"""The runner's side of the run store: claims that hold a lease, starts, finishes, failures.

Every call the runner makes to the store goes through here, so a store that fails never
escapes into the scheduler: a tick that cannot be claimed is logged `tick_not_recorded` (and kept
to be recorded `missed` once the store answers), a run whose end cannot be written is logged
`run_not_recorded` and its end is kept to be written once the store answers: before any new
claim (so the job's next tick does not find it still `running` and skip as an overlap) and by
the loop's housekeeping. Should another replica sweep the run `abandoned` first (its lease lapsed
during a long outage), the fence keeps that status and the late end changes nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime

import structlog

from financial.pkg.jobs.model import Overlap, RunStatus, Trigger
from financial.pkg.scheduler.clock import Clock
from financial.pkg.scheduler.execution.backlog import Backlog, UnrecordedTick, UnwrittenEnd
from financial.pkg.scheduler.execution.batch import DEFAULT_LIMIT, Batcher
from financial.pkg.scheduler.execution.leases import LeaseKeeper, LostHandler
from financial.pkg.scheduler.execution.run import Run, RunState
from financial.pkg.scheduler.store import (
    ClaimRequest,
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
LATE_REASON = "the run store did not answer before the start deadline"
ANSWERED_LATE_REASON = "the run store answered after the start deadline"
SLOW_CLAIM_REASON = "the run store took longer than a third of the lease to answer the claim"


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
        # Each job's claims and ends in flight: the job's next claim waits for them (`claim`).
        self._in_flight: dict[str, list[asyncio.Future[None]]] = {}
        self._claims: Batcher[ClaimRequest, RunRecord | None] | None = None
        self._starts: Batcher[StartRequest, RunRecord | None] | None = None
        self._finishes: Batcher[FinishRequest, RunRecord | None] | None = None
        if store.batched:
            self._claims = Batcher(self._claim_many)
            self._starts = Batcher(store.start_many)
            self._finishes = Batcher(store.finish_many)

    async def _claim_many(self, requests: list[ClaimRequest]) -> list[RunRecord | None]:
        return await self._store.claim_many(requests, worker_id=self._worker_id)

    async def _claim(self, request: ClaimRequest) -> RunRecord | None:
        if self._claims is not None:
            return await self._claims.submit(request)
        return await self._store.claim(
            request.job,
            request.scheduled_at,
            attempt=request.attempt,
            trigger=request.trigger,
            worker_id=self._worker_id,
            overlap=request.overlap,
        )

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

    async def claim(
        self,
        run: Run,
        scheduled_at: datetime,
        attempt: int,
        trigger: Trigger,
        overlap: Overlap,
        start_by: datetime | None = None,
    ) -> RunRecord | None:
        """Claim a tick for `run`; a live row is held (its lease kept) until `release`. None
        when claimed elsewhere or when the store failed (logged).

        A job's claim waits for the store to answer the job's claims and ends still in flight
        (an outage holds them), so the ticks of an outage are never skipped as overlaps of each
        other's rows or of a run whose end is on its way. A tick whose claim could not be
        answered before `start_by`, or so late that its lease is as good as lapsed, is recorded
        `missed` (and returned so).
        """
        if self.backlog.unwritten:
            await self.backlog.flush_unwritten()  # the job's last end first: it is not an overlap
        job = run.job
        earlier = list(self._in_flight.get(job, ()))
        mine = self._begin(job)
        try:
            if earlier:
                await asyncio.wait(earlier)
                if start_by is not None and self._clock.now() > start_by:
                    return await self._missed(run, scheduled_at, attempt, trigger, LATE_REASON)
            asked = self._clock.now()
            record = await self._claim_once(run, scheduled_at, attempt, trigger, overlap)
            if record is None or record.status.is_final:
                return record
            late = self._answered_late(asked, start_by)
            return record if late is None else await self._finish_missed(run, record, late)
        finally:
            self._end(job, mine)

    async def claim_batch(
        self, runs: Sequence[Run], requests: Sequence[ClaimRequest], start_by: Sequence[datetime]
    ) -> tuple[list[RunRecord | None], set[int]]:
        """`claim` for the runs due at one instant, each of another job: one call to the store
        (per `DEFAULT_LIMIT` requests) for all of them. Returns the results in order, and the
        positions of the runs left out, whose job has a claim or an end in flight: each is to be
        claimed alone (`claim`, which waits for those), so as not to hold the others back."""
        if self.backlog.unwritten:
            await self.backlog.flush_unwritten()
        busy = {i for i, run in enumerate(runs) if run.job in self._in_flight}
        if not busy:
            return await self._claim_together(runs, requests, start_by), busy
        together = [i for i in range(len(runs)) if i not in busy]
        claimed = await self._claim_together(
            [runs[i] for i in together],
            [requests[i] for i in together],
            [start_by[i] for i in together],
        )
        results: list[RunRecord | None] = [None] * len(runs)
        for i, record in zip(together, claimed, strict=True):
            results[i] = record
        return results, busy

    async def _claim_together(
        self, runs: Sequence[Run], requests: Sequence[ClaimRequest], start_by: Sequence[datetime]
    ) -> list[RunRecord | None]:
        if not runs:
            return []
        mine: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        for run in runs:
            self._in_flight.setdefault(run.job, []).append(mine)
        try:
            asked = self._clock.now()
            answers = await self._claim_all(requests)
            results: list[RunRecord | None] = []
            late: list[tuple[int, Run, RunRecord, str]] = []
            for run, request, by, answer in zip(runs, requests, start_by, answers, strict=True):
                if isinstance(answer, BaseException):
                    self._not_recorded(request, answer)
                    results.append(None)
                    continue
                record = self._claimed(run, request, answer, asked)
                if record is not None and not record.status.is_final:
                    reason = self._answered_late(asked, by)
                    if reason is not None:
                        late.append((len(results), run, record, reason))
                results.append(record)
            if late:
                missed = [self._finish_missed(run, record, why) for _, run, record, why in late]
                for (i, *_), record in zip(late, await asyncio.gather(*missed), strict=True):
                    results[i] = record
            return results
        finally:
            mine.set_result(None)
            for run in runs:
                self._end_shared(run.job, mine)

    async def _claim_all(
        self, requests: Sequence[ClaimRequest]
    ) -> list[RunRecord | BaseException | None]:
        """The store's answer to each request, or the exception its call raised."""
        answers: list[RunRecord | BaseException | None] = []
        if self._claims is None:  # answered in memory: request by request
            for request in requests:
                try:
                    answers.append(await self._claim(request))
                except Exception as exc:
                    answers.append(exc)
            return answers
        chunks = [requests[i : i + DEFAULT_LIMIT] for i in range(0, len(requests), DEFAULT_LIMIT)]
        calls = [self._claim_many(list(chunk)) for chunk in chunks]
        for chunk, answer in zip(
            chunks, await asyncio.gather(*calls, return_exceptions=True), strict=True
        ):
            if isinstance(answer, asyncio.CancelledError):
                raise answer
            if isinstance(answer, BaseException):
                answers.extend([answer] * len(chunk))
            else:
                answers.extend(answer)
        return answers

    def _begin(self, job: str) -> asyncio.Future[None]:
        """A store call of `job` that decides its overlap begins; `_end` ends it."""
        mine: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._in_flight.setdefault(job, []).append(mine)
        return mine

    def _end(self, job: str, mine: asyncio.Future[None]) -> None:
        mine.set_result(None)
        self._end_shared(job, mine)

    def _end_shared(self, job: str, mine: asyncio.Future[None]) -> None:
        in_flight = self._in_flight[job]
        in_flight.remove(mine)
        if not in_flight:
            del self._in_flight[job]

    async def _claim_once(
        self, run: Run, scheduled_at: datetime, attempt: int, trigger: Trigger, overlap: Overlap
    ) -> RunRecord | None:
        request = ClaimRequest(run.job, scheduled_at, attempt, trigger, overlap)
        asked = self._clock.now()
        try:
            record = await self._claim(request)
        except Exception as exc:
            self._not_recorded(request, exc)
            return None
        return self._claimed(run, request, record, asked)

    def _not_recorded(self, request: ClaimRequest, exc: BaseException) -> None:
        reason = f"run store unavailable: {describe(exc)}"
        log.error(
            "tick_not_recorded",
            job=request.job,
            scheduled_at=request.scheduled_at.isoformat(),
            attempt=request.attempt,
            trigger=request.trigger.value,
            reason=reason,
        )
        if request.attempt == 1 and request.trigger in (Trigger.SCHEDULE, Trigger.CATCHUP):
            self.backlog.unrecorded.append(
                UnrecordedTick(request.job, request.scheduled_at, reason)
            )

    def _claimed(
        self, run: Run, request: ClaimRequest, record: RunRecord | None, asked: datetime
    ) -> RunRecord | None:
        if record is None:
            log.debug("tick_claimed_elsewhere", job=request.job, scheduled_at=request.scheduled_at)
            return None
        if not record.status.is_final:
            run.record = record
            run.state = RunState.CLAIMED
            self.leases.hold(run, record, asked)
        return record

    def _answered_late(self, asked: datetime, start_by: datetime | None) -> str | None:
        """Why a claim asked at `asked` and answered now came too late to start, if it did."""
        now = self._clock.now()
        if start_by is not None and asked <= start_by < now:
            return ANSWERED_LATE_REASON
        if now - asked >= self.leases.interval:
            return SLOW_CLAIM_REASON
        return None

    async def _missed(
        self, run: Run, scheduled_at: datetime, attempt: int, trigger: Trigger, reason: str
    ) -> RunRecord | None:
        record = await self._claim_once(run, scheduled_at, attempt, trigger, Overlap.ALLOW)
        if record is None or record.status.is_final:
            return record
        return await self._finish_missed(run, record, reason)

    async def _finish_missed(self, run: Run, record: RunRecord, reason: str) -> RunRecord:
        try:
            error = RunError(RunStatus.MISSED.value, reason)
            return await self.finish(run, record, RunStatus.MISSED, error)
        finally:
            self.release(run)

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
        mine, run.ending = run.ending or self._begin(run.job), None
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
            self._end(run.job, mine)
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
            run.ending = self._begin(run.job)

    def release(self, run: Run) -> None:
        """The run holds no row any more: final, or never started."""
        if run.ending is not None:
            self._end(run.job, run.ending)  # ended without writing (a lost lease)
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
