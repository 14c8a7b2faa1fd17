"""The PostgreSQL job settings store: `job_settings` and `job_settings_audit` (migration 0005).

A change, its audit row and its notification on `CHANNEL` are one transaction: a replica that
LISTENs hears of a change only once it is committed, and a change that fails leaves no trace.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress

import asyncpg

from financial.pkg.database.dsn import scrub
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
    timeout = row["timeout_seconds"]
    return RuntimeSettings(
        schedule=row["schedule"],
        timeout_s=None if timeout is None else float(timeout),
        enabled=row["enabled"],
        calendar=row["calendar"],
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
                QUERIES["write"], job, new.schedule, new.timeout_s, new.enabled, new.calendar, by
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


class _Listener:
    """A connection held for LISTEN (see `dedicated_listener` and `listener`)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._callbacks: list[tuple[str, Callable[[Connection, int, str, object], None]]] = []

    async def listen(self, channel: str, on_notify: Callable[[str], None]) -> None:
        def heard(_conn: Connection, _pid: int, _channel: str, payload: object) -> None:
            on_notify(str(payload))

        await self._conn.add_listener(channel, heard)
        self._callbacks.append((channel, heard))

    async def ping(self) -> None:
        await self._conn.execute("SELECT 1")

    async def close(self) -> None:
        for channel, callback in self._callbacks:
            if not self._conn.is_closed():
                await self._conn.remove_listener(channel, callback)


def listener(pool: asyncpg.Pool) -> Callable[[], AbstractAsyncContextManager[_Listener]]:
    """What `JobSettingsWatcher` connects with: a connection of `pool`, released on exit."""

    @asynccontextmanager
    async def connect() -> AsyncIterator[_Listener]:
        async with pool.acquire() as conn:
            held = _Listener(conn)
            try:
                yield held
            finally:
                # A connection already lost cannot unlisten: the pool replaces it.
                with suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                    await held.close()

    return connect


def dedicated_listener(
    dsn: str, *, connect_timeout_s: float, application_name: str
) -> Callable[[], AbstractAsyncContextManager[_Listener]]:
    """What `JobSettingsWatcher` connects with in the worker: a connection of its own to `dsn`
    (the pool's DSN), closed on exit. A failure to connect is a ConnectionError whose message
    never shows the DSN's password."""

    @asynccontextmanager
    async def connect() -> AsyncIterator[_Listener]:
        try:
            conn = await asyncpg.connect(
                dsn,
                timeout=connect_timeout_s,
                server_settings={"application_name": application_name},
            )
        except Exception as exc:
            raise ConnectionError(scrub(f"{type(exc).__name__}: {exc}", dsn)) from None
        held = _Listener(conn)
        try:
            yield held
        finally:
            with suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                await held.close()
            conn.terminate()

    return connect
