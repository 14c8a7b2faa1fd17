"""Claims: a tick made this worker's in the run store, its lease then kept by the keeper.

A tick that cannot be claimed is logged `tick_not_recorded` and kept in the backlog to be
recorded `missed` once the store answers. A job's claim waits for the job's claims and ends still
in flight (`turns.py`). A tick whose claim could not be answered before its start deadline, or so
late that its lease is as good as lapsed, is recorded `missed`. The runs due at one instant are
claimed together (`claim_batch`): one call to the store for all of them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

import structlog

from financial.pkg.jobs.model import Overlap, RunStatus, Trigger
from financial.pkg.scheduler.clock import Clock
from financial.pkg.scheduler.execution.backlog import Backlog, UnrecordedTick
from financial.pkg.scheduler.execution.batch import DEFAULT_LIMIT, Batcher
from financial.pkg.scheduler.execution.leases import LeaseKeeper
from financial.pkg.scheduler.execution.run import Due, Run, RunState
from financial.pkg.scheduler.execution.turns import JobTurns
from financial.pkg.scheduler.store import ClaimRequest, RunError, RunRecord, RunStore, describe

if TYPE_CHECKING:
    from financial.pkg.scheduler.execution.records import RunRecords

log = structlog.get_logger("financial.scheduler")

LATE_REASON = "the run store did not answer before the start deadline"
ANSWERED_LATE_REASON = "the run store answered after the start deadline"
SLOW_CLAIM_REASON = "the run store took longer than a third of the lease to answer the claim"


class Claims:
    """The claims of one worker's runs; a claimed run is held (its lease kept) until released."""

    def __init__(
        self,
        store: RunStore,
        clock: Clock,
        worker_id: str,
        records: RunRecords,
    ) -> None:
        self._store = store
        self._clock = clock
        self._worker_id = worker_id
        self._records = records
        self._turns: JobTurns = records.turns
        self._leases: LeaseKeeper = records.leases
        self._backlog: Backlog = records.backlog
        self._batcher: Batcher[ClaimRequest, RunRecord | None] | None = None
        if store.batched:
            self._batcher = Batcher(self._claim_many)

    async def _claim_many(self, requests: list[ClaimRequest]) -> list[RunRecord | None]:
        return await self._store.claim_many(requests, worker_id=self._worker_id)

    async def _claim(self, request: ClaimRequest) -> RunRecord | None:
        if self._batcher is not None:
            return await self._batcher.submit(request)
        return await self._store.claim(
            request.job,
            request.scheduled_at,
            attempt=request.attempt,
            trigger=request.trigger,
            worker_id=self._worker_id,
            overlap=request.overlap,
        )

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
        if self._backlog.unwritten:
            await self._backlog.flush_unwritten()  # the job's last end first: it is not an overlap
        job = run.job
        earlier = self._turns.earlier(job)
        mine = self._turns.begin(job)
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
            self._turns.end(job, mine)

    async def claim_batch(
        self, runs: Sequence[Run], due: Sequence[Due]
    ) -> tuple[list[RunRecord | None], set[int]]:
        """`claim` for the runs due at one instant, each of another job: one call to the store
        (per `DEFAULT_LIMIT` requests) for all of them. Returns the results in order, and the
        positions of the runs left out, whose job has a claim or an end in flight: each is to be
        claimed alone (`claim`, which waits for those), so as not to hold the others back."""
        requests = [
            ClaimRequest(d.spec.name, d.at, 1, Trigger.SCHEDULE, d.spec.options.overlap)
            for d in due
        ]
        start_by = [d.start_by for d in due]
        if self._backlog.unwritten:
            await self._backlog.flush_unwritten()
        busy = {i for i, run in enumerate(runs) if self._turns.busy(run.job)}
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
        jobs = [run.job for run in runs]
        mine = self._turns.begin_all(jobs)
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
            self._turns.end_all(jobs, mine)

    async def _claim_all(
        self, requests: Sequence[ClaimRequest]
    ) -> list[RunRecord | BaseException | None]:
        """The store's answer to each request, or the exception its call raised."""
        answers: list[RunRecord | BaseException | None] = []
        if self._batcher is None:  # answered in memory: request by request
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
            self._backlog.unrecorded.append(
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
            self._leases.hold(run, record, asked)
        return record

    def _answered_late(self, asked: datetime, start_by: datetime | None) -> str | None:
        """Why a claim asked at `asked` and answered now came too late to start, if it did."""
        now = self._clock.now()
        if start_by is not None and asked <= start_by < now:
            return ANSWERED_LATE_REASON
        if now - asked >= self._leases.interval:
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
            return await self._records.finish(run, record, RunStatus.MISSED, error)
        finally:
            self._records.release(run)
