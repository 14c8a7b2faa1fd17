"""Running the worker: build everything from settings, run the scheduler, drain on a signal.

Clients register their own cleanup on one `AsyncExitStack`, so they close in the reverse order
of their start: scheduler, then RabbitMQ, then PostgreSQL, then telemetry.
"""

from __future__ import annotations

import asyncio
import signal
from contextlib import AsyncExitStack
from datetime import timedelta

import structlog

from financial.cmd.wiring import build_registry
from financial.configs import Settings
from financial.pkg.jobs.model import RunStatus
from financial.pkg.observability.systemd import SystemdNotifier
from financial.pkg.scheduler.clock import SystemClock
from financial.pkg.scheduler.registry import JobRegistry, JobSpec
from financial.pkg.scheduler.scheduler import Scheduler, SchedulerConfig
from financial.pkg.scheduler.store import MemoryRunStore, RunStore

log = structlog.get_logger("financial.worker")


def registry_for(settings: Settings) -> JobRegistry:
    """Every job this worker knows, validated against settings (ConfigError when invalid)."""
    return build_registry(settings, [])


def scheduler_config(settings: Settings) -> SchedulerConfig:
    return SchedulerConfig(
        worker_id=settings.worker_id,
        max_concurrent_jobs=settings.worker_max_concurrent_jobs,
        shutdown_timeout=timedelta(seconds=settings.worker_shutdown_timeout_seconds),
    )


async def open_store(settings: Settings, stack: AsyncExitStack) -> RunStore:
    store = MemoryRunStore()
    stack.push_async_callback(store.close)
    return store


async def serve(settings: Settings) -> int:
    """Run until SIGTERM/SIGINT; 0 when every run finished by itself, 1 when any was interrupted."""
    registry = registry_for(settings)
    notifier = SystemdNotifier()
    async with AsyncExitStack() as stack:
        store = await open_store(settings, stack)
        scheduler = Scheduler(
            registry, store=store, clock=SystemClock(), config=scheduler_config(settings)
        )
        _install_signal_handlers(scheduler)
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


def _install_signal_handlers(scheduler: Scheduler) -> None:
    loop = asyncio.get_running_loop()
    received: list[signal.Signals] = []

    def on_signal(sig: signal.Signals) -> None:
        received.append(sig)
        if len(received) == 1:
            log.info("shutdown_requested", signal=sig.name)
            scheduler.stop()
        else:
            log.warning("shutdown_forced", signal=sig.name)
            scheduler.abort()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)


async def run_once(settings: Settings, spec: JobSpec) -> int:
    """`financial jobs run NAME`: one run now through the whole chain; 0 on success, else 1."""
    async with AsyncExitStack() as stack:
        store = await open_store(settings, stack)
        scheduler = Scheduler(
            [spec], store=store, clock=SystemClock(), config=scheduler_config(settings)
        )
        _install_signal_handlers(scheduler)
        record = await scheduler.run_now(spec)
    status = record.status if record is not None else RunStatus.SKIPPED
    print(
        f"{spec.name}: {status.value}"
        + (f" ({record.error.message})" if record and record.error else "")
    )
    return 0 if status is RunStatus.SUCCEEDED else 1
