"""`PostgresRequestStore`: run requests in PostgreSQL (`run_requests`), shared by every replica.

It keeps the semantics of the port (`requests.py`), checked by the same contract suite as the
in-memory twin. Each call is retried through transient errors for up to `retry_for`, then fails
with `RunStoreUnavailable`; but `add`, tried once: a manual request repeated after a lost reply
would be queued twice (only a backfill tick has a unique index to stop it).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

import asyncpg

from financial.pkg.database.queries import load_queries
from financial.pkg.database.transient import is_transient, retrying
from financial.pkg.jobs.model import RunStatus, Trigger
from financial.pkg.scheduler.store import RunStoreUnavailable
from financial.pkg.scheduler.store.requests import (
    DEFAULT_CLAIM_LEASE,
    Cancellation,
    RequestCounts,
    RequestState,
    RequestStore,
    RunRequest,
    request_trigger,
    request_uuids,
)

T = TypeVar("T")

QUERIES = load_queries("financial.pkg.scheduler.store", "requests.sql")
DEFAULT_RETRY_FOR = timedelta(seconds=10)


class PostgresRequestStore(RequestStore):
    """Run requests in PostgreSQL, on the worker's (or the command line's) pool."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        claim_lease: timedelta = DEFAULT_CLAIM_LEASE,
        retry_for: timedelta = DEFAULT_RETRY_FOR,
    ) -> None:
        self._pool = pool
        self.claim_lease = claim_lease
        self._retry_for_s = retry_for.total_seconds()

    async def _call(self, what: str, call: Callable[[], Awaitable[T]], *, once: bool = False) -> T:
        try:
            if once:
                return await call()
            return await retrying(call, budget_s=self._retry_for_s, what=what)
        except Exception as exc:
            if is_transient(exc):
                raise RunStoreUnavailable(
                    f"run requests {what}: PostgreSQL did not answer within "
                    f"{self._retry_for_s:g} s: {type(exc).__name__}: {exc}"
                ) from exc
            raise

    async def _fetch(self, what: str, *args: object) -> list[asyncpg.Record]:
        query = QUERIES[what]
        return await self._call(what, lambda: self._pool.fetch(query, *args))

    async def add(
        self,
        job: str,
        ticks: Sequence[datetime | None],
        *,
        trigger: Trigger,
        requested_by: str,
        args: Mapping[str, Any] | None = None,
    ) -> list[RunRequest]:
        trigger = request_trigger(trigger)
        payload = json.dumps(dict(args or {}))
        ids = [uuid.uuid4() for _ in ticks]

        async def add() -> list[asyncpg.Record]:
            async with self._pool.acquire() as conn, conn.transaction():
                rows: list[asyncpg.Record] = await conn.fetch(
                    QUERIES["add"], ids, list(ticks), job, trigger.value, payload, requested_by
                )
                if rows:
                    # Delivered when the transaction commits, so a worker woken finds the rows.
                    await conn.execute(QUERIES["notify"], job)
                return rows

        rows = await self._call("add", add, once=True)
        return sorted((_request(row) for row in rows), key=lambda r: r.tick)

    async def claim(self, jobs: Sequence[str], *, worker_id: str, limit: int) -> list[RunRequest]:
        if not jobs or limit < 1:
            return []
        [row] = await self._fetch("any_open", list(jobs))
        if not row[0]:
            return []

        async def claim() -> list[asyncpg.Record]:
            async with self._pool.acquire() as conn, conn.transaction():
                await conn.execute(QUERIES["lock"])
                await conn.execute(QUERIES["expire"])
                rows: list[asyncpg.Record] = await conn.fetch(
                    QUERIES["claim"], list(jobs), worker_id, limit, self.claim_lease
                )
                return rows

        rows = await self._call("claim", claim)
        return sorted((_request(row) for row in rows), key=lambda r: (r.requested_at, r.tick))

    async def renew(self, request_ids: Sequence[str], *, worker_id: str) -> set[str]:
        if not request_ids:
            return set()
        ids = [uuid.UUID(i) for i in request_ids]
        rows = await self._fetch("renew", ids, worker_id, self.claim_lease)
        return {str(row["request_id"]) for row in rows}

    async def complete(
        self, request_id: str, *, worker_id: str, run_id: str | None, status: RunStatus
    ) -> RunRequest | None:
        if not status.is_final:
            raise ValueError(f"complete({request_id!r}) with status {status}: expected a final one")
        run = uuid.UUID(run_id) if run_id is not None else None
        rows = await self._fetch("complete", uuid.UUID(request_id), worker_id, run, status.value)
        return _request(rows[0]) if rows else await self.get(request_id)

    async def expire(self) -> list[RunRequest]:
        return [_request(row) for row in await self._fetch("expire")]

    async def get(self, request_id: str) -> RunRequest | None:
        rows = await self._fetch("get", uuid.UUID(request_id))
        return _request(rows[0]) if rows else None

    async def open_requests(
        self, job: str | None = None, *, limit: int | None = None
    ) -> list[RunRequest]:
        return [_request(row) for row in await self._fetch("open_requests", job, limit)]

    async def counts(self, jobs: Sequence[str]) -> dict[str, RequestCounts]:
        if not jobs:
            return {}
        rows = await self._fetch("counts", list(jobs))
        return {row["job"]: RequestCounts(row["pending"], row["claimed"]) for row in rows}

    async def cancel(
        self,
        job: str,
        request_ids: Sequence[str] | None,
        *,
        trigger: Trigger | None = None,
        cancelled_by: str,
        reason: str | None = None,
    ) -> Cancellation:
        ids = None if request_ids is None else list(dict.fromkeys(request_uuids(request_ids)))
        kind = None if trigger is None else request_trigger(trigger).value

        async def cancel() -> tuple[list[asyncpg.Record], list[asyncpg.Record]]:
            async with self._pool.acquire() as conn, conn.transaction():
                done: list[asyncpg.Record] = await conn.fetch(
                    QUERIES["cancel"], job, ids, kind, cancelled_by, reason
                )
                rest: list[asyncpg.Record] = await conn.fetch(
                    QUERIES["cancel_left"], job, kind, ids
                )
                return done, rest

        # Retried: a cancel repeated after a lost reply cancels nothing twice; it finds the
        # requests of the first try cancelled already (`left`, with their `cancelled_by`).
        done, rest = await self._call("cancel", cancel)
        cancelled = sorted((_request(r) for r in done), key=lambda r: (r.requested_at, r.tick))
        gone = {r.request_id for r in cancelled}
        left = [_request(r) for r in rest if str(r["request_id"]) not in gone]
        found = gone | {r.request_id for r in left}
        unknown = [str(i) for i in ids or () if str(i) not in found]
        return Cancellation(tuple(cancelled), tuple(left), tuple(unknown))

    async def prune(self, before: datetime, *, limit: int = 1000) -> int:
        query = QUERIES["prune"]
        status = await self._call("prune", lambda: self._pool.execute(query, before, limit))
        return int(status.split()[-1])

    async def succeeded_ticks(self, job: str, start: datetime, end: datetime) -> set[datetime]:
        rows = await self._fetch("succeeded_ticks", job, start, end)
        return {row["scheduled_at"] for row in rows}

    async def next_attempt(self, job: str, tick: datetime) -> int:
        rows = await self._fetch("next_attempt", job, tick)
        attempt: int = rows[0][0]
        return attempt


def _request(row: asyncpg.Record) -> RunRequest:
    return RunRequest(
        request_id=str(row["request_id"]),
        job=row["job"],
        tick=row["tick"],
        trigger=Trigger(row["trigger"]),
        requested_at=row["requested_at"],
        requested_by=row["requested_by"],
        args=json.loads(row["args"]),
        state=RequestState(row["state"]),
        claimed_by=row["claimed_by"],
        run_id=str(row["run_id"]) if row["run_id"] is not None else None,
        status=RunStatus(row["status"]) if row["status"] is not None else None,
        finished_at=row["finished_at"],
        cancelled_by=row["cancelled_by"],
        cancel_reason=row["cancel_reason"],
    )


async def listeners(pool: asyncpg.Pool, prefix: str) -> list[str]:
    """The application names starting with `prefix` connected to this database now: with
    `LISTENER_PREFIX`, the workers listening for notifications (`pkg/database/notifications.py`)."""
    rows = await pool.fetch(
        "SELECT application_name FROM pg_stat_activity "
        "WHERE datname = current_database() AND starts_with(application_name, $1) "
        "ORDER BY application_name",
        prefix,
    )
    return [row["application_name"] for row in rows]
