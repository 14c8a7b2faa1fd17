"""The run store port: claims of ticks, leases, and the history of runs.

Two implementations share one contract test suite (`tests/contract/run_store_contract.py`):
`MemoryRunStore` (unit tests; one process) and the PostgreSQL store (`financial.pkg.database.
run_store`; every replica). The semantics, which both keep:

- A tick is claimed by a unique key on `(job, scheduled_at, attempt)`: whoever inserts it first
  runs it, which is what makes a tick run once across replicas. A claim of a key that exists
  returns None.
- A claim may be refused on the spot and recorded `skipped`, in the same step that inserts it:
  when the job is paused (every trigger but `manual`), or when its overlap policy is `skip` and
  another run of the job is live. With `replace`, the claim ends every other live run of the job
  `interrupted`. So overlap policies hold across replicas, not only inside one process.
- Every run that is not final (`pending`, `running`) holds a lease of `store.lease`, with its
  expiry taken from the store's clock (PostgreSQL's `now()`, so replica clocks may disagree). Its
  worker renews it; a run whose lease expired is "abandoned" and `sweep_abandoned` (any replica)
  gives it that final status.
- Each row carries a fence number. Changes by the run's own worker (`start`, `renew`, `finish`)
  apply only while the fence they hold is the row's; a takeover (`sweep_abandoned`, a `replace`)
  raises it. A worker that lost its lease therefore cannot overwrite the row's final status.
- A run's first final status is its only one: `finish` on a final row returns it unchanged.
- `claim_many`, `start_many` and `finish_many` do for several runs what `claim`, `start` and
  `finish` do for one, with the same semantics per run, answering in request order; a shared
  store makes each batch one round trip. The scheduler sends the claims, starts and finishes of
  runs due at the same instant through them.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from financial.pkg.jobs.model import Overlap, RunStatus, Trigger
from financial.pkg.scheduler.clock import Clock, SystemClock
from financial.pkg.scheduler.runs import (
    DEFAULT_LEASE,
    LIVE_STATUSES,
    OVERLAP_REPLACED_REASON,
    OVERLAP_SKIP_REASON,
    ClaimRequest,
    FinishRequest,
    JobSummary,
    RunError,
    RunNotFound,
    RunRecord,
    RunStoreUnavailable,
    StartRequest,
    describe,
    honours_pause,
    overlap_reason,
    paused_reason,
    require_final,
    skipped_for_pause,
)

__all__ = [
    "DEFAULT_LEASE",
    "LIVE_STATUSES",
    "OVERLAP_REPLACED_REASON",
    "OVERLAP_SKIP_REASON",
    "ClaimRequest",
    "FinishRequest",
    "JobSummary",
    "MemoryRunStore",
    "RunError",
    "RunNotFound",
    "RunRecord",
    "RunStore",
    "RunStoreUnavailable",
    "StartRequest",
    "describe",
    "honours_pause",
    "overlap_reason",
    "paused_reason",
    "require_final",
    "skipped_for_pause",
]


class RunStore(ABC):
    """Where ticks are claimed, leases kept and runs recorded (see the module's semantics)."""

    lease: timedelta = DEFAULT_LEASE
    # True when other processes use the same store (replicas): only then can a run be left
    # behind by a worker that died, so only then does the scheduler sweep for abandoned runs.
    shared: bool = False
    # True when a call costs a round trip: the runner then gathers the claims, starts and
    # finishes of runs due together into `claim_many`, `start_many`, `finish_many` calls. A store
    # that answers in memory is called run by run (a batch would only add loop passes).
    batched: bool = False

    @abstractmethod
    async def claim(
        self,
        job: str,
        scheduled_at: datetime,
        *,
        attempt: int,
        trigger: Trigger,
        worker_id: str,
        overlap: Overlap = Overlap.ALLOW,
    ) -> RunRecord | None:
        """Claim a tick: a new `pending` run holding a lease, a `skipped` one (paused, or
        overlap `skip` with another live run), or None when that (job, tick, attempt) exists."""

    async def claim_many(
        self, requests: Sequence[ClaimRequest], *, worker_id: str
    ) -> list[RunRecord | None]:
        """Claim several ticks (runs due at the same instant), results in request order.

        Each request is decided as `claim` would decide it alone; requests for one job are
        not expected in one batch."""
        return [
            await self.claim(
                r.job,
                r.scheduled_at,
                attempt=r.attempt,
                trigger=r.trigger,
                worker_id=worker_id,
                overlap=r.overlap,
            )
            for r in requests
        ]

    @abstractmethod
    async def start(self, run_id: str, *, fence: int, trace_id: str | None = None) -> RunRecord:
        """Mark a claimed run `running` and renew its lease; returns the row as it now is.

        A row whose fence moved on, or that is final already, is returned unchanged: the caller
        has lost the run and must not execute it.
        """

    async def start_many(self, requests: Sequence[StartRequest]) -> list[RunRecord | None]:
        """`start` for several runs, results in request order; None for an unknown run id."""
        results: list[RunRecord | None] = []
        for r in requests:
            try:
                results.append(await self.start(r.run_id, fence=r.fence, trace_id=r.trace_id))
            except RunNotFound:
                results.append(None)
        return results

    @abstractmethod
    async def renew(self, held: Mapping[str, int]) -> set[str]:
        """Renew the leases of live runs held as {run_id: fence}; returns the ids renewed.

        A run missing from the result was taken over or ended by someone else.
        """

    @abstractmethod
    async def finish(
        self, run_id: str, status: RunStatus, *, fence: int, error: RunError | None = None
    ) -> RunRecord:
        """Give a run its final status, if it is still live and `fence` is still its fence.

        Returns the row as it now is: a row that was final already keeps its first status.
        """

    async def finish_many(self, requests: Sequence[FinishRequest]) -> list[RunRecord | None]:
        """`finish` for several runs, results in request order; None for an unknown run id.

        A status that is not final is refused (ValueError) before anything is written."""
        for r in requests:
            require_final(r.run_id, r.status)
        results: list[RunRecord | None] = []
        for r in requests:
            try:
                results.append(await self.finish(r.run_id, r.status, fence=r.fence, error=r.error))
            except RunNotFound:
                results.append(None)
        return results

    @abstractmethod
    async def live_runs(self, job: str) -> list[RunRecord]:
        """The job's runs that are not final and whose lease has not expired."""

    @abstractmethod
    async def sweep_abandoned(self, *, limit: int = 100) -> list[RunRecord]:
        """Mark up to `limit` live runs whose lease expired `abandoned`; return them."""

    @abstractmethod
    async def prune(self, older_than: timedelta, *, limit: int = 1000) -> int:
        """Delete up to `limit` final runs created more than `older_than` ago; return how many."""

    @abstractmethod
    async def pause(self, job: str, reason: str | None = None) -> None:
        """Pause a job on every replica: its ticks are recorded `skipped` until `resume`."""

    @abstractmethod
    async def resume(self, job: str) -> bool:
        """Resume a paused job; False when it was not paused."""

    @abstractmethod
    async def paused(self) -> dict[str, str | None]:
        """Paused jobs and the reason given, if any."""

    @abstractmethod
    async def recorded_ticks(self, job: str, since: datetime) -> set[datetime]:
        """The ticks at or after `since` that have at least one run of `job`."""

    @abstractmethod
    async def history(
        self, job: str | None = None, *, status: RunStatus | None = None, limit: int = 50
    ) -> list[RunRecord]:
        """Runs, newest tick first (then highest attempt first)."""

    @abstractmethod
    async def summaries(self, jobs: Sequence[str]) -> dict[str, JobSummary]:
        """A summary for each of `jobs` (those with no history have an empty one)."""

    async def close(self) -> None:  # noqa: B027 - most stores hold nothing to release
        """Release what the store holds."""


class MemoryRunStore(RunStore):
    """The in-memory twin of the PostgreSQL store. Timestamps and leases follow `clock`.

    `shared=True` makes several schedulers in one test stand for replicas sharing a database;
    `batched=True` has the runner send it batches, as it does to PostgreSQL.
    """

    def __init__(
        self,
        clock: Clock | None = None,
        *,
        lease: timedelta = DEFAULT_LEASE,
        shared: bool = False,
        batched: bool = False,
    ) -> None:
        self._clock = clock or SystemClock()
        self.lease = lease
        self.shared = shared
        self.batched = batched
        self._runs: dict[str, RunRecord] = {}
        # Run ids not final yet, per job: a claim looks at these, never at the whole history.
        self._open: dict[str, set[str]] = {}
        self._keys: set[tuple[str, datetime, int]] = set()
        self._paused: dict[str, str | None] = {}

    def _put(self, record: RunRecord) -> RunRecord:
        self._runs[record.run_id] = record
        if record.status.is_final:
            self._open.get(record.job, set()).discard(record.run_id)
        else:
            self._open.setdefault(record.job, set()).add(record.run_id)
        return record

    def _unfinished(self, job: str | None = None) -> list[RunRecord]:
        jobs = [job] if job is not None else list(self._open)
        return [self._runs[run_id] for name in jobs for run_id in self._open.get(name, ())]

    def _live(self, record: RunRecord, now: datetime) -> bool:
        return (
            not record.status.is_final
            and record.lease_expires_at is not None
            and record.lease_expires_at > now
        )

    async def claim(
        self,
        job: str,
        scheduled_at: datetime,
        *,
        attempt: int,
        trigger: Trigger,
        worker_id: str,
        overlap: Overlap = Overlap.ALLOW,
    ) -> RunRecord | None:
        key = (job, scheduled_at, attempt)
        if key in self._keys:
            return None
        self._keys.add(key)
        now = self._clock.now()
        others = sorted(
            (r for r in self._unfinished(job) if self._live(r, now)),
            key=lambda r: (r.scheduled_at, r.attempt),
        )
        error: RunError | None = None
        if honours_pause(trigger) and job in self._paused:
            error = RunError("skipped", paused_reason(self._paused[job]))
        elif overlap is Overlap.SKIP and others:
            error = RunError("skipped", overlap_reason(others[0].worker_id))
        record = RunRecord(
            run_id=str(uuid.uuid4()),
            job=job,
            scheduled_at=scheduled_at,
            attempt=attempt,
            trigger=trigger,
            status=RunStatus.SKIPPED if error else RunStatus.PENDING,
            worker_id=worker_id,
            created_at=now,
            finished_at=now if error else None,
            error=error,
            fence=1,
            lease_expires_at=None if error else now + self.lease,
        )
        self._put(record)
        if error is None and overlap is Overlap.REPLACE:
            for other in others:
                self._take_over(
                    other, RunStatus.INTERRUPTED, RunError("interrupted", OVERLAP_REPLACED_REASON)
                )
        return record

    def _take_over(self, record: RunRecord, status: RunStatus, error: RunError) -> RunRecord:
        record = replace(
            record,
            status=status,
            finished_at=self._clock.now(),
            error=error,
            fence=record.fence + 1,
            lease_expires_at=None,
        )
        return self._put(record)

    def _get(self, run_id: str) -> RunRecord:
        try:
            return self._runs[run_id]
        except KeyError:
            raise RunNotFound(run_id) from None

    async def start(self, run_id: str, *, fence: int, trace_id: str | None = None) -> RunRecord:
        record = self._get(run_id)
        if record.status is RunStatus.PENDING and record.fence == fence:
            now = self._clock.now()
            record = replace(
                record,
                status=RunStatus.RUNNING,
                started_at=now,
                trace_id=trace_id,
                lease_expires_at=now + self.lease,
            )
            self._put(record)
        return record

    async def renew(self, held: Mapping[str, int]) -> set[str]:
        now = self._clock.now()
        renewed: set[str] = set()
        for run_id, fence in held.items():
            record = self._runs.get(run_id)
            if record is None or record.status.is_final or record.fence != fence:
                continue
            self._put(replace(record, lease_expires_at=now + self.lease))
            renewed.add(run_id)
        return renewed

    async def finish(
        self, run_id: str, status: RunStatus, *, fence: int, error: RunError | None = None
    ) -> RunRecord:
        require_final(run_id, status)
        record = self._get(run_id)
        if record.status.is_final or record.fence != fence:
            return record
        record = replace(
            record,
            status=status,
            finished_at=self._clock.now(),
            error=error,
            lease_expires_at=None,
        )
        return self._put(record)

    async def live_runs(self, job: str) -> list[RunRecord]:
        now = self._clock.now()
        return [r for r in self._unfinished(job) if self._live(r, now)]

    async def sweep_abandoned(self, *, limit: int = 100) -> list[RunRecord]:
        now = self._clock.now()
        expired = sorted(
            (
                r
                for r in self._unfinished()
                if r.lease_expires_at is not None and r.lease_expires_at <= now
            ),
            key=lambda r: r.lease_expires_at or now,
        )
        return [
            self._take_over(r, RunStatus.ABANDONED, RunError("abandoned", _abandoned_reason(r)))
            for r in expired[:limit]
        ]

    async def prune(self, older_than: timedelta, *, limit: int = 1000) -> int:
        cutoff = self._clock.now() - older_than
        doomed = sorted(
            (r for r in self._runs.values() if r.status.is_final and r.created_at < cutoff),
            key=lambda r: r.created_at,
        )[:limit]
        for record in doomed:
            del self._runs[record.run_id]
            self._keys.discard((record.job, record.scheduled_at, record.attempt))
        return len(doomed)

    async def pause(self, job: str, reason: str | None = None) -> None:
        self._paused[job] = reason

    async def resume(self, job: str) -> bool:
        return self._paused.pop(job, _MISSING) is not _MISSING

    async def paused(self) -> dict[str, str | None]:
        return dict(self._paused)

    async def recorded_ticks(self, job: str, since: datetime) -> set[datetime]:
        return {
            r.scheduled_at for r in self._runs.values() if r.job == job and r.scheduled_at >= since
        }

    async def history(
        self, job: str | None = None, *, status: RunStatus | None = None, limit: int = 50
    ) -> list[RunRecord]:
        rows = [
            r
            for r in self._runs.values()
            if (job is None or r.job == job) and (status is None or r.status is status)
        ]
        rows.sort(key=lambda r: (r.scheduled_at, r.attempt, r.created_at), reverse=True)
        return rows[:limit]

    async def summaries(self, jobs: Sequence[str]) -> dict[str, JobSummary]:
        result: dict[str, JobSummary] = {}
        for job in jobs:
            runs = await self.history(job, limit=len(self._runs) or 1)
            last = runs[0] if runs else None
            success = next((r for r in runs if r.status is RunStatus.SUCCEEDED), None)
            result[job] = JobSummary(
                job=job,
                last_status=last.status if last else None,
                last_scheduled_at=last.scheduled_at if last else None,
                last_worker_id=last.worker_id if last else None,
                last_success_at=success.scheduled_at if success else None,
                paused=job in self._paused,
                paused_reason=self._paused.get(job),
            )
        return result


_MISSING = object()


def _abandoned_reason(record: RunRecord) -> str:
    return f"lease expired: worker {record.worker_id} stopped renewing it"
