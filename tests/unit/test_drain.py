"""Shutdown on a fake clock: stop claiming, ctx.stopping, drain, interrupt at the deadline."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from financial.pkg.jobs import JobContext
from financial.pkg.jobs.model import RunStatus
from financial.pkg.scheduler.clock import FakeClock
from tests.unit.scheduling import Harness, Recorder, job_of, secs


async def test_drain_waits_for_a_job_that_honours_stopping(clock: FakeClock) -> None:
    seen_stopping: list[bool] = []

    async def batches(ctx: JobContext) -> None:
        for _ in range(100):
            if ctx.stopping.is_set():
                seen_stopping.append(True)
                return
            await clock.sleep(timedelta(seconds=1))

    h = Harness(job_of("*/10 * * * * *", batches), clock=clock)
    async with h:
        await h.advance_to(12)
        h.scheduler.stop()
        drain = asyncio.create_task(h.scheduler.drain(timedelta(seconds=30)))
        await clock.advance(2)
        result = await drain
    assert result.clean
    assert seen_stopping == [True]
    assert await h.statuses() == [(10, 1, RunStatus.SUCCEEDED)]


async def test_drain_interrupts_what_outlasts_the_shutdown_timeout(clock: FakeClock) -> None:
    body = Recorder(clock, duration=timedelta(hours=1))
    h = Harness(job_of("*/10 * * * * *", body), clock=clock)
    async with h:
        await h.advance_to(10)
        drain = asyncio.create_task(h.scheduler.drain(timedelta(seconds=30)))
        await clock.advance(29)
        assert not drain.done()
        await clock.advance(1)
        result = await drain
    assert result.interrupted == 1
    record = (await h.history())[0]
    assert record.status is RunStatus.INTERRUPTED
    assert record.error is not None and "shutdown" in record.error.message


async def test_no_tick_is_claimed_after_stop(clock: FakeClock) -> None:
    body = Recorder(clock)
    h = Harness(job_of("*/10 * * * * *", body), clock=clock)
    async with h:
        await h.advance_to(10)
        h.scheduler.stop()
        await h.advance_to(60)
    assert body.starts == secs(10)
    assert len(await h.history()) == 1


async def test_abort_cancels_at_once_during_the_drain(clock: FakeClock) -> None:
    body = Recorder(clock, duration=timedelta(hours=1))
    h = Harness(job_of("*/10 * * * * *", body), clock=clock)
    async with h:
        await h.advance_to(10)
        drain = asyncio.create_task(h.scheduler.drain(timedelta(seconds=30)))
        await clock.settle()
        h.scheduler.abort()
        result = await drain
        assert clock.now() == secs(10)[0]
    assert result.interrupted == 1


async def test_runs_waiting_for_a_slot_are_recorded_missed_at_shutdown(clock: FakeClock) -> None:
    body = Recorder(clock, duration=timedelta(seconds=5))
    other = Recorder(clock)
    # Both due at 10 s with one slot: "a_long" (dispatched first) holds it, "b_short" waits.
    jobs = [
        job_of("*/10 * * * * *", body, name="a_long"),
        job_of("*/10 * * * * *", other, name="b_short"),
    ]
    h = Harness(*jobs, clock=clock, max_concurrent=1)
    async with h:
        await h.advance_to(10)
        drain = asyncio.create_task(h.scheduler.drain(timedelta(seconds=30)))
        await clock.advance(5)
        result = await drain
    assert result.clean
    statuses = {r.job: r.status for r in await h.history()}
    assert statuses == {"a_long": RunStatus.SUCCEEDED, "b_short": RunStatus.MISSED}
    assert other.starts == []
