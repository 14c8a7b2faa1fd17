"""The PostgreSQL job settings store: `job_settings` and `job_settings_audit` (migration 0005).

Migration 0008 adds `alert_after_seconds`.

A change, its audit row and its notification on `CHANNEL` are one transaction: a replica that
LISTENs hears of a change only once it is committed, and a change that fails leaves no trace.
"""

from __future__ import annotations

import json

import asyncpg

from financial.pkg.database.pool import Connection
from financial.pkg.database.queries import load_queries
from financial.pkg.scheduler.job_settings import (
    CHANNEL,
    DEFAULT_AUDIT_LIMIT,
    NOT_SET,
    Check,
    JobSettingsStore,
    RuntimeSettings,
    SettingsAction,
    SettingsChange,
    require_changes,
)

QUERIES = load_queries("financial.pkg.scheduler.job_settings", "postgres.sql")


def _settings(row: asyncpg.Record | None) -> RuntimeSettings:
    if row is None:
        return NOT_SET
    timeout, alert_after = row["timeout_seconds"], row["alert_after_seconds"]
    return RuntimeSettings(
        schedule=row["schedule"],
        timeout_s=None if timeout is None else float(timeout),
        enabled=row["enabled"],
        calendar=row["calendar"],
        alert_after_s=None if alert_after is None else float(alert_after),
    )


class PostgresJobSettings(JobSettingsStore):
    """Runtime settings in PostgreSQL, shared by every replica and the command line."""

    def __init__(self, pool: asyncpg.Pool, channel: str = CHANNEL) -> None:
        self._pool = pool
        self.channel = channel

    async def get(self, job: str) -> RuntimeSettings:
        async with self._pool.acquire() as conn:
            return _settings(await conn.fetchrow(QUERIES["get"], job))

    async def all(self) -> dict[str, RuntimeSettings]:
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(QUERIES["all"])
        found = {row["job"]: _settings(row) for row in rows}
        return {job: value for job, value in found.items() if not value.empty}

    async def set(
        self,
        job: str,
        changes: RuntimeSettings,
        *,
        by: str,
        reason: str | None,
        check: Check | None = None,
    ) -> SettingsChange:
        require_changes(job, changes)
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(QUERIES["ensure_row"], job, by)
            old = _settings(await conn.fetchrow(QUERIES["lock"], job))
            new = old.merged(changes)
            if check is not None:
                check(new)
            await conn.execute(
                QUERIES["write"],
                job,
                new.schedule,
                new.timeout_s,
                new.enabled,
                new.calendar,
                new.alert_after_s,
                by,
            )
            return await self._record(conn, job, SettingsAction.SET, old, new, by, reason)

    async def reset(self, job: str, *, by: str, reason: str | None) -> SettingsChange | None:
        async with self._pool.acquire() as conn, conn.transaction():
            old = _settings(await conn.fetchrow(QUERIES["lock"], job))
            await conn.execute(QUERIES["delete"], job)
            if old.empty:
                return None
            return await self._record(conn, job, SettingsAction.RESET, old, NOT_SET, by, reason)

    async def audit(self, job: str, limit: int = DEFAULT_AUDIT_LIMIT) -> list[SettingsChange]:
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(QUERIES["audit"], job, limit)
        return [
            SettingsChange(
                job=row["job"],
                at=row["at"],
                by=row["changed_by"],
                action=SettingsAction(row["action"]),
                old=RuntimeSettings.from_dict(json.loads(row["old_values"])),
                new=RuntimeSettings.from_dict(json.loads(row["new_values"])),
                reason=row["reason"],
            )
            for row in rows
        ]

    async def _record(
        self,
        conn: Connection,
        job: str,
        action: SettingsAction,
        old: RuntimeSettings,
        new: RuntimeSettings,
        by: str,
        reason: str | None,
    ) -> SettingsChange:
        at = await conn.fetchval(
            QUERIES["audit_add"],
            job,
            by,
            action.value,
            json.dumps(old.as_dict()),
            json.dumps(new.as_dict()),
            reason,
        )
        await conn.execute(QUERIES["notify"], self.channel, job)
        return SettingsChange(job, at, by, action, old, new, reason)
