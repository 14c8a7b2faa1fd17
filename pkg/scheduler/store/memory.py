"""`MemoryRunStore`: the in-memory twin of the PostgreSQL run store, for unit tests and
benchmarks. It keeps the semantics of the port (`store/__init__.py`) and passes the same
contract suite (`tests/contract/`)."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from financial.pkg.jobs.model import Overlap, RunStatus, Trigger
from financial.pkg.scheduler.clock import Clock, SystemClock
from financial.pkg.scheduler.store import (
    DEFAULT_LEASE,
    LIVE_STATUSES,
    OVERLAP_REPLACED_REASON,
    JobSummary,
    RunError,
    RunNotFound,
    RunRecord,
    RunStore,
    honours_pause,
    overlap_reason,
    paused_reason,
    require_final,
)
from financial.pkg.scheduler.store.drafts import (
    as_ended,
    as_renewed,
    as_started,
    new_record,
    uuid4_text,
)


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
        # Run ids come from a generator of the store's own, seeded from the OS: a test that
        # seeds `random` cannot make them repeat. Records and ids are built by `drafts.py`.
        self._random_bits = random.Random().getrandbits

    def _put(self, record: RunRecord) -> RunRecord:
        self._runs[record.run_id] = record
        if record.status in _LIVE:
            self._open.setdefault(record.job, set()).add(record.run_id)
        else:
            self._open.get(record.job, set()).discard(record.run_id)
        return record

    def _unfinished(self, job: str | None = None) -> list[RunRecord]:
        jobs = [job] if job is not None else list(self._open)
        return [self._runs[run_id] for name in jobs for run_id in self._open.get(name, ())]

    def _live(self, record: RunRecord, now: datetime) -> bool:
        return (
            record.status in _LIVE
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
        open_ids = self._open.get(job)
        # Only `skip` and `replace` look at the job's other live runs, and most claims find
        # no other open run: no scan, no sort.
        others: Sequence[RunRecord] = (
            self._live_by_tick(open_ids, now) if open_ids and overlap in _SEES_OTHERS else ()
        )
        error: RunError | None = None
        if job in self._paused and honours_pause(trigger):
            error = RunError("skipped", paused_reason(self._paused[job]))
        elif overlap is Overlap.SKIP and others:
            error = RunError("skipped", overlap_reason(others[0].worker_id))
        run_id = uuid4_text(self._random_bits(128))
        record = new_record(
            run_id=run_id,
            job=job,
            scheduled_at=scheduled_at,
            attempt=attempt,
            trigger=trigger,
            status=RunStatus.PENDING if error is None else RunStatus.SKIPPED,
            worker_id=worker_id,
            created_at=now,
            finished_at=None if error is None else now,
            error=error,
            fence=1,
            lease_expires_at=now + self.lease if error is None else None,
        )
        if error is not None:
            self._runs[run_id] = record
            return record
        self._runs[run_id] = record
        if open_ids is None:
            self._open[job] = {run_id}
        else:
            open_ids.add(run_id)
        if overlap is Overlap.REPLACE:
            for other in others:
                self._take_over(
                    other, RunStatus.INTERRUPTED, RunError("interrupted", OVERLAP_REPLACED_REASON)
                )
        return record

    def _live_by_tick(self, run_ids: set[str], now: datetime) -> list[RunRecord]:
        runs = self._runs
        return sorted(
            (runs[run_id] for run_id in run_ids if self._live(runs[run_id], now)),
            key=lambda r: (r.scheduled_at, r.attempt),
        )

    def _take_over(self, record: RunRecord, status: RunStatus, error: RunError) -> RunRecord:
        record = as_ended(record, status, self._clock.now(), error, record.fence + 1)
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
            # Still live: its id stays in `_open`.
            record = self._runs[run_id] = as_started(record, now, trace_id, now + self.lease)
        return record

    async def renew(self, held: Mapping[str, int]) -> set[str]:
        now = self._clock.now()
        renewed: set[str] = set()
        for run_id, fence in held.items():
            record = self._runs.get(run_id)
            if record is None or record.status not in _LIVE or record.fence != fence:
                continue
            self._runs[run_id] = as_renewed(record, now + self.lease)
            renewed.add(run_id)
        return renewed

    async def finish(
        self,
        run_id: str,
        status: RunStatus,
        *,
        fence: int,
        error: RunError | None = None,
        duration_ms: float | None = None,
    ) -> RunRecord:
        if status in _LIVE:  # the cheap test first: `require_final` reads `is_final`
            require_final(run_id, status)
        record = self._get(run_id)
        if record.status not in _LIVE or record.fence != fence:
            return record
        record = self._runs[run_id] = as_ended(
            record, status, self._clock.now(), error, record.fence, duration_ms
        )
        self._open[record.job].discard(run_id)  # where every live run's id is
        return record

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

    async def recent_runs(self, jobs: Sequence[str], *, limit: int) -> dict[str, list[RunRecord]]:
        result: dict[str, list[RunRecord]] = {job: [] for job in jobs}
        for record in self._runs.values():
            rows = result.get(record.job)
            if rows is not None:
                rows.append(record)
        for rows in result.values():
            rows.sort(key=lambda r: (r.scheduled_at, r.attempt, r.created_at), reverse=True)
            del rows[limit:]
        return result

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
# A set lookup rather than the `RunStatus.is_final` property: every end and every lease renewal
# asks it (benchmarks/README.md#what-the-shortcuts-save).
_LIVE = frozenset(LIVE_STATUSES)
_SEES_OTHERS = frozenset((Overlap.SKIP, Overlap.REPLACE))


def _abandoned_reason(record: RunRecord) -> str:
    return f"lease expired: worker {record.worker_id} stopped renewing it"
