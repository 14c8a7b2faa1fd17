"""The worker's late-job checker (dead-man alerts): built from settings, started, closed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import replace
from datetime import timedelta

import structlog

from financial.cmd.wiring import Clients
from financial.configs import Settings
from financial.pkg.health import JobExtras, JobExtrasSource
from financial.pkg.observability.metrics import Metrics
from financial.pkg.scheduler.alerts.postgres import PostgresAlertStore
from financial.pkg.scheduler.clock import Clock
from financial.pkg.scheduler.loop.late import LateChecker
from financial.pkg.scheduler.registry import JobSpec
from financial.pkg.scheduler.store import RunStore

log = structlog.get_logger("financial.worker")


def open_late_checker(
    settings: Settings,
    specs: list[JobSpec],
    *,
    clients: Clients,
    store: RunStore,
    metrics: Metrics | None,
    clock: Clock,
    stack: AsyncExitStack,
) -> LateChecker:
    """Start the checker on the worker's pool; it closes (and lets its lease go) before the
    pool does, being pushed on the stack after it. Every replica runs one: one at a time holds
    the lease and judges, every one reads the late jobs for its gauge and its status page."""
    checker = LateChecker(
        specs,
        alerts=PostgresAlertStore(clients.db.pool),
        runs=store,
        clock=clock,
        worker_id=settings.worker_id,
        interval=timedelta(seconds=settings.worker_alert_check_interval_seconds),
    )
    if metrics is not None:
        metrics.watch_late_jobs(checker.late_flags)
    checker.start()

    async def close() -> None:
        await checker.close()
        log.info("late_checker_stopped", worker_id=settings.worker_id)

    stack.push_async_callback(close)
    if checker.watched:
        log.info("late_checker_started", jobs=checker.watched)
    return checker


def with_late(checker: LateChecker, source: JobExtrasSource | None = None) -> JobExtrasSource:
    """The status page's extras: `source`'s (runtime settings and their audit, when given) with
    each late job's `late` and `late_since` from the checker (as of its last pass: no query).

    `WorkerHealth.watch_extras(with_late(checker, runtime_extras))` shows both."""

    async def extras(names: Sequence[str], *, with_audit: bool) -> Mapping[str, JobExtras]:
        found = dict(await source(names, with_audit=with_audit)) if source is not None else {}
        late = checker.late_jobs()
        for name in names:
            since = late.get(name)
            if since is not None:
                found[name] = replace(found.get(name) or JobExtras(), late=True, late_since=since)
        return found

    return extras
