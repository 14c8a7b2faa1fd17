"""The scheduler loop on a fake clock: fire times, drift, missed ticks, claims, idle sleep."""

from __future__ import annotations

import threading
from datetime import timedelta

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import format_trace_id
from structlog.testing import capture_logs

from financial.pkg.jobs import JobContext, cron_job
from financial.pkg.jobs.model import RunStatus, Trigger
from financial.pkg.observability.tracing import setup_tracing, with_tracing
from financial.pkg.scheduler.clock import FakeClock
from financial.pkg.scheduler.loop.scheduler import Scheduler, SchedulerConfig
from tests.unit.scheduling import T0, Harness, Recorder, job_of, secs


async def test_fires_at_schedule_instants_and_never_early(clock: FakeClock) -> None:
    body = Recorder(clock)
    h = Harness(job_of("*/10 * * * * *", body), clock=clock)
    async with h:
        await h.advance_to(9.999)
        assert body.starts == []
        await h.advance_to(35)
        assert body.starts == secs(10, 20, 30)


async def test_slow_job_does_not_shift_the_timeline(clock: FakeClock) -> None:
    body = Recorder(clock, duration=timedelta(seconds=7))
    h = Harness(job_of("*/10 * * * * *", body), clock=clock)
    async with h:
        await h.advance_to(60)
    assert body.starts == secs(10, 20, 30, 40, 50, 60)
    assert body.finished == 5  # the run that started at 60 s was still running


async def test_idle_loop_sleeps_until_the_next_tick_without_polling(clock: FakeClock) -> None:
    h = Harness(job_of("0 3 * * *", Recorder(clock)), clock=clock)
    async with h:
        # The only sleeper is the loop, waiting for 03:00: no periodic wake-ups in between.
        assert h.clock.next_deadline == T0 + timedelta(hours=3)


async def test_every_run_is_recorded_with_one_final_status(clock: FakeClock) -> None:
    body = Recorder(clock)
    h = Harness(job_of("*/5 * * * * *", body), clock=clock)
    async with h:
        await h.advance_to(20)
    runs = await h.history()
    assert [r.status for r in runs] == [RunStatus.SUCCEEDED] * 4
    assert all(r.trigger is Trigger.SCHEDULE and r.worker_id == "test-worker" for r in runs)
    assert [r.scheduled_at for r in runs] == secs(5, 10, 15, 20)


async def test_tick_claimed_by_another_worker_is_left_alone(clock: FakeClock) -> None:
    body = Recorder(clock)
    h = Harness(job_of("*/10 * * * * *", body), clock=clock)
    other = await h.store.claim(
        "probe",
        T0 + timedelta(seconds=10),
        attempt=1,
        trigger=Trigger.SCHEDULE,
        worker_id="other",
    )
    assert other is not None
    async with h:
        await h.advance_to(15)
        # The other worker's run ends before the next tick, which this worker runs.
        await h.store.finish(other.run_id, RunStatus.SUCCEEDED, fence=other.fence)
        await h.advance_to(25)
    assert body.starts == secs(20)
    assert [(r.worker_id, r.status) for r in await h.history()] == [
        ("other", RunStatus.SUCCEEDED),
        ("test-worker", RunStatus.SUCCEEDED),
    ]


async def test_ticks_passed_while_blocked_are_recorded_missed_and_the_latest_runs(
    clock: FakeClock,
) -> None:
    body = Recorder(clock)
    h = Harness(job_of("*/10 * * * * *", body, start_deadline=3), clock=clock)
    async with h:
        await h.advance_to(10)
        # The host sleeps: the clock jumps 41 s with nobody waking the loop in between.
        h.clock._now = T0 + timedelta(seconds=51)
        h.scheduler._wake.set()
        await h.clock.settle()
    statuses = await h.statuses()
    assert statuses == [
        (10, 1, RunStatus.SUCCEEDED),
        (20, 1, RunStatus.MISSED),
        (30, 1, RunStatus.MISSED),
        (40, 1, RunStatus.MISSED),
        (50, 1, RunStatus.SUCCEEDED),  # 1 s late, inside its 3 s start deadline
    ]


