"""The worker's clients and their lifecycles, shared by `worker`, `jobs run` and `migrate`.

Each `open_*` registers its own cleanup on the caller's `AsyncExitStack`, so clients close in
the reverse order of their start: scheduler, then RabbitMQ, then PostgreSQL, then telemetry.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import timedelta
from typing import Any

import asyncpg
import structlog

from financial.cmd.wiring import Clients, ConfigError, build_clients
from financial.configs import Settings, otel
from financial.configs.errors import connection_problem
from financial.pkg.database.embedded import start_embedded_async
from financial.pkg.database.migrator import applied_migrations, load_migrations, migrate
from financial.pkg.database.pool import DatabaseConfigError, DatabaseUnavailable, create_pool
from financial.pkg.health import WorkerHealth, database_ping, start_health_server
from financial.pkg.messaging.publisher import BrokerUnavailable
from financial.pkg.messaging.rabbit import BrokerConfigError
from financial.pkg.observability.dependencies import DATABASE, came_back, went_away
from financial.pkg.observability.metrics import Metrics, instrument_clients, setup_metrics
from financial.pkg.observability.tracing import Telemetry, setup_tracing
from financial.pkg.scheduler.clock import Clock
from financial.pkg.scheduler.loop.scheduler import SchedulerConfig
from financial.pkg.scheduler.registry import JobRegistry
from financial.pkg.scheduler.store import RunStore
from financial.pkg.scheduler.store.postgres import PostgresRunStore

log = structlog.get_logger("financial.worker")

# Waits between attempts to reach PostgreSQL at start, so a worker started before its database
# (a reboot, a rollout) comes up on its own instead of restart-looping.
CONNECT_BACKOFF_S = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0)


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


def closing(
    client: str, close: Callable[..., Awaitable[object]], *args: Any
) -> Callable[[], Awaitable[None]]:
    """A cleanup for the exit stack that logs `client_closed`, so the order is visible."""

    async def run() -> None:
        await close(*args)
        log.info("client_closed", client=client)

    return run


def otlp_targets(settings: Settings) -> otel.OtlpTargets:
    """Where traces and metrics go over OTLP, from the standard `OTEL_*` variables."""
    return otel.otlp_targets(
        traces=otel.parse_exporters(settings.otel_traces_exporter, otel.TRACES_EXPORTERS),
        metrics=metric_exporter_names(settings),
        endpoint=settings.otel_exporter_otlp_endpoint,
        traces_endpoint=settings.otel_exporter_otlp_traces_endpoint,
        metrics_endpoint=settings.otel_exporter_otlp_metrics_endpoint,
    )


def metric_exporter_names(settings: Settings) -> tuple[str, ...]:
    return otel.parse_exporters(settings.otel_metrics_exporter, otel.METRICS_EXPORTERS)


def open_telemetry(settings: Settings, stack: AsyncExitStack) -> Telemetry:
    """Tracing first on the stack, so its flush is the last thing shutdown does."""
    telemetry = setup_tracing(
        settings.otel_service_name,
        endpoint=None,
        traces_url=otlp_targets(settings).traces_url,
        resource_attributes=otel.parse_resource_attributes(settings.otel_resource_attributes),
        disabled=settings.otel_sdk_disabled,
        instance_id=settings.worker_id,
    )
    stack.push_async_callback(closing("telemetry", telemetry.shutdown))
    return telemetry


async def open_database(
    settings: Settings,
    clients: Clients,
    stack: AsyncExitStack,
    *,
    retry_until: asyncio.Event | None,
    embedded_warning: bool = True,
) -> bool:
    """Start the embedded PostgreSQL when none is configured, open the pool, migrate.

    The embedded database's start is a warning (not for production), or with
    `embedded_warning=False` an INFO line: a command-line command beside `make run` (the worker
    warned of it already; see `open_command_pool`).

    With `retry_until`, an unreachable database is retried with back-off until it answers or
    the event is set (then False); without it, DatabaseUnavailable propagates. A DSN the driver
    or the server rejects (an unknown option, an invalid value) is no outage: ConfigError, with
    the variable to fix (exit 78).
    """
    dsn = settings.database_dsn()
    if dsn is None:
        embedded = await start_embedded_async(settings.worker_data_dir / "postgres")
        stack.push_async_callback(closing("embedded_postgres", asyncio.to_thread, embedded.stop))
        (log.warning if embedded_warning else log.info)(
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
        except DatabaseConfigError as exc:
            raise ConfigError(_database_problem(settings, exc)) from None
        except DatabaseUnavailable as exc:
            if retry_until is None:
                raise
            went_away(DATABASE, exc)
            delay_s = CONNECT_BACKOFF_S[min(attempt, len(CONNECT_BACKOFF_S) - 1)]
            attempt += 1
            log.warning("database_unavailable", error=str(exc), retry_in_s=delay_s)
            try:
                await asyncio.wait_for(retry_until.wait(), delay_s)
            except TimeoutError:
                continue
            return False
    came_back(DATABASE)
    clients.db.attach(pool, dsn)
    stack.push_async_callback(closing("postgres", clients.db.close))
    if settings.worker_auto_migrate:
        applied = await migrate(pool)
        log.info("migrations_applied", applied=applied)
    return True


async def open_command_pool(settings: Settings, stack: AsyncExitStack) -> asyncpg.Pool:
    """The database of a command-line command (`jobs set`, `jobs trigger`, `jobs history`, ...):
    migrated, not retried (the command says why and exits), closed with `stack`."""
    clients = Clients(db=build_clients(settings).db, publisher=None)
    await open_database(settings, clients, stack, retry_until=None, embedded_warning=False)
    return clients.db.pool


def _database_problem(settings: Settings, exc: DatabaseConfigError) -> str:
    expected = (
        "a postgresql:// URI whose options asyncpg and PostgreSQL accept (sslmode one of "
        "disable, allow, prefer, require, verify-ca, verify-full; query parameters that are "
        "PostgreSQL settings with valid values)"
    )
    if settings.database_url is not None:
        return connection_problem("DATABASE_URL", exc.dsn, expected, str(exc))
    if settings.db_host is not None:
        variables = "DB_HOST/DB_PORT/DB_USER/DB_PASSWORD/DB_NAME"
        return connection_problem(variables, exc.dsn, expected, str(exc))
    return connection_problem("WORKER_DATA_DIR (the embedded PostgreSQL)", None, expected, str(exc))


async def open_broker(settings: Settings, clients: Clients, stack: AsyncExitStack) -> None:
    """Connect the publisher when RabbitMQ is configured; a broker that is down is not fatal,
    a URL it cannot be reached with is (ConfigError naming RABBITMQ_URL, exit 78)."""
    if clients.publisher is None:
        log.warning(
            "outbox_relay_disabled",
            reason="RABBITMQ_URL is not set: events are kept in the outbox until it is",
        )
        return
    stack.push_async_callback(closing("rabbitmq", clients.publisher.close))
    try:
        await clients.publisher.connect()
    except BrokerConfigError as exc:
        expected = (
            "an amqp:// or amqps:// URL amqp://user:password@host:port/vhost whose query "
            "parameters aio-pika accepts (heartbeat, frame_max, ... as numbers; TLS files "
            "that exist)"
        )
        raise ConfigError(connection_problem("RABBITMQ_URL", exc.url, expected, str(exc))) from None
    except BrokerUnavailable as exc:
        # Events wait in the outbox; the relay connects on its next pass once the broker is back.
        log.warning("broker_unavailable", error=str(exc))


async def open_store(settings: Settings, clients: Clients, stack: AsyncExitStack) -> RunStore:
    """The PostgreSQL run store on the worker's pool, shared by every replica on the database."""
    # A replica that dies leaves its runs to be marked `abandoned` about one lease later; one cut
    # off from the database stops its runs a little before its lease passes.
    lease = timedelta(seconds=settings.worker_run_lease_seconds)
    store = PostgresRunStore(clients.db.pool, lease=lease)
    stack.push_async_callback(store.close)
    return store


