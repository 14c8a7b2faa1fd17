"""The worker's watchers of the database, started once the scheduler is built: runtime settings
(`financial jobs set`) and run requests (`jobs trigger`, `jobs backfill`), both woken by the
notifications of the worker's one LISTEN connection. The dead-man alert checker is in
`alerts.py`.

Each registers its own stop on the caller's `AsyncExitStack` (see `runtime.py`).
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack, suppress
from datetime import timedelta

import structlog

from financial.cmd.runtime import closing
from financial.cmd.wiring import Clients
from financial.configs import Settings
from financial.pkg.database.notifications import (
    LISTENER_PREFIX,
    NotificationHub,
    dedicated_connection,
    pool_connection,
)
from financial.pkg.observability.masking import mask_secrets
from financial.pkg.scheduler.clock import Clock
from financial.pkg.scheduler.job_settings import CHANNEL as JOB_SETTINGS_CHANNEL
from financial.pkg.scheduler.job_settings.postgres import PostgresJobSettings
from financial.pkg.scheduler.loop.job_settings import CALL_TIMEOUT_S as SETTINGS_CALL_TIMEOUT_S
from financial.pkg.scheduler.loop.job_settings import JobSettingsApplier, JobSettingsWatcher
from financial.pkg.scheduler.loop.requests import POLL_INTERVAL, RequestWatcher
from financial.pkg.scheduler.loop.scheduler import Scheduler
from financial.pkg.scheduler.registry import JobRegistry
from financial.pkg.scheduler.store.requests import REQUESTS_CHANNEL
from financial.pkg.scheduler.store.requests_postgres import PostgresRequestStore

log = structlog.get_logger("financial.worker")


def open_notifications(
    settings: Settings, clients: Clients, clock: Clock, stack: AsyncExitStack
) -> NotificationHub:
    """The worker's one LISTEN connection, shared by the runtime settings and run request
    watchers (each subscribes, then `start()`). Named `LISTENER_PREFIX` + worker id
    so `jobs trigger` can tell a worker is there; stopped after the watchers, before the pool."""
    name = LISTENER_PREFIX + settings.worker_id
    dsn = settings.database_dsn()
    # Its own connection for a configured database, beside the pool (a pool of one still serves
    # the runs); the embedded one (for trying the worker out) lends one of the pool's.
    connect = (
        pool_connection(clients.db.pool, name)
        if dsn is None
        else dedicated_connection(dsn, name, connect_timeout_s=settings.db_connect_timeout_seconds)
    )
    hub = NotificationHub(connect, clock, ping_interval=POLL_INTERVAL)
    stack.push_async_callback(closing("notifications", hub.close))
    return hub


def open_request_watcher(
    settings: Settings,
    clients: Clients,
    scheduler: Scheduler,
    clock: Clock,
    notifications: NotificationHub,
) -> RequestWatcher:
    """The watcher of run requests (`jobs trigger`, `jobs backfill`) on the worker's pool, woken
    by the notifications of `REQUESTS_CHANNEL` and each time the hub listens again."""
    # A request held by a replica that died ends `abandoned` about one run lease later, as its
    # run does; never less than three polls, so a busy worker keeps its claims.
    lease = max(timedelta(seconds=settings.worker_run_lease_seconds), 3 * POLL_INTERVAL)
    watcher = RequestWatcher(
        requests=PostgresRequestStore(clients.db.pool, claim_lease=lease),
        scheduler=scheduler,
        clock=clock,
        worker_id=settings.worker_id,
    )
    notifications.subscribe(REQUESTS_CHANNEL, watcher.notified, watcher.wake)
    return watcher


async def open_job_settings(registry: JobRegistry, clients: Clients) -> JobSettingsApplier:
    """Lay the runtime settings (`financial jobs set`) over the registry before the scheduler is
    built; a database that cannot say leaves the env and code values, the watcher catches up."""
    applier = JobSettingsApplier(registry, PostgresJobSettings(clients.db.pool))
    try:
        await asyncio.wait_for(applier.refresh(), SETTINGS_CALL_TIMEOUT_S)
    except Exception as exc:
        log.warning(
            "job_settings_unavailable",
            error=mask_secrets(f"{type(exc).__name__}: {exc}"),
            hint="jobs start with their env and code values; runtime settings follow",
        )
    return applier


def watch_job_settings(
    settings: Settings,
    applier: JobSettingsApplier,
    notifications: NotificationHub,
    clock: Clock,
    stack: AsyncExitStack,
) -> JobSettingsWatcher:
    """Apply each runtime settings change notified, and re-read them every
    WORKER_JOB_SETTINGS_REREAD_SECONDS and each time the hub listens again; stopped before the
    hub and the pool close."""
    watcher = JobSettingsWatcher(
        applier,
        clock,
        reread=timedelta(seconds=settings.worker_job_settings_reread_seconds),
    )
    notifications.subscribe(JOB_SETTINGS_CHANNEL, watcher.notified, watcher.caught_up)
    task = asyncio.create_task(watcher.run())

    async def stop() -> None:
        watcher.stop()
        with suppress(TimeoutError):  # a watcher stuck in a call: wait_for cancels it
            await asyncio.wait_for(task, SETTINGS_CALL_TIMEOUT_S)

    stack.push_async_callback(closing("job_settings", stop))
    return watcher