async def test_disabled_job_never_runs(clock: FakeClock) -> None:
    body = Recorder(clock)
    h = Harness(job_of("*/10 * * * * *", body, enabled=False), clock=clock)
    async with h:
        await h.advance_to(60)
    assert body.starts == []


async def test_blocking_function_runs_in_a_worker_thread(clock: FakeClock) -> None:
    threads: list[int] = []

    @cron_job("0 0 1 1 *", name="blocking")
    def blocking(ctx: JobContext) -> None:
        threads.append(threading.get_ident())

    h = Harness(blocking, clock=clock)
    async with h:
        record = await h.scheduler.run_now(h.spec("blocking"))
    assert record is not None
    assert record.status is RunStatus.SUCCEEDED
    assert record.trigger is Trigger.MANUAL
    assert threads and threads[0] != threading.get_ident()


async def test_context_carries_the_run_fields(clock: FakeClock) -> None:
    body = Recorder(clock)
    h = Harness(job_of("*/10 * * * * *", body, timeout=4), clock=clock)
    async with h:
        await h.advance_to(10)
        ctx = body.contexts[0]
        assert not ctx.stopping.is_set()
    assert ctx.stopping.is_set()
    assert ctx.job_name == "probe"
    assert ctx.scheduled_at == T0 + timedelta(seconds=10)
    assert ctx.attempt == 1
    assert ctx.trigger is Trigger.SCHEDULE
    assert ctx.deadline == T0 + timedelta(seconds=14)
    runs = await h.history()
    assert ctx.run_id == runs[0].run_id


async def test_the_run_record_carries_the_trace_id_of_the_run_span(clock: FakeClock) -> None:
    exporter = InMemorySpanExporter()
    telemetry = setup_tracing("test", endpoint=None, exporter=exporter, set_global=False)
    h = Harness(
        job_of("*/10 * * * * *", Recorder(clock)),
        clock=clock,
        hooks=[with_tracing(telemetry.tracer)],
    )
    async with h:
        await h.advance_to(10)
    await telemetry.shutdown()
    [span] = exporter.get_finished_spans()
    [record] = await h.history()
    assert span.context is not None
    assert record.trace_id == format_trace_id(span.context.trace_id)


async def test_heartbeat_wakes_the_loop_at_its_interval(clock: FakeClock) -> None:
    beats: list[float] = []
    h = Harness(job_of("0 3 * * *", Recorder(clock)), clock=clock)
    h.scheduler = Scheduler(
        h.registry,
        store=h.store,
        clock=clock,
        config=SchedulerConfig(worker_id="w", heartbeat_interval=timedelta(seconds=5)),
        on_heartbeat=lambda at: beats.append((at - T0).total_seconds()),
    )
    async with h:
        await h.advance_to(12)
        assert h.scheduler.last_heartbeat == T0 + timedelta(seconds=10)
    assert beats == [0, 5, 10]


async def test_a_successful_run_is_one_info_line_carrying_its_start_lateness(
    clock: FakeClock,
) -> None:
    body = Recorder(clock)
    h = Harness(job_of("*/10 * * * * *", body), clock=clock)
    with capture_logs() as logs:
        async with h:
            await h.advance_to(10)
            # The loop was blocked: the 20 s tick starts 1.5 s late, within its deadline.
            h.clock._now = T0 + timedelta(seconds=21.5)
            h.scheduler._wake.set()
            await h.clock.settle()
    runs = [e for e in logs if e["event"] in ("job_started", "job_succeeded")]
    assert [(e["event"], e["log_level"]) for e in runs] == [
        ("job_started", "debug"),
        ("job_succeeded", "info"),
        ("job_started", "debug"),
        ("job_succeeded", "info"),
    ]
    assert [e["lateness_ms"] for e in runs if e["event"] == "job_succeeded"] == [0.0, 1500.0]
    assert {e["trigger"] for e in runs} == {"schedule"}
    assert all(e["duration_ms"] >= 0 for e in runs if e["event"] == "job_succeeded")
