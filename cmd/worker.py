"""Running the worker: build everything from settings, run the scheduler, drain on a signal.

Clients register their own cleanup on one `AsyncExitStack`, so they close in the reverse order
of their start: scheduler, then RabbitMQ, then PostgreSQL, then telemetry.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import structlog

from financial.cmd.wiring import (
    Clients,
    build_clients,
    build_registry,
    dead_letter,
    financial_jobs,
)
from financial.configs import Settings
from financial.pkg.database.embedded import start_embedded_async
from financial.pkg.database.migrator import migrate
from financial.pkg.database.pool import DatabaseUnavailable, create_pool
from financial.pkg.database.run_store import PostgresRunStore
from financial.pkg.jobs.model import RunStatus
from financial.pkg.messaging.publisher import BrokerUnavailable
from financial.pkg.observability.systemd import SystemdNotifier
from financial.pkg.observability.tracing import Telemetry, setup_tracing, with_tracing
from financial.pkg.scheduler.clock import SystemClock
from financial.pkg.scheduler.registry import JobRegistry, JobSpec
from financial.pkg.scheduler.scheduler import Scheduler, SchedulerConfig
from financial.pkg.scheduler.store import DEFAULT_LEASE, RunStore

log = structlog.get_logger("financial.worker")

# Waits between attempts to reach PostgreSQL at start, so a worker started before its database
# (a reboot, a rollout) comes up on its own instead of restart-looping.
CONNECT_BACKOFF_S = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0)


def registry_for(settings: Settings, clients: Clients | None = None) -> JobRegistry:
    """Every job this worker knows, validated against settings (ConfigError when invalid)."""
    clients = clients or build_clients(settings)
    return build_registry(settings, financial_jobs(settings, clients))


# The loop beats at least this often (liveness), and faster when systemd's watchdog asks.
HEARTBEAT_INTERVAL = timedelta(seconds=5)


def scheduler_config(
    settings: Settings, watchdog_interval: timedelta | None = None
) -> SchedulerConfig:
    heartbeat = HEARTBEAT_INTERVAL
    if watchdog_interval is not None:
        heartbeat = min(heartbeat, watchdog_interval)
    return SchedulerConfig(
        worker_id=settings.worker_id,
        max_concurrent_jobs=settings.worker_max_concurrent_jobs,
        shutdown_timeout=timedelta(seconds=settings.worker_shutdown_timeout_seconds),
        heartbeat_interval=heartbeat,
        history_retention=timedelta(days=settings.worker_history_retention_days),
    )


class Signals:
    """SIGTERM/SIGINT: the first asks for a drain, the second forces it."""

    def __init__(self) -> None:
        self.stop = asyncio.Event()
        self._on_stop: list[Callable[[], None]] = []
        self._on_force: list[Callable[[], None]] = []
        self._received = 0

    def install(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._handle, sig)

    def subscribe(self, on_stop: Callable[[], None], on_force: Callable[[], None]) -> None:
        self._on_stop.append(on_stop)
        self._on_force.append(on_force)
        if self._received:
            on_stop()
        if self._received > 1:
            on_force()

    def _handle(self, sig: signal.Signals) -> None:
        self._received += 1
        if self._received == 1:
            log.info("shutdown_requested", signal=sig.name)
            self.stop.set()
            callbacks = self._on_stop
        else:
            log.warning("shutdown_forced", signal=sig.name)
            callbacks = self._on_force
        for callback in callbacks:
            callback()


def _closing(
    client: str, close: Callable[..., Awaitable[object]], *args: Any
) -> Callable[[], Awaitable[None]]:
    """A cleanup for the exit stack that logs `client_closed`, so the order is visible."""

    async def run() -> None:
        await close(*args)
        log.info("client_closed", client=client)

    return run


def open_telemetry(settings: Settings, stack: AsyncExitStack) -> Telemetry:
    """Tracing first on the stack, so its flush is the last thing shutdown does."""
    telemetry = setup_tracing(
        settings.otel_service_name,
        endpoint=settings.otel_exporter_otlp_endpoint,
        disabled=settings.otel_sdk_disabled,
        instance_id=settings.worker_id,
    )
    stack.push_async_callback(_closing("telemetry", telemetry.shutdown))
    return telemetry


async def open_database(
    settings: Settings,
    clients: Clients,
    stack: AsyncExitStack,
    *,
    retry_until: asyncio.Event | None,
) -> bool:
    """Start the embedded PostgreSQL when none is configured, open the pool, migrate.

    With `retry_until`, an unreachable database is retried with back-off until it answers or
    the event is set (then False); without it, DatabaseUnavailable propagates.
    """
    dsn = settings.database_dsn()
    if dsn is None:
        embedded = await start_embedded_async(settings.worker_data_dir / "postgres")
        stack.push_async_callback(_closing("embedded_postgres", asyncio.to_thread, embedded.stop))
        log.warning(
            "embedded_database_started",
            data_dir=str(embedded.data_dir),
            reason="no DATABASE_URL or DB_HOST is set; for trying the worker out, not production",
        )
        dsn = embedded.dsn
    attempt = 0
    while True:
        try:
            pool = await create_pool(
                dsn,
                min_size=settings.db_pool_min_size,
                max_size=settings.db_pool_max_size,
                command_timeout_s=settings.db_command_timeout_seconds,
                connect_timeout_s=settings.db_connect_timeout_seconds,
                application_name=settings.service_name_worker,
            )
            break
        except DatabaseUnavailable as exc:
            if retry_until is None:
                raise
            delay_s = CONNECT_BACKOFF_S[min(attempt, len(CONNECT_BACKOFF_S) - 1)]
            attempt += 1
            log.warning("database_unavailable", error=str(exc), retry_in_s=delay_s)
            try:
                await asyncio.wait_for(retry_until.wait(), delay_s)
            except TimeoutError:
                continue
            return False
    clients.db.attach(pool)
    stack.push_async_callback(_closing("postgres", clients.db.close))
    if settings.worker_auto_migrate:
        applied = await migrate(pool)
        log.info("migrations_applied", applied=applied)
    return True


async def open_broker(settings: Settings, clients: Clients, stack: AsyncExitStack) -> None:
    """Connect the publisher when RabbitMQ is configured; a broker that is down is not fatal."""
    if clients.publisher is None:
        log.warning(
            "outbox_relay_disabled",
            reason="RABBITMQ_URL is not set: events are kept in the outbox until it is",
        )
        return
    stack.push_async_callback(_closing("rabbitmq", clients.publisher.close))
    try:
        await clients.publisher.connect()
    except BrokerUnavailable as exc:
        # Events wait in the outbox; the relay connects on its next pass once the broker is back.
        log.warning("broker_unavailable", error=str(exc))


# How long a run stays claimed without a renewal: a replica that dies leaves its runs to be
# marked `abandoned` about this long afterwards, and a replica cut off from the database stops
# its runs a little before this passes.
RUN_LEASE = DEFAULT_LEASE


async def open_store(settings: Settings, clients: Clients, stack: AsyncExitStack) -> RunStore:
    """The PostgreSQL run store on the worker's pool, shared by every replica on the database."""
    store = PostgresRunStore(clients.db.pool, lease=RUN_LEASE)
    stack.push_async_callback(store.close)
    return store


