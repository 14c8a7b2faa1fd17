"""Overlap policies inside this process, and the wait of a `queue` tick across replicas.

The claim already applied the policy against the run store (DESIGN section 5, step 2): a `skip`
tick that found a live run anywhere came back `skipped`, and a `replace` tick ended every other
live run in the store. What is left here is what the store cannot do: cancel this process's own
running runs for `replace`, let a `queue` tick wait (for a run of this process, woken at once
when it ends; for a run of another replica, by asking the store again every `poll`), and refuse
a tick while a run of this process is between attempts (its retry back-off) under `skip`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog

from financial.pkg.jobs.model import Overlap, RunStatus
from financial.pkg.scheduler.clock import Clock
from financial.pkg.scheduler.execution.records import STOPPING_REASON
from financial.pkg.scheduler.execution.run import Run
from financial.pkg.scheduler.registry import JobSpec
from financial.pkg.scheduler.store import OVERLAP_REPLACED_REASON, RunRecord, RunStore

log = structlog.get_logger("financial.scheduler")

Refusal = tuple[RunStatus, str]
Canceller = Callable[[Run, str], None]


@dataclass(slots=True)
class JobState:
    """The runs of one job in this process."""

    active: set[Run] = field(default_factory=set)
    queued: Run | None = None
    queued_until: datetime | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)


class OverlapGate:
    """Decides, per tick, whether it may go on while another run of its job is live."""

    def __init__(
        self,
        *,
        store: RunStore,
        clock: Clock,
        stopping: asyncio.Event,
        cancel: Canceller,
        poll: timedelta,
    ) -> None:
        self._store = store
        self._clock = clock
        self._stopping = stopping
        self._cancel = cancel
        self._poll = poll
        self.states: dict[str, JobState] = {}

    def state(self, job: str) -> JobState:
        state = self.states.get(job)
        if state is None:
            state = self.states[job] = JobState()
        return state

    def wake_all(self) -> None:
        for state in self.states.values():
            state.changed.set()

    def clear(self, spec: JobSpec) -> bool:
        """Whether the tick may go on without `admit`: nothing to wait for or refuse (the common
        case, answered without a coroutine)."""
        policy = spec.options.overlap
        if policy is Overlap.ALLOW:
            return True
        if self.state(spec.name).active:
            return False
        return policy is not Overlap.QUEUE or not self._store.shared

    async def admit(
        self, spec: JobSpec, run: Run, record: RunRecord, start_by: datetime
    ) -> Refusal | None:
        """None when the tick may go on, else the status and reason to record it with."""
        policy = spec.options.overlap
        state = self.state(spec.name)
        if policy is Overlap.ALLOW:
            return None
        if state.active:
            if policy is Overlap.SKIP:
                return RunStatus.SKIPPED, "overlap: the previous run is still running"
            if policy is Overlap.REPLACE:
                for running in list(state.active):
                    self._cancel(running, OVERLAP_REPLACED_REASON)
            elif state.queued_until is not None and state.queued_until > self._clock.now():
                return RunStatus.SKIPPED, "overlap: another tick is already queued"
        elif not await self._busy_elsewhere(spec, record):
            return None
        if policy is Overlap.QUEUE:
            # A waiting tick whose start deadline is now hands its place to this one.
            state.queued, state.queued_until = run, start_by
        try:
            while state.active or await self._busy_elsewhere(spec, record):
                if self._stopping.is_set():
                    return RunStatus.MISSED, STOPPING_REASON
                now = self._clock.now()
                if now >= start_by:
                    return (
                        RunStatus.MISSED,
                        "overlap: the previous run outlasted the start deadline",
                    )
                state.changed.clear()
                # A run of this process wakes us when it ends; one elsewhere is asked after.
                wake_at = start_by if state.active else min(start_by, now + self._poll)
                await self._clock.sleep_until(wake_at, state.changed)
        finally:
            if state.queued is run:
                state.queued, state.queued_until = None, None
        return None

    async def _busy_elsewhere(self, spec: JobSpec, record: RunRecord) -> bool:
        """A `queue` tick asks the store whether another replica is running the job."""
        if spec.options.overlap is not Overlap.QUEUE or not self._store.shared:
            return False
        try:
            live = await self._store.live_runs(spec.name)
        except Exception as exc:
            log.warning("overlap_check_failed", job=spec.name, error=f"{type(exc).__name__}")
            return False
        # Runs of this process are waited for through `active`, not by asking the store. A tick
        # waits for a run that started, or for an older tick still waiting: two waiting ticks of
        # two replicas never wait for each other.
        return any(
            r.worker_id != record.worker_id
            and (r.status is RunStatus.RUNNING or r.scheduled_at < record.scheduled_at)
            for r in live
        )
