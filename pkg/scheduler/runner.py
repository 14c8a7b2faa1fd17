"""What happens to one tick: claim, overlap, concurrency cap, attempts with retries, record.

Every claimed run ends with exactly one final status in the store, whichever way it ends:
`succeeded`, `failed`, `timed_out`, `skipped` (overlap), `missed` (could not start in time) or
`interrupted` (cancelled by shutdown or by a `replace` tick).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import structlog

from financial.pkg.jobs.context import JobContext
from financial.pkg.jobs.job import call_hook
from financial.pkg.jobs.model import Overlap, RunStatus, Trigger
from financial.pkg.scheduler.chain import Outcome, Step, Wrapper, compose, invoke
from financial.pkg.scheduler.clock import Clock
from financial.pkg.scheduler.registry import JobSpec
from financial.pkg.scheduler.slots import OrderedSlots
from financial.pkg.scheduler.store import RunError, RunRecord, RunStore

log = structlog.get_logger("financial.scheduler")


@dataclass(frozen=True, slots=True)
class FinalFailure:
    """A run that failed after its last attempt: what the dead-letter event carries."""

    job: str
    run_id: str
    scheduled_at: datetime
    attempts: int
    status: RunStatus
    error: RunError


FailureHandler = Callable[[FinalFailure], Awaitable[None]]


@dataclass(slots=True)
class _JobState:
    active: set[asyncio.Task[object]] = field(default_factory=set)
    queued: asyncio.Task[object] | None = None
    queued_until: datetime | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)


class TickRunner:
    """Runs ticks of registered jobs against a run store, a clock and the slot pool."""

    def __init__(
        self,
        *,
        store: RunStore,
        clock: Clock,
        slots: OrderedSlots,
        worker_id: str,
        chain: Sequence[Wrapper],
        stopping: asyncio.Event,
        on_final_failure: FailureHandler | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._slots = slots
        self._worker_id = worker_id
        self._chain = chain
        self._stopping = stopping
        self._on_final_failure = on_final_failure
        self._states: dict[str, _JobState] = {}
        self._steps: dict[str, Step] = {}
        self._cancel_reasons: dict[asyncio.Task[object], str] = {}
        self.interrupted = 0

    # -- entry points -------------------------------------------------------------------------

    async def run_tick(
        self, spec: JobSpec, scheduled_at: datetime, trigger: Trigger, next_tick: datetime | None
    ) -> RunRecord | None:
        """Run one tick to its final status; None when another worker claimed it."""
        if spec.options.jitter:
            # Spread the start, not the tick: scheduled_at stays the tick the run belongs to.
            spread = spec.options.jitter * random.random()
            await self._clock.sleep_until(scheduled_at + spread, self._stopping)
        record = await self._store.claim(
            spec.name,
            scheduled_at,
            attempt=1,
            trigger=trigger,
            worker_id=self._worker_id,
            at=self._clock.now(),
        )
        if record is None:
            log.debug("tick_claimed_elsewhere", job=spec.name, scheduled_at=scheduled_at)
            return None
        structlog.contextvars.bind_contextvars(
            job=spec.name, run_id=record.run_id, scheduled_at=scheduled_at.isoformat(), attempt=1
        )
        start_by = _start_by(spec, scheduled_at, next_tick)
        state = self._states.setdefault(spec.name, _JobState())
        refusal = await self._apply_overlap(spec, state, start_by)
        if refusal is not None:
            status, reason = refusal
            return await self._finish_unstarted(record, status, reason)
        task = _current_task()
        state.active.add(task)
        try:
            return await self._attempts(spec, record, trigger, start_by, next_tick)
        finally:
            state.active.discard(task)
            state.changed.set()
            self._cancel_reasons.pop(task, None)

    async def record_missed(self, spec: JobSpec, scheduled_at: datetime, reason: str) -> None:
        """Claim a tick that can no longer start and record it `missed`."""
        record = await self._store.claim(
            spec.name,
            scheduled_at,
            attempt=1,
            trigger=Trigger.SCHEDULE,
            worker_id=self._worker_id,
            at=self._clock.now(),
        )
        if record is not None:
            await self._finish_unstarted(record, RunStatus.MISSED, reason)

    def cancel(self, task: asyncio.Task[object], reason: str) -> None:
        """Cancel a run; it is recorded `interrupted` with `reason`."""
        self._cancel_reasons.setdefault(task, reason)
        task.cancel()

    def wake_waiters(self) -> None:
        """Wake every tick waiting on overlap, so it sees the worker is stopping."""
        for state in self._states.values():
            state.changed.set()

    # -- stages -------------------------------------------------------------------------------

    async def _apply_overlap(
        self, spec: JobSpec, state: _JobState, start_by: datetime
    ) -> tuple[RunStatus, str] | None:
        """None when the tick may go on, else the status and reason to record it with."""
        policy = spec.options.overlap
        if not state.active or policy is Overlap.ALLOW:
            return None
        if policy is Overlap.SKIP:
            return RunStatus.SKIPPED, "overlap: the previous run is still running"
        if policy is Overlap.REPLACE:
            for running in list(state.active):
                self.cancel(running, "overlap: replaced by a newer tick")
        elif state.queued_until is not None and state.queued_until > self._clock.now():
            return RunStatus.SKIPPED, "overlap: another tick is already queued"
        task = _current_task()
        if policy is Overlap.QUEUE:
            # A waiting tick whose start deadline is now hands its place to this one.
            state.queued, state.queued_until = task, start_by
        try:
            while state.active:
                if self._stopping.is_set():
                    return RunStatus.MISSED, "worker stopping before the run could start"
                if self._clock.now() >= start_by:
                    return (
                        RunStatus.MISSED,
                        "overlap: the previous run outlasted the start deadline",
                    )
                state.changed.clear()
                await self._clock.sleep_until(start_by, state.changed)
        finally:
            if state.queued is task:
                state.queued, state.queued_until = None, None
        return None

    async def _attempts(
        self,
        spec: JobSpec,
        record: RunRecord,
        trigger: Trigger,
        start_by: datetime,
        next_tick: datetime | None,
    ) -> RunRecord:
        attempt = 1
        while True:
            if not await self._slots.acquire(record.scheduled_at, start_by):
                reason = (
                    "worker stopping before the run could start"
                    if self._stopping.is_set()
                    else f"no free slot before the start deadline {start_by.isoformat()}"
                )
                return await self._finish_unstarted(record, RunStatus.MISSED, reason)
            try:
                record, outcome, ctx = await self._attempt(spec, record, trigger, attempt)
            finally:
                self._slots.release()
            if outcome.status is RunStatus.SUCCEEDED:
                await self._hook(spec, "on_success", ctx)
                return record
            retry_at = self._retry_at(spec, attempt, next_tick)
            if retry_at is None:
                break
            ctx.log.warning(
                "retry_scheduled", retry_at=retry_at.isoformat(), next_attempt=attempt + 1
            )
            await self._clock.sleep_until(retry_at, self._stopping)
            if self._stopping.is_set():
                ctx.log.warning("retry_cancelled", reason="worker stopping")
                break
            claimed = await self._store.claim(
                spec.name,
                record.scheduled_at,
                attempt=attempt + 1,
                trigger=Trigger.RETRY,
                worker_id=self._worker_id,
                at=self._clock.now(),
            )
            if claimed is None:
                return record
            attempt, record, trigger = attempt + 1, claimed, Trigger.RETRY
            start_by = next_tick or retry_at + spec.start_deadline
        await self._final_failure(spec, record, outcome, ctx, attempt)
        return record

    def _retry_at(self, spec: JobSpec, attempt: int, next_tick: datetime | None) -> datetime | None:
        if self._stopping.is_set():
            return None
        delay = spec.options.retry.delay_before(attempt)
        if delay is None:
            return None
        retry_at = self._clock.now() + delay
        if next_tick is not None and retry_at >= next_tick:
            log.warning("retry_dropped", reason="would start at or after the next tick")
            return None
        return retry_at

    async def _attempt(
        self, spec: JobSpec, record: RunRecord, trigger: Trigger, attempt: int
    ) -> tuple[RunRecord, Outcome, JobContext]:
        started = self._clock.now()
        structlog.contextvars.bind_contextvars(run_id=record.run_id, attempt=attempt)
        ctx = JobContext(
            job_name=spec.name,
            run_id=record.run_id,
            scheduled_at=record.scheduled_at,
            attempt=attempt,
            deadline=started + spec.timeout,
            trigger=trigger,
            log=log,
            stopping=self._stopping,
        )
        try:
            outcome = await self._step(spec)(ctx)
        except asyncio.CancelledError:
            reason = self._cancel_reasons.get(_current_task(), "cancelled")
            self.interrupted += 1
            log.warning("job_interrupted", reason=reason)
            await self._store.finish(
                record.run_id,
                RunStatus.INTERRUPTED,
                at=self._clock.now(),
                error=RunError("Interrupted", reason),
            )
            raise
        error = RunError.of(outcome.error) if outcome.error is not None else None
        record = await self._store.finish(
            record.run_id, outcome.status, at=self._clock.now(), error=error
        )
        return record, outcome, ctx

    def _step(self, spec: JobSpec) -> Step:
        step = self._steps.get(spec.name)
        if step is None:
            step = self._steps[spec.name] = compose(invoke(spec.job), self._chain)
        return step

    async def _finish_unstarted(
        self, record: RunRecord, status: RunStatus, reason: str
    ) -> RunRecord:
        log.warning(
            f"job_{status.value}",
            job=record.job,
            run_id=record.run_id,
            scheduled_at=record.scheduled_at.isoformat(),
            reason=reason,
        )
        return await self._store.finish(
            record.run_id, status, at=self._clock.now(), error=RunError(status.value, reason)
        )

    async def _final_failure(
        self, spec: JobSpec, record: RunRecord, outcome: Outcome, ctx: JobContext, attempts: int
    ) -> None:
        error = outcome.error or RuntimeError(record.status.value)
        await self._hook(spec, "on_error", ctx, error)
        if self._on_final_failure is None:
            return
        failure = FinalFailure(
            job=spec.name,
            run_id=record.run_id,
            scheduled_at=record.scheduled_at,
            attempts=attempts,
            status=record.status,
            error=RunError.of(error),
        )
        try:
            await self._on_final_failure(failure)
        except Exception:
            log.exception("final_failure_not_recorded", job=spec.name)

    async def _hook(self, spec: JobSpec, hook: str, *args: object) -> None:
        try:
            await call_hook(spec.job, hook, *args)
        except Exception:
            log.exception("job_hook_failed", hook=hook)


def _start_by(spec: JobSpec, scheduled_at: datetime, next_tick: datetime | None) -> datetime:
    """The start deadline: `start_deadline` after the tick, and never past the next tick."""
    start_by = scheduled_at + spec.start_deadline
    return min(start_by, next_tick) if next_tick is not None else start_by


def _current_task() -> asyncio.Task[object]:
    task = asyncio.current_task()
    if task is None:  # pragma: no cover - run_tick always runs in a task
        raise RuntimeError("a tick must run inside an asyncio task")
    return task
