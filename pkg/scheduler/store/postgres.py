"""The PostgreSQL run store: the run store port over `job_runs` and `job_state`, for replicas.

It keeps the semantics of `financial.pkg.scheduler.store` (checked by the same contract suite as
the in-memory store): one statement per call, claims decided by the unique key on
`(job, scheduled_at, attempt)` with pause and overlap decided in the same statement, leases and
timestamps from the database's `now()`, updates conditioned on the fence.

The batch calls (`claim_many`, `start_many`, `finish_many`) send a whole batch as arrays in one
statement; `claim`, `start` and `finish` send a batch of one. A batch naming one job (claims) or
one run (starts, finishes) more than once would see its own changes only after the statement, so
it goes out as one statement per repeat, in request order: each request is still decided as if
sent alone, after those before it.

Every call is retried through transient errors (a dropped connection, a restarting server) with
back-off for up to `retry_for`, then fails with `RunStoreUnavailable`. Retrying is safe: the run
id of a claim is chosen here, so a claim repeated after a lost reply finds its own row, and every
update is conditioned on the row's state, so a repeat changes nothing twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TypeVar

import asyncpg

from financial.pkg.database.queries import load_queries
from financial.pkg.database.transient import is_transient, retrying
from financial.pkg.jobs.model import Overlap, RunStatus, Trigger
from financial.pkg.observability.dependencies import DATABASE, came_back, went_away
from financial.pkg.observability.masking import mask_secrets
from financial.pkg.scheduler.store import (
    DEFAULT_LEASE,
    OVERLAP_REPLACED_REASON,
    OVERLAP_SKIP_REASON,
    ClaimRequest,
    FinishRequest,
    JobSummary,
    RunError,
    RunNotFound,
    RunRecord,
    RunStore,
    RunStoreUnavailable,
    StartRequest,
    honours_pause,
    require_final,
)

T = TypeVar("T")

QUERIES = load_queries("financial.pkg.scheduler.store", "postgres.sql")
DEFAULT_RETRY_FOR = timedelta(seconds=30)


class PostgresRunStore(RunStore):
    """Runs in PostgreSQL, shared by every replica that uses the same database."""

    shared = True
    batched = True

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        lease: timedelta = DEFAULT_LEASE,
        retry_for: timedelta = DEFAULT_RETRY_FOR,
    ) -> None:
        if lease <= timedelta(0):
            raise ValueError(f"lease {lease}: expected a positive duration")
        self._pool = pool
        self.lease = lease
        self._retry_for_s = retry_for.total_seconds()

    async def _call(
        self, what: str, call: Callable[[], Awaitable[T]], budget_s: float | None = None
    ) -> T:
        budget_s = self._retry_for_s if budget_s is None else budget_s

        async def attempt() -> T:
            # Each attempt tells whether PostgreSQL is there: one line when it goes, one when
            # it is back (`dependencies`), however many calls fail in between.
            try:
                result = await call()
            except Exception as exc:
                if is_transient(exc):
                    went_away(DATABASE, exc)
                raise
            came_back(DATABASE)
            return result

        try:
            return await retrying(attempt, budget_s=budget_s, what=what)
        except Exception as exc:
            if is_transient(exc):
                raise RunStoreUnavailable(
                    f"run store {what}: PostgreSQL did not answer within "
                    f"{budget_s:g} s: {type(exc).__name__}: {exc}"
                ) from exc
            raise

    async def _fetch(
        self, what: str, *args: object, budget_s: float | None = None
    ) -> list[asyncpg.Record]:
        query = QUERIES[what]
        return await self._call(what, lambda: self._pool.fetch(query, *args), budget_s)

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
        request = ClaimRequest(job, scheduled_at, attempt, trigger, overlap)
        [record] = await self.claim_many([request], worker_id=worker_id)
        return record

    async def claim_many(
        self, requests: Sequence[ClaimRequest], *, worker_id: str
    ) -> list[RunRecord | None]:
        run_ids = [uuid.uuid4() for _ in requests]
        found: dict[uuid.UUID, RunRecord] = {}
        for indexes in _rounds([r.job for r in requests]):
            # Key order, as the statement inserts them (see the query).
            indexes.sort(key=lambda i: _key(requests[i]))
            batch = [requests[i] for i in indexes]
            rows = await self._fetch(
                "claim_many",
                [run_ids[i] for i in indexes],
                [r.job for r in batch],
                [r.scheduled_at for r in batch],
                [r.attempt for r in batch],
                [r.trigger.value for r in batch],
                [r.overlap.value for r in batch],
                [honours_pause(r.trigger) for r in batch],
                worker_id,
                self.lease,
                OVERLAP_SKIP_REASON,
                OVERLAP_REPLACED_REASON,
            )
            found.update(_by_id(rows))
        return [found.get(run_id) for run_id in run_ids]

    async def start(self, run_id: str, *, fence: int, trace_id: str | None = None) -> RunRecord:
        [record] = await self.start_many([StartRequest(run_id, fence, trace_id)])
        if record is None:
            raise RunNotFound(run_id)
        return record

    async def start_many(self, requests: Sequence[StartRequest]) -> list[RunRecord | None]:
        run_ids = [uuid.UUID(r.run_id) for r in requests]
        results: list[RunRecord | None] = [None] * len(requests)
        for indexes in _rounds(run_ids):
            rows = await self._fetch(
                "start_many",
                [run_ids[i] for i in indexes],
                [requests[i].fence for i in indexes],
                [requests[i].trace_id for i in indexes],
                self.lease,
            )
            found = _by_id(rows)
            for i in indexes:
                results[i] = found.get(run_ids[i])
        return results

    async def renew(self, held: Mapping[str, int]) -> set[str]:
        if not held:
            return set()
        ids = [uuid.UUID(run_id) for run_id in held]
        # Renewals come every third of the lease: one that cannot get through soon gives way to
        # the next, rather than hold on to a lease estimate that grows stale while it retries.
        budget_s = min(self._retry_for_s, self.lease.total_seconds() / 6)
        rows = await self._fetch("renew", ids, list(held.values()), self.lease, budget_s=budget_s)
        return {str(row["run_id"]) for row in rows}

    async def finish(
        self,
        run_id: str,
        status: RunStatus,
        *,
        fence: int,
        error: RunError | None = None,
        duration_ms: float | None = None,
    ) -> RunRecord:
        [record] = await self.finish_many(
            [FinishRequest(run_id, status, fence, error, duration_ms)]
        )
        if record is None:
            raise RunNotFound(run_id)
        return record

    async def finish_many(self, requests: Sequence[FinishRequest]) -> list[RunRecord | None]:
        for r in requests:
            require_final(r.run_id, r.status)
        run_ids = [uuid.UUID(r.run_id) for r in requests]
        results: list[RunRecord | None] = [None] * len(requests)
        for indexes in _rounds(run_ids):
            batch = [requests[i] for i in indexes]
            rows = await self._fetch(
                "finish_many",
                [run_ids[i] for i in indexes],
                [r.fence for r in batch],
                [r.status.value for r in batch],
                [r.error.type if r.error else None for r in batch],
                # `RunError.of` masked a job's message; this also covers any error built by hand.
                [mask_secrets(r.error.message) if r.error else None for r in batch],
                [r.duration_ms for r in batch],
            )
            found = _by_id(rows)
            for i in indexes:
                results[i] = found.get(run_ids[i])
        return results

    async def live_runs(self, job: str) -> list[RunRecord]:
        return [_record(row) for row in await self._fetch("live_runs", job)]

    async def sweep_abandoned(self, *, limit: int = 100) -> list[RunRecord]:
        return [_record(row) for row in await self._fetch("sweep_abandoned", limit)]

    async def prune(self, older_than: timedelta, *, limit: int = 1000) -> int:
        query = QUERIES["prune"]
        status = await self._call("prune", lambda: self._pool.execute(query, older_than, limit))
        return int(status.split()[-1])

    async def pause(self, job: str, reason: str | None = None) -> None:
        query = QUERIES["pause"]
        await self._call("pause", lambda: self._pool.execute(query, job, reason))

    async def resume(self, job: str) -> bool:
        return bool(await self._fetch("resume", job))

    async def paused(self) -> dict[str, str | None]:
        return {row["job"]: row["paused_reason"] for row in await self._fetch("paused")}

    async def recorded_ticks(self, job: str, since: datetime) -> set[datetime]:
        return {row["scheduled_at"] for row in await self._fetch("recorded_ticks", job, since)}

    async def history(
        self, job: str | None = None, *, status: RunStatus | None = None, limit: int = 50
    ) -> list[RunRecord]:
        status_value = status.value if status is not None else None
        if job is None:
            rows = await self._fetch("history_all", status_value, limit)
        else:
            rows = await self._fetch("history_job", job, status_value, limit)
        return [_record(row) for row in rows]

    async def recent_runs(self, jobs: Sequence[str], *, limit: int) -> dict[str, list[RunRecord]]:
        names = list(dict.fromkeys(jobs))
        result: dict[str, list[RunRecord]] = {job: [] for job in names}
        for row in await self._fetch("recent_runs", names, limit):
            result[row["job"]].append(_record(row))
        return result

    async def summaries(self, jobs: Sequence[str]) -> dict[str, JobSummary]:
        rows = await self._fetch("summaries", list(jobs))
        return {
            row["job"]: JobSummary(
                job=row["job"],
                last_status=RunStatus(row["last_status"]) if row["last_status"] else None,
                last_scheduled_at=row["last_scheduled_at"],
                last_worker_id=row["last_worker_id"],
                last_success_at=row["last_success_at"],
                paused=row["paused"],
                paused_reason=row["paused_reason"],
            )
            for row in rows
        }


def _rounds(keys: Sequence[Hashable]) -> list[list[int]]:
    """The indexes of `keys` in rounds where no key appears twice: the n-th occurrence of each
    key goes in round n. Keys all distinct (the usual batch) make one round."""
    rounds: list[list[int]] = []
    seen: dict[Hashable, int] = {}
    for i, key in enumerate(keys):
        n = seen.get(key, 0)
        seen[key] = n + 1
        if n == len(rounds):
            rounds.append([])
        rounds[n].append(i)
    return rounds


def _key(request: ClaimRequest) -> tuple[str, datetime, int]:
    return (request.job, request.scheduled_at, request.attempt)


def _by_id(rows: Sequence[asyncpg.Record]) -> dict[uuid.UUID, RunRecord]:
    return {row["run_id"]: _record(row) for row in rows}


def _record(row: asyncpg.Record) -> RunRecord:
    error = None
    if row["error_type"] is not None:
        # A row written by a version that stored messages as they were is masked on the way out.
        error = RunError(row["error_type"], mask_secrets(row["error_message"] or ""))
    return RunRecord(
        run_id=str(row["run_id"]),
        job=row["job"],
        scheduled_at=row["scheduled_at"],
        attempt=row["attempt"],
        trigger=Trigger(row["trigger"]),
        status=RunStatus(row["status"]),
        worker_id=row["worker_id"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        error=error,
        trace_id=row["trace_id"],
        fence=row["fence"],
        lease_expires_at=row["lease_expires_at"],
        duration_ms=row["duration_ms"],
    )
