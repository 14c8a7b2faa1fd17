"""One attempt of a claimed, admitted run that holds a slot: the job called through its chain.

The hooks are entered (tracing, metrics, logging), the run is marked `running`, the job is called
through its wrappers (recovery, timeout) on its executor; once it has returned, its slot is given
back and the runs due with it are let start first (`starts_first.py`); then the hooks exit (its
log line, span and metrics). A cancelled attempt is recorded `interrupted` here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import structlog
from structlog.typing import FilteringBoundLogger

from financial.pkg.jobs.context import JobContext
from financial.pkg.jobs.model import RunStatus, Trigger
from financial.pkg.observability.trace_ids import current_trace_id
from financial.pkg.scheduler.clock import Clock
from financial.pkg.scheduler.execution.chain import (
    Around,
    Hooks,
    Outcome,
    Step,
    call_chain,
    compose,
    invoke,
    with_logging,
)
from financial.pkg.scheduler.execution.records import RunNotStarted, RunRecords
from financial.pkg.scheduler.execution.run import Run, RunState
from financial.pkg.scheduler.execution.slots import OrderedSlots
from financial.pkg.scheduler.execution.starts_first import StartsFirst
from financial.pkg.scheduler.executors import Executors
from financial.pkg.scheduler.registry import JobSpec
from financial.pkg.scheduler.store import RunError, RunRecord

log = structlog.get_logger("financial.scheduler")


class Attempts:
    """Runs attempts of jobs; counts those interrupted."""

    def __init__(
        self,
        *,
        clock: Clock,
        records: RunRecords,
        slots: OrderedSlots,
        starts: StartsFirst,
        executors: Executors,
        hooks: Sequence[Around],
        stopping: asyncio.Event,
        halted: Callable[[], bool],
    ) -> None:
        self._clock = clock
        self._records = records
        self._slots = slots
        self._starts = starts
        self._executors = executors
        # Outermost first: the hooks given (tracing, metrics), then logging, which so sees the
        # span's ids; then the call's own wrappers (recovery, timeout) around the job.
        self._hooks = Hooks([*hooks, with_logging(clock)])
        self._call_chain = call_chain(clock)
        self._stopping = stopping
        self._halted = halted
        self._bound_log: FilteringBoundLogger | None = None
        self._steps: dict[str, Step] = {}
        self.interrupted = 0

    async def run(
        self, run: Run, spec: JobSpec, record: RunRecord, trigger: Trigger
    ) -> tuple[Outcome, JobContext]:
        """Run the chain once; a cancelled attempt is recorded here (`interrupted`)."""
        started = self._clock.now()
        ctx = JobContext(
            job_name=spec.name,
            run_id=record.run_id,
            scheduled_at=record.scheduled_at,
            attempt=record.attempt,
            deadline=started + spec.timeout,
            trigger=trigger,
            log=self._run_log(),
            stopping=self._stopping,
            args=run.args,
        )
        try:
            try:
                outcome = await self._start_and_call(run, spec, ctx)
            except RunNotStarted as exc:
                outcome = Outcome(exc.status, exc)
        except asyncio.CancelledError:
            if run.lost_reason is not None:
                # The row is final already or will be swept `abandoned`: write nothing.
                log.warning("job_lease_lost", reason=run.lost_reason)
                raise
            reason = run.cancel_reason or "cancelled"
            self.interrupted += 1
            log.warning("job_interrupted", reason=reason)
            cause = RunError("Interrupted", reason)
            await self._records.finish(run, record, RunStatus.INTERRUPTED, cause)
            raise
        return outcome, ctx

    async def _start_and_call(self, run: Run, spec: JobSpec, ctx: JobContext) -> Outcome:
        """Enter the hooks, mark the run started, call the job; once it has returned, give its
        slot back and let the runs due with it start first; then exit the hooks (its log line,
        span and metrics). RunNotStarted when the run must not go on."""
        hooks = self._hooks
        tokens = hooks.enter(ctx)
        try:
            await self._records.mark_started(run, current_trace_id(), self._halted)
            run.state = RunState.RUNNING
            run.settle_ticket()
            outcome = await self._step(spec)(ctx)
            self._records.ending(run)
            self.release_slot(run)
            await self._starts.wait()
        except BaseException as exc:
            hooks.exit(ctx, tokens, None, exc)
            raise
        hooks.exit(ctx, tokens, outcome)
        return outcome

    def _run_log(self) -> FilteringBoundLogger:
        # One concrete logger for every run: the module's lazy proxy would build a new bound
        # logger on every call. Bound at the first run, after the CLI configured logging.
        if self._bound_log is None:
            self._bound_log = structlog.get_logger("financial.scheduler").bind()
        return self._bound_log

    def _step(self, spec: JobSpec) -> Step:
        step = self._steps.get(spec.name)
        if step is None:
            executor = self._executors.for_job(spec.job, spec.options.executor)
            step = self._steps[spec.name] = compose(invoke(spec.job, executor), self._call_chain)
        return step

    def release_slot(self, run: Run) -> None:
        """Give the run's slot back, if it holds one."""
        if run.holds_slot:
            run.holds_slot = False
            self._slots.release()
