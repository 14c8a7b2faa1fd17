"""The loop's housekeeping: abandoned runs, their recovery, ticks left unrecorded, old history.

- Sweep (a store shared by replicas only, every `sweep_interval`): runs whose lease expired are
  marked `abandoned`, in batches, by whichever replica gets there first. For a job declared
  idempotent (`recover=True`), the replica that marked the run runs its tick again: the next
  attempt number with trigger `retry`, claimed like any attempt, so only one replica gets it. A
  tick is recovered at most `MAX_RECOVERIES` times, so a job that kills its worker cannot take
  every replica down in turn. Other jobs stay at most once: the tick is not run again.
- Ends of runs the store could not take when the runs ended are written once it answers, before
  the sweep (which would otherwise find their leases lapsed); ticks it could not take when they
  were due are recorded `missed`.
- History older than `history_retention` is pruned (final runs only, in batches), at start and
  then every `prune_interval`; in the same pass, so are the run requests (`jobs trigger`,
  `jobs backfill`) done for longer than that, once a request store is attached
  (`attach_requests`). Pending and claimed requests are never pruned.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta

import structlog

from financial.pkg.scheduler.clock import Clock
from financial.pkg.scheduler.execution.runner import TickRunner
from financial.pkg.scheduler.registry import JobSpec
from financial.pkg.scheduler.store import RunRecord, RunStore, describe
from financial.pkg.scheduler.store.requests import RequestStore

log = structlog.get_logger("financial.scheduler")

SWEEP_BATCH = 100
SWEEP_BATCHES_PER_PASS = 10
PRUNE_BATCH = 1000
PRUNE_BATCHES_PER_PASS = 100
MAX_RECOVERIES = 3

Recover = Callable[[JobSpec, RunRecord], None]


class Maintenance:
    """Decides when housekeeping is due and does one pass of it."""

    def __init__(
        self,
        *,
        store: RunStore,
        runner: TickRunner,
        clock: Clock,
        specs: Mapping[str, JobSpec],
        recover: Recover,
        sweep_interval: timedelta,
        history_retention: timedelta | None,
        prune_interval: timedelta,
        requests: RequestStore | None = None,
    ) -> None:
        self._store = store
        self._runner = runner
        self._clock = clock
        self._specs = specs
        self._recover = recover
        self._sweep_interval = sweep_interval
        self._retention = history_retention
        self._prune_interval = prune_interval
        self._requests = requests
        now = clock.now()
        self._next_sweep = now + sweep_interval
        self._next_prune = now

    def attach_requests(self, requests: RequestStore) -> None:
        """Prune `requests`' done requests with the history, from the next prune pass on (the
        worker builds the request store after the scheduler)."""
        self._requests = requests

    def next_due(self) -> datetime | None:
        """When the next pass is due; None when there is nothing to look after (no timer)."""
        instants = []
        if self._store.shared or self._runner.backlog.unrecorded or self._runner.backlog.unwritten:
            instants.append(self._next_sweep)
        if self._retention is not None:
            instants.append(self._next_prune)
        return min(instants) if instants else None

    async def run_pass(self) -> None:
        """One pass; a store failure is logged and left to the next pass."""
        now = self._clock.now()
        if now >= self._next_sweep:
            self._next_sweep = now + self._sweep_interval
            if self._runner.backlog.unwritten:
                await self._guard("ends", self._runner.backlog.flush_unwritten())
            if self._store.shared:
                await self._guard("sweep", self._sweep())
            if self._runner.backlog.unrecorded:
                await self._guard("flush", self._flush())
        if self._retention is not None and now >= self._next_prune:
            self._next_prune = now + self._prune_interval
            await self._guard("prune", self._prune(self._retention))
            if self._requests is not None:
                cutoff = now - self._retention
                await self._guard("prune_requests", self._prune_requests(self._requests, cutoff))

    async def _guard(self, step: str, work: Awaitable[object]) -> None:
        try:
            await work
        except Exception as exc:
            log.warning("maintenance_failed", step=step, error=describe(exc))

    async def _sweep(self) -> None:
        for _ in range(SWEEP_BATCHES_PER_PASS):
            abandoned = await self._store.sweep_abandoned(limit=SWEEP_BATCH)
            for record in abandoned:
                self._abandoned(record)
            if len(abandoned) < SWEEP_BATCH:
                return

    def _abandoned(self, record: RunRecord) -> None:
        self._runner.notify_unstarted(record)
        log.warning(
            "run_abandoned",
            job=record.job,
            run_id=record.run_id,
            scheduled_at=record.scheduled_at.isoformat(),
            attempt=record.attempt,
            abandoned_by=record.worker_id,
        )
        spec = self._specs.get(record.job)
        if spec is None or not spec.options.recover:
            return
        if record.attempt >= 1 + spec.options.retry.max_retries + MAX_RECOVERIES:
            log.warning(
                "run_not_recovered",
                job=record.job,
                scheduled_at=record.scheduled_at.isoformat(),
                reason=f"abandoned {MAX_RECOVERIES} times over",
            )
            return
        self._recover(spec, record)

    async def _flush(self) -> None:
        done = await self._runner.backlog.flush_unrecorded()
        if done:
            log.info("ticks_recorded_missed", count=done, left=len(self._runner.backlog.unrecorded))

    async def _prune(self, retention: timedelta) -> None:
        total = 0
        for _ in range(PRUNE_BATCHES_PER_PASS):
            deleted = await self._store.prune(retention, limit=PRUNE_BATCH)
            total += deleted
            if deleted < PRUNE_BATCH:
                break
        if total:
            log.info("history_pruned", deleted=total, retention_days=retention / timedelta(days=1))

    async def _prune_requests(self, requests: RequestStore, before: datetime) -> None:
        total = 0
        for _ in range(PRUNE_BATCHES_PER_PASS):
            deleted = await requests.prune(before, limit=PRUNE_BATCH)
            total += deleted
            if deleted < PRUNE_BATCH:
                break
        if total:
            log.info("run_requests_pruned", deleted=total, before=before.isoformat())
