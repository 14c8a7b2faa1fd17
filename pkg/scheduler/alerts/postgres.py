"""PostgresAlertStore: the alert store port over `scheduler_leases` and `job_alerts`.

It keeps the semantics of `financial.pkg.scheduler.alerts` (checked by the same contract suite
as the in-memory store). Lease expiry is the database's `now()`, so replica clocks may disagree.
A state change and its outbox event go in one transaction, conditioned on the state it changes
(`late_since IS NULL` to turn late, `IS NOT NULL` to recover): of two replicas deciding the same
change at once, one writes it and its event, the other changes nothing.

No call is retried here: the checker calls again on its next pass, and a failure is logged
there. Its callers never see a password (asyncpg's errors do not carry the DSN).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta

import asyncpg

from financial.pkg import outbox
from financial.pkg.database.pool import Connection
from financial.pkg.database.queries import load_queries
from financial.pkg.scheduler.alerts import AlertEvent, AlertState, AlertStore, JobFacts, Lateness

QUERIES = load_queries("financial.pkg.scheduler.alerts", "postgres.sql")


class PostgresAlertStore(AlertStore):
    """Alert states in PostgreSQL, shared by every replica on the database."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def take_lease(self, name: str, holder: str, ttl: timedelta) -> bool:
        row = await self._pool.fetchrow(QUERIES["take_lease"], name, holder, ttl.total_seconds())
        return row is not None

    async def release_lease(self, name: str, holder: str) -> None:
        await self._pool.execute(QUERIES["release_lease"], name, holder)

    async def watch(self, jobs: Sequence[str], at: datetime) -> dict[str, AlertState]:
        rows = await self._pool.fetch(QUERIES["watch"], list(jobs), at)
        return {row["job"]: _state(row) for row in rows}

    async def rewatch(self, jobs: Sequence[str], at: datetime) -> None:
        await self._pool.execute(QUERIES["rewatch"], list(jobs), at)

    async def forget(
        self, jobs: Sequence[str], *, event: Callable[[AlertState], AlertEvent]
    ) -> list[AlertState]:
        async with self._pool.acquire() as conn, conn.transaction():
            late = [_state(row) for row in await conn.fetch(QUERIES["forget"], list(jobs))]
            for state in late:
                await _add(conn, event(state))
        return late

    async def facts(self, ticks: Mapping[str, datetime | None]) -> dict[str, JobFacts]:
        rows = await self._pool.fetch(QUERIES["facts"], list(ticks), list(ticks.values()))
        return {row["job"]: JobFacts(row["last_success_tick"], row["tick_started"]) for row in rows}

    async def mark_late(
        self, job: str, lateness: Lateness, *, at: datetime, event: AlertEvent
    ) -> bool:
        async with self._pool.acquire() as conn, conn.transaction():
            changed = await conn.fetchval(
                QUERIES["mark_late"], job, lateness.since, lateness.tick, lateness.reason, at
            )
            if changed is None:
                return False
            await _add(conn, event)
            return True

    async def mark_recovered(self, job: str, *, at: datetime, event: AlertEvent) -> bool:
        async with self._pool.acquire() as conn, conn.transaction():
            changed = await conn.fetchval(QUERIES["mark_recovered"], job, at)
            if changed is None:
                return False
            await _add(conn, event)
            return True

    async def late(self) -> dict[str, AlertState]:
        rows = await self._pool.fetch(QUERIES["late"])
        return {row["job"]: _state(row) for row in rows}


async def _add(conn: Connection, event: AlertEvent) -> None:
    await outbox.add(conn, event.routing_key, event.payload, message_id=event.message_id)


def _state(row: asyncpg.Record) -> AlertState:
    return AlertState(
        job=row["job"],
        watched_since=row["watched_since"],
        late_since=row["late_since"],
        late_tick=row["late_tick"],
        reason=row["reason"],
        alerted_at=row["alerted_at"],
        recovered_at=row["recovered_at"],
    )