async def serve(settings: Settings) -> int:
    """Run until SIGTERM/SIGINT; 0 when every run finished by itself, 1 when any was interrupted."""
    clients = build_clients(settings)
    registry = registry_for(settings, clients)
    notifier = SystemdNotifier()
    signals = Signals()
    signals.install()
    async with AsyncExitStack() as stack:
        telemetry = open_telemetry(settings, stack)
        if not await open_database(settings, clients, stack, retry_until=signals.stop):
            return 0
        await open_broker(settings, clients, stack)
        store = await open_store(settings, clients, stack)
        scheduler = Scheduler(
            registry,
            store=store,
            clock=SystemClock(),
            config=scheduler_config(settings, notifier.watchdog_interval),
            wrappers=[with_tracing(telemetry.tracer)],
            on_final_failure=dead_letter(clients.db),
            on_heartbeat=_watchdog(notifier),
        )
        signals.subscribe(scheduler.stop, scheduler.abort)
        loop_task = asyncio.create_task(scheduler.run())
        notifier.ready(f"running {len(scheduler.jobs)} jobs")
        log.info(
            "worker_started",
            worker_id=settings.worker_id,
            jobs=[spec.name for spec in scheduler.jobs],
            max_concurrent_jobs=settings.worker_max_concurrent_jobs,
        )
        await loop_task
        notifier.stopping()
        result = await scheduler.drain()
    log.info("worker_stopped", interrupted=result.interrupted)
    return 0 if result.clean else 1


def _watchdog(notifier: SystemdNotifier) -> Callable[[datetime], None] | None:
    """WATCHDOG=1 on every heartbeat of the loop, when systemd's watchdog is on."""
    if notifier.watchdog_interval is None:
        return None

    def beat(_at: datetime) -> None:
        notifier.watchdog()

    return beat


async def run_once(settings: Settings, spec: JobSpec, clients: Clients) -> int:
    """`financial jobs run NAME`: one run now through the whole chain; 0 on success, else 1."""
    signals = Signals()
    signals.install()
    async with AsyncExitStack() as stack:
        telemetry = open_telemetry(settings, stack)
        await open_database(settings, clients, stack, retry_until=None)
        await open_broker(settings, clients, stack)
        store = await open_store(settings, clients, stack)
        scheduler = Scheduler(
            [spec],
            store=store,
            clock=SystemClock(),
            config=scheduler_config(settings),
            wrappers=[with_tracing(telemetry.tracer)],
            on_final_failure=dead_letter(clients.db),
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
