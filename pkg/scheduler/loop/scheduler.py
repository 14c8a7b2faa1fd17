"""The scheduler loop: sleep until the earliest fire time, dispatch due ticks, drain on stop.

Around the ticks: catch-up at start (`catchup.py`), the lease keeper of this worker's runs
(`leases.py`), and housekeeping on its own timer (`maintenance.py`): abandoned runs, their
recovery, ticks left unrecorded while the store was away, and pruning of old history.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import structlog

from financial.pkg.jobs.model import Trigger
from financial.pkg.scheduler.clock import Clock
from financial.pkg.scheduler.execution.aftermath import FailureHandler
from financial.pkg.scheduler.execution.chain import Around
from financial.pkg.scheduler.execution.run import Due
from financial.pkg.scheduler.execution.runner import TickRunner
from financial.pkg.scheduler.execution.slots import OrderedSlots
from financial.pkg.scheduler.executors import Executors
from financial.pkg.scheduler.loop.catchup import plan_catchup
from financial.pkg.scheduler.loop.maintenance import Maintenance
from financial.pkg.scheduler.loop.respec import apply_spec
from financial.pkg.scheduler.registry import JobSpec
from financial.pkg.scheduler.schedules.schedule import Schedule
from financial.pkg.scheduler.store import RunRecord, RunStore, describe

log = structlog.get_logger("financial.scheduler")

# Ticks of one job found missed in one pass (after a suspend, say) recorded one by one; past
# this, the rest are counted in a log line rather than written row by row.
MISSED_RECORD_LIMIT = 100
# At exit, how long the ends the store could not take are tried once more before they are left
# to the leases (the runs then end `abandoned`, as for a worker that died).
LAST_WRITE_TIMEOUT = timedelta(seconds=2)


@dataclass(frozen=True, slots=True)
class SchedulerConfig:
    """Worker-wide scheduling settings."""

    worker_id: str
    max_concurrent_jobs: int = 10
    shutdown_timeout: timedelta = timedelta(seconds=30)
    # When set, the loop also wakes this often to beat (liveness probe, systemd watchdog), so a
    # loop blocked by a job that hogs the event loop shows as a stale heartbeat.
    heartbeat_interval: timedelta | None = None
    # How often a replica sweeps a shared store for runs whose lease expired.
    sweep_interval: timedelta = timedelta(seconds=5)
    # Final runs older than this are pruned (None keeps everything), every `prune_interval`.
    history_retention: timedelta | None = None
    prune_interval: timedelta = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class DrainResult:
    """How the drain ended: `interrupted` runs had to be cancelled at the shutdown deadline."""

    interrupted: int

    @property
    def clean(self) -> bool:
        return self.interrupted == 0


class Scheduler:
    """Runs registered jobs on their schedules until stopped.

    The loop sleeps until the earliest next fire time (no polling), re-reading the wall clock
    at least every 30 s through the clock, and never fires early. Fire times come from the
    schedule, never from "now + interval", so a slow job does not shift the timeline.
    `stop()` only sets an event; `drain()` then waits for running jobs.
    """

    def __init__(
        self,
        jobs: Iterable[JobSpec],
        *,
        store: RunStore,
        clock: Clock,
        config: SchedulerConfig,
        hooks: Sequence[Around] = (),
        on_final_failure: FailureHandler | None = None,
        on_heartbeat: Callable[[datetime], None] | None = None,
        on_unstarted: Callable[[RunRecord], None] | None = None,
        executors: Executors | None = None,
    ) -> None:
        # The enabled jobs by name; `apply` changes it, and housekeeping reads it.
        self._specs = {spec.name: spec for spec in jobs if spec.options.enabled}
        self._clock = clock
        self._config = config
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self.stopping = asyncio.Event()
        self.slots = OrderedSlots(config.max_concurrent_jobs, clock)
        self._store = store
        self.runner = TickRunner(
            store=store,
            clock=clock,
            slots=self.slots,
            worker_id=config.worker_id,
            stopping=self.stopping,
            hooks=hooks,
            on_final_failure=on_final_failure,
            on_unstarted=on_unstarted,
            executors=executors,
            spawn=self._spawn,
        )
        self.maintenance = Maintenance(
            store=store,
            runner=self.runner,
            clock=clock,
            specs=self._specs,
            recover=self._recover,
            sweep_interval=config.sweep_interval,
            history_retention=config.history_retention,
            prune_interval=config.prune_interval,
        )
        self._keeper: asyncio.Task[None] | None = None
        self._housekeeping: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[object]] = set()
        # Set when the last running task ends or when a second signal asks to abort the drain.
        self._drain_wake = asyncio.Event()
        self._abort = asyncio.Event()
        self._heap: list[tuple[datetime, int, JobSpec]] = []
        self._seq = itertools.count()
        self.last_heartbeat: datetime | None = None
        self._on_heartbeat = on_heartbeat

    @property
    def jobs(self) -> list[JobSpec]:
        return list(self._specs.values())

    def apply(self, spec: JobSpec) -> datetime | None:
        """Run the job as `spec` says from now on (see `respec.py`); its next fire time."""
        at = apply_spec(self._heap, self._specs, spec, self._clock.now(), self._seq)
        self._wake.set()
        return at

    @property
    def running(self) -> int:
        return len(self._tasks)

    def next_fire_times(self) -> dict[str, datetime]:
        """The next tick of each job, as the loop has it."""
        return {spec.name: at for at, _, spec in self._heap}

    async def run(self) -> None:
        """Dispatch ticks until `stop()`; returns without waiting for running jobs."""
        now = self._clock.now()
        self._start_keeper()
        self._heap.clear()  # what `apply` queued before the start is queued again here
        for spec in self._specs.values():
            self._push(spec, spec.schedule.next_after(now))
        if any(spec.options.catchup_window for spec in self._specs.values()):
            self._spawn(self._catch_up(now))
        log.info("scheduler_started", jobs=len(self._specs), worker_id=self._config.worker_id)
        beat = self._config.heartbeat_interval
        while not self._stop.is_set():
            now = self._clock.now()
            self.last_heartbeat = now
            if self._on_heartbeat is not None:
                self._on_heartbeat(now)
            self.slots.expire(now)
            self._dispatch_due(now)
            self._maintain(now)
            deadline = self._heap[0][0] if self._heap else now + timedelta(days=1)
            if beat is not None:
                deadline = min(deadline, now + beat)
            housekeeping = self.maintenance.next_due()
            if housekeeping is not None and not self._housekeeping_running:
                deadline = min(deadline, housekeeping)
            self._wake.clear()
            await self._clock.sleep_until(deadline, self._wake)
        log.info("scheduler_stopped", running=len(self._tasks))

    def stop(self) -> None:
        """Stop claiming ticks. Safe to call from a signal handler, more than once."""
        self._stop.set()
        self.runner.halt()
        self._wake.set()

    def abort(self) -> None:
        """Cancel every run now (a second signal during the drain)."""
        self.stop()
        self._abort.set()
        self._drain_wake.set()

    async def drain(self, grace: timedelta | None = None) -> DrainResult:
        """Set `ctx.stopping`, wait for running jobs up to `grace`, cancel the rest."""
        self.stop()
        self.stopping.set()
        self.slots.close()
        self.runner.wake_waiters()
        grace = self._config.shutdown_timeout if grace is None else grace
        if self._tasks:
            log.info("drain_started", running=len(self._tasks), timeout_s=grace.total_seconds())
            deadline = self._clock.now() + grace
            while self._tasks and not self._abort.is_set() and self._clock.now() < deadline:
                self._drain_wake.clear()
                await self._clock.sleep_until(deadline, self._drain_wake)
        remaining = list(self._tasks)
        self.runner.cancel_all("worker shutdown deadline passed")
        for task in remaining:
            if not task.cancelling():
                task.cancel()
        if remaining:
            await asyncio.gather(*remaining, return_exceptions=True)
        await self._write_last_ends()
        await self.close()
        result = DrainResult(interrupted=self.runner.interrupted)
        log.info("drain_finished", interrupted=result.interrupted)
        return result

    async def _write_last_ends(self) -> None:
        if not self.runner.backlog.unwritten:
            return
        try:
            async with self._clock.timeout_at(self._clock.now() + LAST_WRITE_TIMEOUT):
                await self.runner.backlog.flush_unwritten()
        except TimeoutError:
            pass
        if self.runner.backlog.unwritten:
            log.error("run_ends_lost", count=len(self.runner.backlog.unwritten), status="abandoned")

    async def close(self) -> None:
        """Stop the lease keeper and housekeeping (the drain does it; `run_now` callers too)."""
        background = [task for task in (self._housekeeping, self._keeper) if task is not None]
        self._keeper = self._housekeeping = None
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)

    async def run_now(self, spec: JobSpec) -> RunRecord | None:
        """Run a job once now, through the whole chain (trigger `manual`)."""
        self._start_keeper()
        task = self._spawn(self.runner.run_tick(spec, self._clock.now(), Trigger.MANUAL, None))
        return await task  # type: ignore[return-value]

    async def run_requested(
        self, spec: JobSpec, at: datetime, trigger: Trigger, attempt: int, args: Mapping[str, Any]
    ) -> RunRecord | None:
        """Run a tick an operator asked for (`requests.py`) through the whole chain, as attempt
        `attempt` of `at`; it may retry until the job's next tick from now."""
        self._start_keeper()
        now = self._clock.now()
        next_tick, start_by = spec.schedule.next_after(now), now + spec.start_deadline
        return await self.runner.run_tick(
            spec, at, trigger, next_tick, attempt=attempt, start_by=start_by, args=args
        )

    def spawn(self, coro: Coroutine[Any, Any, object]) -> asyncio.Task[object]:
        """Carry `coro` in a task the drain waits for (and cancels at its deadline)."""
        return self._spawn(coro)

    def _start_keeper(self) -> None:
        if self._keeper is None:
            self._keeper = asyncio.ensure_future(self.runner.leases.run())

    @property
    def _housekeeping_running(self) -> bool:
        return self._housekeeping is not None and not self._housekeeping.done()

    def _maintain(self, now: datetime) -> None:
        due = self.maintenance.next_due()
        if due is not None and due <= now and not self._housekeeping_running:
            self._housekeeping = asyncio.ensure_future(self._housekeeping_pass())

    async def _housekeeping_pass(self) -> None:
        await self.maintenance.run_pass()
        self._wake.set()  # the loop recomputes its deadline with the next pass's

    def _recover(self, spec: JobSpec, record: RunRecord) -> None:
        """Run an abandoned tick of a `recover=True` job again (next attempt, trigger retry)."""
        if self._stop.is_set():
            return
        now = self._clock.now()
        next_tick = spec.schedule.next_after(now)
        log.info(
            "run_recovering",
            job=spec.name,
            scheduled_at=record.scheduled_at.isoformat(),
            attempt=record.attempt + 1,
        )
        self._spawn(
            self.runner.run_tick(
                spec,
                record.scheduled_at,
                Trigger.RETRY,
                next_tick,
                attempt=record.attempt + 1,
                start_by=now + spec.start_deadline,
            )
        )

    async def _catch_up(self, now: datetime) -> None:
        """Run the ticks missed while no replica ran (see `catchup.py`)."""
        for spec in list(self._specs.values()):
            try:
                plan = await plan_catchup(self._store, spec, now, MISSED_RECORD_LIMIT)
            except Exception as exc:
                log.warning("catchup_failed", job=spec.name, error=describe(exc))
                continue
            if self._stop.is_set():
                return
            if plan.missed or plan.uncounted:
                log.warning(
                    "ticks_missed",
                    job=spec.name,
                    count=len(plan.missed) + plan.uncounted,
                    recorded=len(plan.missed),
                )
            run: Callable[[], Awaitable[object]] | None = None
            if plan.run is not None:
                next_tick = spec.schedule.next_after(now)
                log.info("catchup_started", job=spec.name, scheduled_at=plan.run.isoformat())
                run = partial(
                    self.runner.run_tick,
                    spec,
                    plan.run,
                    Trigger.CATCHUP,
                    next_tick,
                    start_by=min(now + spec.start_deadline, next_tick),
                )
            self._spawn_after_missed(spec, plan.missed, "tick passed while no worker ran", run)

    def _dispatch_due(self, now: datetime) -> None:
        """Hand the runner the ticks due now: those that can start as one batch, claimed
        together, and the rest (after missed ticks, past their deadline, with jitter) one by one."""
        # Jobs on one schedule due at one tick share its successor: computed once per pass.
        following: dict[tuple[Schedule, datetime], datetime] = {}
        batch: list[Due] = []
        while self._heap and self._heap[0][0] <= now:
            at, _, spec = heapq.heappop(self._heap)
            next_tick = following.get((spec.schedule, at))
            if next_tick is None:
                next_tick = following[spec.schedule, at] = spec.schedule.next_after(at)
            missed: list[datetime] = []
            count = 0
            while next_tick <= now and now > spec.start_by(at, next_tick):
                # Late by more than the start deadline (the loop was blocked, the host slept).
                count += 1
                if count <= MISSED_RECORD_LIMIT:
                    missed.append(at)
                at, next_tick = next_tick, spec.schedule.next_after(next_tick)
            if count > MISSED_RECORD_LIMIT:
                log.warning(
                    "ticks_missed", job=spec.name, count=count, recorded=MISSED_RECORD_LIMIT
                )
            self._push(spec, next_tick)
            start_by = spec.start_by(at, next_tick)
            run: Callable[[], Awaitable[object]]
            if now > start_by:
                run = partial(self.runner.record_missed, spec, at, "tick passed its start deadline")
            elif missed or spec.options.jitter:
                ticket = self.runner.starts.ticket()
                run = partial(
                    self.runner.run_tick, spec, at, Trigger.SCHEDULE, next_tick, ticket=ticket
                )
            else:
                batch.append(Due(spec, at, next_tick, start_by, self.runner.starts.ticket()))
                continue
            if missed:
                self._spawn_after_missed(spec, missed, "tick passed while not running", run)
            else:
                self._spawn(run())
        if batch:
            self._spawn(self.runner.run_batch(batch))

    def _spawn_after_missed(
        self,
        spec: JobSpec,
        ticks: Sequence[datetime],
        reason: str,
        then: Callable[[], Awaitable[object]] | None,
    ) -> None:
        """Record `ticks` missed, then (in the same task) go on with the job's current tick, so
        that the live rows of the missed ones never hold it back as an overlap."""

        async def in_order() -> object:
            await asyncio.gather(*(self.runner.record_missed(spec, t, reason) for t in ticks))
            return None if then is None else await then()

        if ticks or then is not None:
            self._spawn(in_order())

    def _push(self, spec: JobSpec, at: datetime) -> None:
        heapq.heappush(self._heap, (at, next(self._seq), spec))

    def _spawn(self, coro: object) -> asyncio.Task[object]:
        task: asyncio.Task[object] = asyncio.ensure_future(coro)  # type: ignore[call-overload]
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[object]) -> None:
        self._tasks.discard(task)
        if not self._tasks:
            self._drain_wake.set()
        if not task.cancelled() and task.exception() is not None:
            log.error("tick_task_crashed", exc_info=task.exception())