async def open_health(
    settings: Settings,
    registry: JobRegistry,
    clients: Clients,
    stack: AsyncExitStack,
    *,
    signals: Signals,
    clock: Clock,
    heartbeat: timedelta,
) -> tuple[Metrics, WorkerHealth]:
    """Metrics, client instrumentation and the health server, before the database is reached.

    Started early so `/livez` answers and `/readyz` says why while PostgreSQL is awaited; closed
    after the database, so the drain stays observable. HealthServerError when the port is taken.
    """
    exporters = otel.metrics_exporters(
        metric_exporter_names(settings),
        settings.otel_exporter_otlp_endpoint,
        settings.otel_exporter_otlp_metrics_endpoint,
    )
    metrics = setup_metrics(
        settings.otel_service_name,
        instance_id=settings.worker_id,
        otlp_url=None if settings.otel_sdk_disabled else otlp_targets(settings).metrics_url,
        export_interval_ms=settings.otel_metric_export_interval,
        resource_attributes=otel.parse_resource_attributes(settings.otel_resource_attributes),
    )
    stack.push_async_callback(closing("metrics", metrics.shutdown))
    metrics.known_jobs(spec.name for spec in registry)
    metrics.loop_lag.start()
    stack.callback(instrument_clients())
    health = WorkerHealth(registry, clock=clock, database_ping=database_ping(clients.db))
    signals.subscribe(health.mark_draining, lambda: None)  # not ready from the first signal
    address = settings.health_address
    if address is not None:
        server = await start_health_server(
            *address,
            health,
            # `/metrics` only while `prometheus` is among OTEL_METRICS_EXPORTER (the default).
            metrics=metrics if "prometheus" in exporters else None,
            stall_after=3 * heartbeat,
            title=f"{settings.service_name_worker} · {settings.worker_id}",
        )
        # `start_health_server` logs `health_server_started` itself.
        stack.push_async_callback(closing("health_server", server.close))
    return metrics, health


# How often a worker that does not migrate by itself looks for the migrations to be applied.
MIGRATION_POLL_S = 5.0


async def wait_for_migrations(clients: Clients, stop: asyncio.Event) -> bool:
    """With WORKER_AUTO_MIGRATE=false: wait until `financial migrate` (a Kubernetes Job, say)
    has applied every migration this version ships; False when told to stop first."""
    expected = {migration.version for migration in load_migrations()}
    while True:
        async with clients.db.pool.acquire() as conn:
            applied = await applied_migrations(conn)
        pending = sorted(expected - set(applied))
        if not pending:
            return True
        log.warning("migrations_pending", pending=pending, hint="run `financial migrate`")
        try:
            await asyncio.wait_for(stop.wait(), MIGRATION_POLL_S)
        except TimeoutError:
            continue
        return False
