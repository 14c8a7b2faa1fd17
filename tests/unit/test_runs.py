"""What happens to a tick: overlap policies, the concurrency cap, timeouts, recovery, retries."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from structlog.testing import capture_logs

from financial.pkg.jobs import JobContext, Overlap, RetryPolicy
from financial.pkg.jobs.model import RunStatus, Trigger
from financial.pkg.scheduler.clock import FakeClock
from tests.unit.scheduling import Harness, Recorder, job_of, secs

S = RunStatus


async def test_overlap_skip_records_the_tick_skipped(clock: FakeClock) -> None:
    body = Recorder(clock, duration=timedelta(seconds=25))
    h = Harness(job_of("*/10 * * * * *", body), clock=clock)
    async with h:
        await h.advance_to(40)
    assert body.starts == secs(10, 40)
    assert await h.statuses() == [
        (10, 1, S.SUCCEEDED),
        (20, 1, S.SKIPPED),
        (30, 1, S.SKIPPED),
        (40, 1, S.INTERRUPTED),  # still running when the harness shut down with no grace
    ]
    assert [(r.scheduled_at, r.status) for r in h.unstarted] == [
        (secs(20)[0], S.SKIPPED),
        (secs(30)[0], S.SKIPPED),
    ]
    skipped = (await h.history())[1]
    assert skipped.error is not None and "still running" in skipped.error.message


async def test_overlap_queue_waits_for_the_running_one(clock: FakeClock) -> None:
    body = Recorder(clock, duration=timedelta(seconds=12))
    h = Harness(job_of("*/10 * * * * *", body, overlap="queue"), clock=clock)
    async with h:
        await h.advance_to(45)
    # Each tick waits for the one before it and starts the moment it ends.
    assert body.starts == secs(10, 22, 34)
    assert [s for s in await h.statuses() if s[0] <= 20] == [
        (10, 1, S.SUCCEEDED),
        (20, 1, S.SUCCEEDED),
    ]


async def test_overlap_queue_hands_the_wait_to_the_newest_tick(clock: FakeClock) -> None:
    body = Recorder(clock, duration=timedelta(seconds=25))
    h = Harness(job_of("*/10 * * * * *", body, overlap="queue", start_deadline=30), clock=clock)
    async with h:
        await h.advance_to(36)
    # 20 s waits for the 10 s run (ends at 35 s), but a wait never passes the next tick: at
    # 30 s it is recorded missed and the 30 s tick waits instead, starting at 35 s.
    assert body.starts == secs(10, 35)
    assert await h.statuses() == [
        (10, 1, S.SUCCEEDED),
        (20, 1, S.MISSED),
        (30, 1, S.INTERRUPTED),  # still running when the harness shut down with no grace
    ]


async def test_overlap_queue_gives_up_at_the_start_deadline(clock: FakeClock) -> None:
    body = Recorder(clock, duration=timedelta(seconds=25))
    h = Harness(job_of("*/10 * * * * *", body, overlap="queue", start_deadline=5), clock=clock)
    async with h:
        await h.advance_to(26)
    assert (20, 1, S.MISSED) in await h.statuses()


async def test_overlap_allow_runs_in_parallel(clock: FakeClock) -> None:
    body = Recorder(clock, duration=timedelta(seconds=25))
    h = Harness(job_of("*/10 * * * * *", body, overlap=Overlap.ALLOW), clock=clock)
    async with h:
        await h.advance_to(40)
    assert body.starts == secs(10, 20, 30, 40)
    assert body.finished == 1


async def test_overlap_replace_cancels_the_running_one(clock: FakeClock) -> None:
    body = Recorder(clock, duration=timedelta(seconds=25))
    h = Harness(job_of("*/10 * * * * *", body, overlap="replace"), clock=clock)
    async with h:
        await h.advance_to(30)
        assert body.starts == secs(10, 20, 30)
        assert h.scheduler.running == 1
    runs = await h.history()
    assert [r.status for r in runs[:2]] == [S.INTERRUPTED, S.INTERRUPTED]
    assert runs[0].error is not None and "replaced" in runs[0].error.message


async def test_cap_starts_waiting_runs_in_order_of_scheduled_time(clock: FakeClock) -> None:
    order: list[str] = []

    def body_for(name: str) -> Recorder:
        rec = Recorder(clock, duration=timedelta(seconds=3))
        original = rec.__call__

        async def run(ctx: JobContext) -> None:
            order.append(name)
            await original(ctx)

        rec.__call__ = run  # type: ignore[method-assign]
        return rec

    jobs = [
        job_of("*/10 * * * * *", body_for("a").__call__, name="a"),
        job_of("*/10 * * * * *", body_for("b").__call__, name="b"),
        job_of("*/5 * * * * *", body_for("c").__call__, name="c"),
    ]
    h = Harness(*jobs, clock=clock, max_concurrent=1)
    async with h:
        await h.advance_to(9)
        assert order == ["c"]
        await h.advance_to(19)
    # At 10 s three ticks are due with one slot: they go one after another, none dropped;
    # the 15 s tick of c waits behind the two 10 s ticks since it was scheduled later.
    assert order[:4] == ["c", "a", "b", "c"] or order[:4] == ["c", "b", "a", "c"]
    assert h.scheduler.slots.in_use <= 1


async def test_cap_records_missed_when_no_slot_frees_before_the_start_deadline(
    clock: FakeClock,
) -> None:
    long = Recorder(clock, duration=timedelta(seconds=100))
    short = Recorder(clock)
    jobs = [
        job_of("0 * * * * *", long, name="long"),
        job_of("5 * * * * *", short, name="short", start_deadline=10),
    ]
    h = Harness(*jobs, clock=clock, max_concurrent=1)
    async with h:
        await h.advance_to(80)
    # At 65 s the long run (from 60 s) holds the only slot past short's deadline of 75 s.
    assert short.starts == secs(5)
    assert await h.statuses("short") == [(5, 1, S.SUCCEEDED), (65, 1, S.MISSED)]
    assert [(r.job, r.status) for r in h.unstarted] == [("short", S.MISSED)]
    missed = (await h.history("short"))[1]
    assert missed.error is not None and "start deadline" in missed.error.message


async def test_timeout_cancels_the_run_and_records_timed_out(clock: FakeClock) -> None:
    cancelled: list[bool] = []

    async def hang(ctx: JobContext) -> None:
        try:
            await clock.sleep(timedelta(hours=1))
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    h = Harness(job_of("*/30 * * * * *", hang, timeout=5), clock=clock)
    with capture_logs() as logs:
        async with h:
            await h.advance_to(36)
    assert await h.statuses() == [(30, 1, S.TIMED_OUT)]
    assert cancelled == [True]
    assert any(e["event"] == "job_timed_out" for e in logs)


async def test_any_exception_is_recovered_logged_and_the_scheduler_goes_on(
    clock: FakeClock,
) -> None:
    calls = 0

    async def flaky(ctx: JobContext) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise KeyError("boom")

    h = Harness(job_of("*/10 * * * * *", flaky), clock=clock)
    with capture_logs() as logs:
        async with h:
            await h.advance_to(20)
    assert await h.statuses() == [(10, 1, S.FAILED), (20, 1, S.SUCCEEDED)]
    failed = [e for e in logs if e["event"] == "job_failed"]
    assert failed[0]["error_type"] == "KeyError"
    assert isinstance(failed[0]["exc_info"], KeyError)
    record = (await h.history())[0]
    assert record.error is not None and record.error.type == "KeyError"


@pytest.mark.parametrize(
    ("backoff", "expected_starts"),
    [
        ("fixed", [0, 2, 4, 6]),
        ("linear", [0, 2, 6, 12]),
        ("exponential", [0, 2, 6, 14]),
    ],
)
async def test_retry_backoff_and_final_failure(
    clock: FakeClock, backoff: str, expected_starts: list[float]
) -> None:
    body = Recorder(clock)
    body.fail_first = 10
    hooks: list[str] = []

    async def on_error(ctx: JobContext, exc: BaseException) -> None:
        hooks.append(f"on_error {ctx.attempt} {exc}")

    policy = RetryPolicy(max_retries=3, backoff=backoff, initial_delay=timedelta(seconds=2))  # type: ignore[arg-type]
    job = job_of("0 * * * *", body, retry=policy)
    job.on_error = on_error  # type: ignore[attr-defined]
    h = Harness(job, clock=clock)
    async with h:
        await h.advance_to(3600 + 60)
    tick = 3600.0
    assert [(s - secs(tick)[0]).total_seconds() for s in body.starts] == expected_starts
    statuses = await h.statuses()
    assert statuses == [(tick, n, S.FAILED) for n in (1, 2, 3, 4)]
    assert [r.trigger for r in await h.history()] == [Trigger.SCHEDULE] + [Trigger.RETRY] * 3
    assert hooks == ["on_error 4 attempt 4 failed"]
    assert len(h.failures) == 1
    assert h.failures[0].attempts == 4 and h.failures[0].error.type == "RuntimeError"


async def test_retry_succeeds_and_calls_on_success(clock: FakeClock) -> None:
    body = Recorder(clock)
    body.fail_first = 1
    successes: list[int] = []
    job = job_of("0 * * * *", body, retry=RetryPolicy(max_retries=2, backoff="fixed"))
    job.on_success = lambda ctx: successes.append(ctx.attempt)  # type: ignore[attr-defined]
    h = Harness(job, clock=clock)
    async with h:
        await h.advance_to(3600 + 10)
    assert await h.statuses() == [(3600, 1, S.FAILED), (3600, 2, S.SUCCEEDED)]
    assert successes == [2]
    assert h.failures == []


async def test_retry_never_runs_past_the_next_tick(clock: FakeClock) -> None:
    body = Recorder(clock)
    body.fail_first = 100
    policy = RetryPolicy(max_retries=5, backoff="fixed", initial_delay=timedelta(seconds=4))
    h = Harness(job_of("*/10 * * * * *", body, retry=policy), clock=clock)
    async with h:
        await h.advance_to(19)
    # Retries at 14 s and 18 s; the next (22 s) would pass the 20 s tick, so the tick gives up.
    assert await h.statuses() == [(10, 1, S.FAILED), (10, 2, S.FAILED), (10, 3, S.FAILED)]
    assert len(h.failures) == 1
