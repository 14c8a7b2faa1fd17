"""Runtime settings applied to a running scheduler on a fake clock: a new schedule moves the next
fire time, disabling stops the ticks (a running run finishes), enabling resumes them, and a new
timeout applies from the next run."""

from __future__ import annotations

from datetime import timedelta

from structlog.testing import capture_logs

from financial.pkg.jobs.model import RunStatus
from financial.pkg.scheduler.clock import FakeClock
from financial.pkg.scheduler.job_settings import NOT_SET, RuntimeSettings
from tests.unit.scheduling import T0, Harness, Recorder, job_of, secs


async def test_a_new_schedule_recomputes_the_next_fire_time(clock: FakeClock) -> None:
    body = Recorder(clock)
    h = Harness(job_of("*/10 * * * * *", body), clock=clock)
    async with h:
        await h.advance_to(21)
        at = h.scheduler.apply(
            h.registry.respec("probe", RuntimeSettings(schedule="*/3 * * * * *"))
        )
        assert at == T0 + timedelta(seconds=24)
        assert h.scheduler.next_fire_times() == {"probe": at}
        await h.advance_to(31)
    assert body.starts == secs(10, 20, 24, 27, 30)


async def test_disabling_stops_the_ticks_and_lets_a_running_run_finish(clock: FakeClock) -> None:
    body = Recorder(clock, duration=timedelta(seconds=4))
    h = Harness(job_of("*/5 * * * * *", body), clock=clock)
    async with h:
        await h.advance_to(6)  # the run of 5 s is going
        with capture_logs() as logs:
            assert (
                h.scheduler.apply(h.registry.respec("probe", RuntimeSettings(enabled=False)))
                is None
            )
        assert h.scheduler.next_fire_times() == {}
        assert [spec.name for spec in h.scheduler.jobs] == []
        await h.advance_to(60)
    assert body.starts == secs(5)
    assert body.finished == 1
    assert await h.statuses() == [(5.0, 1, RunStatus.SUCCEEDED)]
    assert {"event": "job_disabled", "job": "probe", "log_level": "info"} in logs


async def test_enabling_resumes_the_ticks_from_now(clock: FakeClock) -> None:
    body = Recorder(clock)
    h = Harness(job_of("*/5 * * * * *", body, enabled=False), clock=clock)
    async with h:
        await h.advance_to(12)
        assert body.starts == []
        at = h.scheduler.apply(h.registry.respec("probe", RuntimeSettings(enabled=True)))
        assert at == T0 + timedelta(seconds=15)
        await h.advance_to(21)
        # Back to the code's value: disabled again.
        assert h.scheduler.apply(h.registry.respec("probe", NOT_SET)) is None
        await h.advance_to(40)
    assert body.starts == secs(15, 20)


async def test_a_new_timeout_applies_to_the_next_run(clock: FakeClock) -> None:
    body = Recorder(clock, duration=timedelta(seconds=3))
    h = Harness(job_of("*/10 * * * * *", body, timeout=60), clock=clock)
    async with h:
        await h.advance_to(11)  # the run of 10 s is going, with its 60 s timeout
        at = h.scheduler.apply(h.registry.respec("probe", RuntimeSettings(timeout_s=2)))
        assert at == T0 + timedelta(seconds=20)  # same timeline: the next tick stays
        await h.advance_to(25)
    assert await h.statuses() == [(10.0, 1, RunStatus.SUCCEEDED), (20.0, 1, RunStatus.TIMED_OUT)]


async def test_a_timeout_change_keeps_a_tick_that_is_due(clock: FakeClock) -> None:
    body = Recorder(clock)
    h = Harness(job_of("*/10 * * * * *", body), clock=clock)
    async with h:
        await h.advance_to(5)
        clock.jump(5)  # the tick of 10 s is due, the loop has not woken yet
        h.scheduler.apply(h.registry.respec("probe", RuntimeSettings(timeout_s=30)))
        await h.advance_to(11)
    assert body.starts == secs(10)
