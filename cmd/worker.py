"""Running the worker: build everything from settings, run the scheduler, drain on a signal."""

from __future__ import annotations

import asyncio
import platform
from collections.abc import Callable
from contextlib import AsyncExitStack
from datetime import datetime

import asyncpg
import structlog

from financial.cmd.alerts import open_late_checker, with_late
from financial.cmd.collector import tune_collector
from financial.cmd.event_loop import running_loop_name
from financial.cmd.runtime import (
    HEARTBEAT_INTERVAL,
    Signals,
    open_broker,
    open_database,
    open_health,
    open_store,
    open_telemetry,
    scheduler_config,
    wait_for_migrations,
)
from financial.cmd.status_extras import status_extras
from financial.cmd.watchers import (
    open_job_settings,
    open_notifications,
    open_request_watcher,
    watch_job_settings,
)
from financial.cmd.wiring import Clients, build_clients, dead_letter, registry_for
from financial.configs import Settings
from financial.pkg import outbox
from financial.pkg.database.migrator import migrate
from financial.pkg.jobs.model import ExecutorKind, RunStatus
from financial.pkg.observability.run_metrics import with_metrics
from financial.pkg.observability.systemd import SystemdNotifier
from financial.pkg.observability.tracing import with_tracing
from financial.pkg.scheduler.clock import SystemClock
from financial.pkg.scheduler.executors import Executors, ProcessExecutor, ThreadExecutor
from financial.pkg.scheduler.job_settings.postgres import PostgresJobSettings
from financial.pkg.scheduler.loop.job_settings import runtime_spec
from financial.pkg.scheduler.loop.scheduler import Scheduler
from financial.pkg.scheduler.registry import JobRegistry, JobSpec
from financial.pkg.scheduler.store.requests_postgres import PostgresRequestStore

log = structlog.get_logger("financial.worker")


async def open_executors(
    settings: Settings, specs: list[JobSpec], stack: AsyncExitStack
) -> Executors:
    """The thread pool and the process executor, from settings; the fork server is started
    when a job runs in a process. Closed after the drain: children terminated, threads not
    joined (a stuck one must never hold the exit)."""
    executors = Executors(
        threads=ThreadExecutor(settings.thread_pool_size),
        processes=ProcessExecutor(
            kill_grace_s=settings.worker_process_kill_grace_seconds,
            log_level=settings.log_level,
            log_format=settings.log_format,
        ),
        blocking_default=ExecutorKind(settings.worker_default_executor),
    )
    stack.push_async_callback(executors.close)
    await executors.start((spec.job, spec.options.executor) for spec in specs)
    return executors


