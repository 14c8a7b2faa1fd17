"""The worker's thread pool: stuck accounting, replacement bound, release, no join at close."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from datetime import timedelta

import pytest
import structlog
from structlog.testing import capture_logs

from financial.pkg.jobs import JobContext, RunStatus, Trigger, cron_job
from financial.pkg.scheduler.clock import FakeClock
from financial.pkg.scheduler.executors import Executors, LoopExecutor, ThreadExecutor
from financial.pkg.scheduler.loop.scheduler import Scheduler, SchedulerConfig
from financial.pkg.scheduler.registry import JobRegistry
from financial.pkg.scheduler.store.memory import MemoryRunStore
from tests.unit.scheduling import T0

WAIT_S = 5.0


def ctx(job: str = "blocking", run_id: str = "run-1") -> JobContext:
    return JobContext(
        job_name=job,
        run_id=run_id,
        scheduled_at=T0,
        attempt=1,
        deadline=T0 + timedelta(seconds=1),
        trigger=Trigger.SCHEDULE,
        log=structlog.get_logger().bind(),
    )


def blocked(release: threading.Event, started: threading.Event) -> Callable[[JobContext], str]:
    def call(_ctx: JobContext) -> str:
        started.set()
        release.wait(WAIT_S)
        return "done"

    return call


async def until(condition: Callable[[], bool]) -> None:
    """Wait for something a pool thread does (not a tick), polled on a thread: bounded."""

    def poll() -> bool:
        deadline = time.monotonic() + WAIT_S
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.005)
        return condition()

    assert await asyncio.to_thread(poll)


async def abandon_running(pool: ThreadExecutor, run_id: str, release: threading.Event) -> None:
    """Start a call on a pool thread, then cancel its await while the thread still runs it."""
    started = threading.Event()
    task = asyncio.ensure_future(pool.submit(blocked(release, started), ctx(run_id=run_id)))
    await asyncio.to_thread(started.wait, WAIT_S)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_call_returns_its_result_and_raises_its_exception() -> None:
    pool = ThreadExecutor(2)

    def fails(_ctx: JobContext) -> None:
        raise LookupError("no rate")

    assert await pool.submit(lambda _ctx: threading.current_thread().daemon, ctx()) is True
    with pytest.raises(LookupError, match="no rate"):
        await pool.submit(fails, ctx())
    assert pool.stuck_threads == 0


async def test_the_runs_contextvars_go_to_the_thread() -> None:
    pool = ThreadExecutor(1)
    structlog.contextvars.bind_contextvars(run_id="run-42")
    try:
        seen = await pool.submit(lambda _c: structlog.contextvars.get_contextvars(), ctx())
    finally:
        structlog.contextvars.clear_contextvars()
    assert seen["run_id"] == "run-42"


async def test_an_abandoned_thread_is_stuck_replaced_and_released() -> None:
    pool = ThreadExecutor(1)
    release = threading.Event()
    with capture_logs() as logs:
        await abandon_running(pool, "run-stuck", release)
        assert pool.stuck_threads == 1
        assert pool.stuck_by_job() == {"blocking": 1}
        # The stuck thread no longer counts: a second call gets a thread of its own.
        assert await pool.submit(lambda _c: "ran", ctx(run_id="run-2")) == "ran"
        assert pool.alive_threads == 2
        release.set()
        await until(lambda: pool.stuck_threads == 0)
    events = [e for e in logs if e["event"].startswith("executor_thread")]
    assert [(e["event"], e["run_id"]) for e in events] == [
        ("executor_thread_stuck", "run-stuck"),
        ("executor_thread_released", "run-stuck"),
    ]
    assert events[0]["job"] == "blocking"
    assert pool.stuck_by_job() == {}


async def test_replacements_stop_at_the_bound_and_the_work_waits_for_a_thread() -> None:
    pool = ThreadExecutor(1, max_threads=2)
    release = threading.Event()
    ran = threading.Event()
    with capture_logs() as logs:
        await abandon_running(pool, "run-a", release)
        await abandon_running(pool, "run-b", release)
        assert (pool.stuck_threads, pool.alive_threads) == (2, 2)
        waiting = asyncio.ensure_future(pool.submit(lambda _c: ran.set(), ctx(run_id="run-c")))
        await asyncio.sleep(0.05)
        assert not waiting.done() and pool.alive_threads == 2
        # A stuck thread that comes back takes the waiting work.
        release.set()
        await asyncio.wait_for(waiting, WAIT_S)
    assert ran.is_set()
    assert [e["event"] for e in logs].count("executor_threads_exhausted") == 1
    await until(lambda: pool.stuck_threads == 0)


async def test_work_cancelled_while_queued_never_runs() -> None:
    pool = ThreadExecutor(1, max_threads=1)
    release = threading.Event()
    ran = threading.Event()
    await abandon_running(pool, "run-a", release)
    queued = asyncio.ensure_future(pool.submit(lambda _c: ran.set(), ctx(run_id="run-q")))
    await asyncio.sleep(0.01)
    queued.cancel()
    with pytest.raises(asyncio.CancelledError):
        await queued
    assert pool.stuck_threads == 1  # the queued one never had a thread: not stuck
    release.set()
    await until(lambda: pool.stuck_threads == 0)
    assert await pool.submit(lambda _c: "after", ctx()) == "after"
    assert not ran.is_set()


async def test_close_returns_at_once_with_a_stuck_thread_and_refuses_new_work() -> None:
    pool = ThreadExecutor(1)
    release = threading.Event()
    await abandon_running(pool, "run-a", release)
    pool.close()  # does not wait for the stuck thread
    assert pool.stuck_threads == 1
    with pytest.raises(RuntimeError, match="closed"):
        await pool.submit(lambda _c: None, ctx())
    stuck = [t for t in threading.enumerate() if t.name.startswith("job-")]
    assert stuck and all(t.daemon for t in stuck)
    release.set()
    await until(lambda: pool.stuck_threads == 0)


def test_a_pool_needs_a_thread() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        ThreadExecutor(0)


async def test_a_blocking_job_runs_through_the_pool_and_an_async_one_on_the_loop() -> None:
    executors = Executors(threads=ThreadExecutor(1))

    class Blocking:
        name = "blocking"
        schedule = "* * * * *"

        def run(self, ctx: JobContext) -> None:
            ctx.log.info("ran", thread=threading.current_thread().name)

    class Async:
        name = "async"
        schedule = "* * * * *"

        async def run(self, ctx: JobContext) -> None:
            return None

    blocking, async_job = Blocking(), Async()
    assert executors.for_job(blocking, None) is executors.threads
    assert isinstance(executors.for_job(async_job, None), LoopExecutor)
    # The loop executor hands back the job's own coroutine function: nothing wraps it.
    assert executors.loop.caller(async_job) == async_job.run
    with capture_logs() as logs:
        await executors.threads.caller(blocking)(ctx())
    assert logs[0]["thread"].startswith("job-")
    with pytest.raises(TypeError, match="blocking"):
        executors.loop.caller(blocking)
    await executors.close()


async def test_the_scheduler_runs_blocking_jobs_on_its_pool_and_a_stuck_one_times_out(
    clock: FakeClock,
) -> None:
    release, started = threading.Event(), threading.Event()

    @cron_job("0 0 1 1 *", name="hangs", timeout=5)
    def hangs(ctx: JobContext) -> None:
        started.set()
        release.wait(WAIT_S)

    pool = ThreadExecutor(1)
    registry = JobRegistry()
    registry.add(hangs)
    scheduler = Scheduler(
        registry,
        store=MemoryRunStore(clock),
        clock=clock,
        config=SchedulerConfig(worker_id="w"),
        executors=Executors(threads=pool),
    )
    run = asyncio.ensure_future(scheduler.run_now(registry.get("hangs")))
    await asyncio.to_thread(started.wait, WAIT_S)
    await clock.advance(timedelta(seconds=6))  # past the run's 5 s timeout
    record = await asyncio.wait_for(run, WAIT_S)
    await scheduler.close()
    assert record is not None and record.status is RunStatus.TIMED_OUT
    assert pool.stuck_by_job() == {"hangs": 1}
    release.set()
    await until(lambda: pool.stuck_threads == 0)
