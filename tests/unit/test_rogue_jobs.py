"""Jobs that misbehave: whatever a job raises or however long it holds the loop, the run gets
one truthful final status and the worker goes on."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from structlog.testing import capture_logs

from financial.pkg.jobs import ExpectedFailure, JobContext
from financial.pkg.jobs.model import RunStatus
from financial.pkg.scheduler.clock import FakeClock
from financial.pkg.scheduler.execution.aftermath import FinalFailure
from tests.unit.scheduling import Harness, job_of

S = RunStatus


class Rogue(BaseException):
    """A BaseException subclass of a job's own, outside Exception."""


@pytest.mark.parametrize(
    "raised",
    [SystemExit(3), KeyboardInterrupt(), GeneratorExit(), Rogue("rogue"), asyncio.CancelledError()],
    ids=["SystemExit", "KeyboardInterrupt", "GeneratorExit", "Rogue", "CancelledError"],
)
async def test_any_base_exception_from_a_job_is_its_failure_and_the_worker_goes_on(
    clock: FakeClock, raised: BaseException
) -> None:
    calls: list[int] = []

    async def body(ctx: JobContext) -> None:
        calls.append(ctx.attempt)
        if len(calls) == 1:
            raise raised

    h = Harness(job_of("*/10 * * * * *", body), clock=clock)
    with capture_logs() as logs:
        async with h:
            await h.advance_to(25)
            assert not h.scheduler.stopping.is_set()
    assert await h.statuses() == [(10, 1, S.FAILED), (20, 1, S.SUCCEEDED)]
    failed = (await h.history())[0]
    assert failed.error is not None and failed.error.type == type(raised).__name__
    [line] = [e for e in logs if e["event"] == "job_failed"]
    assert line["error_type"] == type(raised).__name__ and line["exc_info"] is not None


async def test_a_hook_raising_system_exit_is_logged_and_the_worker_goes_on(
    clock: FakeClock,
) -> None:
    class Job:
        name = "hooked"
        schedule = "*/10 * * * * *"
        runs = 0

        async def run(self, ctx: JobContext) -> None:
            Job.runs += 1
            raise RuntimeError("boom")

        async def on_error(self, ctx: JobContext, exc: BaseException) -> None:
            raise SystemExit(4)

    h = Harness(Job(), clock=clock)
    with capture_logs() as logs:
        async with h:
            await h.advance_to(25)
    assert Job.runs == 2
    assert [e["hook"] for e in logs if e["event"] == "job_hook_failed"] == ["on_error"] * 2
    assert [status for _, _, status in await h.statuses("hooked")] == [S.FAILED, S.FAILED]


async def test_a_job_that_holds_the_loop_past_its_deadline_is_timed_out(
    clock: FakeClock,
) -> None:
    async def body(ctx: JobContext) -> None:
        clock.jump(timedelta(seconds=25))  # time.sleep(25) in an async job: no await, no timer

    h = Harness(job_of("0 * * * * *", body, timeout=2), clock=clock)
    async with h:
        await h.advance_to(65)
    [run] = await h.history()
    assert run.status is S.TIMED_OUT
    assert run.error is not None and "deadline" in run.error.message


async def test_a_job_that_returns_within_its_deadline_after_holding_the_loop_succeeds(
    clock: FakeClock,
) -> None:
    async def body(ctx: JobContext) -> None:
        clock.jump(timedelta(seconds=1))

    h = Harness(job_of("0 * * * * *", body, timeout=2), clock=clock)
    async with h:
        await h.advance_to(65)
    assert [status for _, _, status in await h.statuses()] == [S.SUCCEEDED]


class FrozenOutbox(Harness):
    """A worker whose dead-letter events go to a database that never answers."""

    async def _on_failure(self, failure: FinalFailure) -> None:
        await asyncio.Event().wait()


async def test_a_dead_letter_that_cannot_be_written_does_not_hold_the_run(
    clock: FakeClock,
) -> None:
    async def body(ctx: JobContext) -> None:
        raise RuntimeError("boom")

    h = FrozenOutbox(job_of("0 * * * * *", body), clock=clock)
    with capture_logs() as logs:
        async with h:
            await h.advance_to(75)
            assert h.scheduler.running == 0
    assert [status for _, _, status in await h.statuses()] == [S.FAILED]
    [line] = [e for e in logs if e["event"] == "final_failure_not_recorded"]
    assert line["error"] == "TimeoutError"


async def test_an_expected_failure_is_logged_without_a_traceback(clock: FakeClock) -> None:
    async def body(ctx: JobContext) -> None:
        raise ExpectedFailure("the broker is away; 3 events wait")

    h = Harness(job_of("0 * * * * *", body), clock=clock)
    with capture_logs() as logs:
        async with h:
            await h.advance_to(65)
    [line] = [e for e in logs if e["event"] == "job_failed"]
    assert line["error_type"] == "ExpectedFailure" and line["exc_info"] is None
    [run] = await h.history()
    assert run.status is S.FAILED
    assert run.error is not None and run.error.message == "the broker is away; 3 events wait"