async def serve(settings: Settings) -> int:
    """Run until SIGTERM/SIGINT; 0 when every run finished by itself, 1 when any was interrupted."""
    clients = build_clients(settings)
    registry = registry_for(settings, clients)
    notifier = SystemdNotifier()
    signals = Signals()
    signals.install()
    clock = SystemClock()
    config = scheduler_config(settings, notifier.watchdog_interval)
    async with AsyncExitStack() as stack:
        telemetry = open_telemetry(settings, stack)
        metrics, health = await open_health(
            settings,
            registry,
            clients,
            stack,
            signals=signals,
            clock=clock,
            heartbeat=config.heartbeat_interval or HEARTBEAT_INTERVAL,
        )
        if not await open_database(settings, clients, stack, retry_until=signals.stop):
            return 0
        if not settings.worker_auto_migrate and not await wait_for_migrations(
            clients, signals.stop
        ):
            return 0
        health.mark_migrated()
        await open_broker(settings, clients, stack)
        store = await open_store(settings, clients, stack)
        job_settings = await open_job_settings(registry, clients)
        metrics.watch_outbox_backlog(lambda: outbox.backlog(clients.db.pool))
        # Every job, not the enabled ones alone: `jobs set --enabled true` may start any.
        executors = await open_executors(settings, list(registry), stack)
        metrics.watch_stuck_threads(lambda: executors.stuck_threads)
        health.watch_stuck_threads(executors.threads.stuck_by_job)
        summaries = await store.summaries([spec.name for spec in registry])
        for name, summary in summaries.items():
            if summary.last_success_at is not None:
                metrics.observe_last_success(name, summary.last_success_at)
        scheduler = Scheduler(
            registry,
            store=store,
            clock=clock,
            config=config,
            hooks=[with_tracing(telemetry.tracer), with_metrics(metrics, clock)],
            on_final_failure=dead_letter(clients.db),
            on_heartbeat=_watchdog(notifier),
            on_unstarted=lambda record: metrics.count_run(record.job, record.status),
            executors=executors,
        )
        metrics.watch_next_fire_times(scheduler.next_fire_times)
        health.attach(scheduler, store)
        # One LISTEN connection for both watchers; it starts once both subscribed.
        notifications = open_notifications(settings, clients, clock, stack)
        watcher = open_request_watcher(settings, clients, scheduler, clock, notifications)
        # Done run requests go with the history, after WORKER_HISTORY_RETENTION_DAYS.
        requests = PostgresRequestStore(clients.db.pool)
        scheduler.maintenance.attach_requests(requests)
        signals.subscribe(watcher.stop, lambda: None)
        late_checker = open_late_checker(
            settings,
            list(registry),
            clients=clients,
            store=store,
            metrics=metrics,
            clock=clock,
            stack=stack,
        )
        # The status page: each job's values as it runs now, their sources and audit, its open
        # run requests, and the late badges and banner.
        runtime_extras = status_extras(registry, PostgresJobSettings(clients.db.pool), requests)
        health.watch_extras(with_late(late_checker, runtime_extras))

        def apply(spec: JobSpec) -> None:
            # A runtime setting (`jobs set`): the scheduler's ticks and the late checker's view.
            scheduler.apply(spec)
            late_checker.update(registry)

        job_settings.attach(apply)
        watch_job_settings(settings, job_settings, notifications, clock, stack)
        notifications.start()
        signals.subscribe(scheduler.stop, scheduler.abort)
        tune_collector()  # what start-up built stays; see collector.py
        loop_task = asyncio.create_task(scheduler.run())
        watcher_task = asyncio.create_task(watcher.run())
        notifier.ready(f"running {len(scheduler.jobs)} jobs")
        log.info(
            "worker_started",
            worker_id=settings.worker_id,
            jobs=[spec.name for spec in scheduler.jobs],
            max_concurrent_jobs=settings.worker_max_concurrent_jobs,
            event_loop=running_loop_name(),
            python=platform.python_version(),
        )
        await loop_task
        watcher.stop()
        health.mark_draining()
        notifier.stopping()
        result = await scheduler.drain()
        # It renewed the claims of the requests under way until the drain ended them.
        await watcher_task
    log.info("worker_stopped", interrupted=result.interrupted)
    return 0 if result.clean else 1


def _watchdog(notifier: SystemdNotifier) -> Callable[[datetime], None] | None:
    """WATCHDOG=1 on every heartbeat of the loop, when systemd's watchdog is on."""
    if notifier.watchdog_interval is None:
        return None

    def beat(_at: datetime) -> None:
        notifier.watchdog()

    return beat


async def run_once(
    settings: Settings, spec: JobSpec, clients: Clients, registry: JobRegistry | None = None
) -> int:
    """`financial jobs run NAME`: one run now through the whole chain; 0 on success, else 1.
    With the `registry`, the job runs with its runtime settings (`jobs set`) laid over it."""
    signals = Signals()
    signals.install()
    async with AsyncExitStack() as stack:
        telemetry = open_telemetry(settings, stack)
        await open_database(settings, clients, stack, retry_until=None)
        await open_broker(settings, clients, stack)
        store = await open_store(settings, clients, stack)
        if registry is not None:
            spec = await runtime_spec(registry, spec.name, PostgresJobSettings(clients.db.pool))
        executors = await open_executors(settings, [spec], stack)
        scheduler = Scheduler(
            [spec],
            store=store,
            clock=SystemClock(),
            config=scheduler_config(settings),
            hooks=[with_tracing(telemetry.tracer)],
            on_final_failure=dead_letter(clients.db),
            executors=executors,
        )
        signals.subscribe(scheduler.stop, scheduler.abort)
        try:
            record = await scheduler.run_now(spec)
        finally:
            await scheduler.close()
    status = record.status if record is not None else RunStatus.SKIPPED
    detail = f" ({record.error.type}: {record.error.message})" if record and record.error else ""
    print(f"{spec.name}: {status.value}{detail}")
    return 0 if status is RunStatus.SUCCEEDED else 1


async def run_migrations(settings: Settings) -> list[str]:
    """`financial migrate`: apply pending migrations to the configured (or embedded) database."""
    clients = Clients(db=build_clients(settings).db, publisher=None)
    async with AsyncExitStack() as stack:
        migrating = settings.model_copy(update={"worker_auto_migrate": False})
        await open_database(migrating, clients, stack, retry_until=None)
        pool: asyncpg.Pool = clients.db.pool
        return await migrate(pool)
