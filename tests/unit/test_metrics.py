"""Metrics: the instruments as Prometheus sees them and the chain wrapper (the loop-lag monitor:
test_loop_lag.py)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
import structlog
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.version import __version__ as sdk_version
from prometheus_client import CollectorRegistry, generate_latest

from financial.pkg.jobs.context import JobContext
from financial.pkg.jobs.model import RunStatus, Trigger
from financial.pkg.observability.metrics import (
    DURATION_BUCKETS_S,
    LATENESS_BUCKETS_S,
    Metrics,
    instrument_clients,
    setup_metrics,
)
from financial.pkg.observability.run_metrics import with_metrics
from financial.pkg.scheduler.clock import FakeClock
from financial.pkg.scheduler.execution.chain import SUCCEEDED, Outcome, Step
from tests.unit.metrics_scrape import scrape, value

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


def context(attempt: int = 1, trigger: Trigger = Trigger.SCHEDULE) -> JobContext:
    return JobContext(
        job_name="report",
        run_id="run-1",
        scheduled_at=T0,
        attempt=attempt,
        deadline=T0 + timedelta(minutes=5),
        trigger=trigger,
        log=structlog.get_logger(),
    )


def step_taking(clock: FakeClock, duration_s: float, outcome: Outcome = SUCCEEDED) -> Step:
    async def step(ctx: JobContext) -> Outcome:
        await clock.sleep(timedelta(seconds=duration_s))
        return outcome

    return step


def step_advancing(clock: FakeClock, duration_s: float, outcome: Outcome = SUCCEEDED) -> Step:
    """A step that moves the fake clock itself, so it can be awaited directly."""

    async def step(ctx: JobContext) -> Outcome:
        await clock.advance(duration_s)
        return outcome

    return step


async def test_exposition_names_labels_and_target_info(metrics: Metrics) -> None:
    metrics.known_jobs(["report"])
    samples = await scrape(metrics)
    assert value(samples, "financial_worker_runs_total", job="report", status="failed") == 0
    assert value(samples, "financial_worker_runs_in_flight", job="report") == 0
    statuses = {dict(labels)["status"] for name, labels in samples if name.endswith("runs_total")}
    assert statuses == {
        "succeeded",
        "failed",
        "timed_out",
        "skipped",
        "missed",
        "interrupted",
        "abandoned",
    }
    info = [labels for name, labels in samples if name == "target_info"]
    assert info and ("service_name", "financial-worker") in info[0]
    assert ("service_instance_id", "worker-1") in info[0]
    # Scope labels would repeat on every line of every series: they are left off.
    assert not any("otel_scope_name" in dict(labels) for _, labels in samples)
    assert metrics.content_type.startswith("text/plain")


async def test_with_metrics_records_an_attempt(metrics: Metrics, clock: FakeClock) -> None:
    await clock.advance(0.040)  # the attempt starts 40 ms after its tick
    step = with_metrics(metrics, clock)(step_taking(clock, 2.0))
    task: asyncio.Future[Outcome] = asyncio.ensure_future(step(context()))
    await clock.settle()
    during = await scrape(metrics)
    assert value(during, "financial_worker_runs_in_flight", job="report") == 1
    await clock.advance(2.0)
    assert (await task).status is RunStatus.SUCCEEDED

    after = await scrape(metrics)
    assert value(after, "financial_worker_runs_in_flight", job="report") == 0
    assert value(after, "financial_worker_runs_total", job="report", status="succeeded") == 1
    assert value(after, "financial_worker_run_duration_seconds_sum", job="report") == 2.0
    assert value(after, "financial_worker_run_duration_seconds_bucket", job="report", le="1.0") == 0
    assert value(after, "financial_worker_run_duration_seconds_bucket", job="report", le="2.5") == 1
    lateness = value(after, "financial_worker_start_lateness_seconds_sum", job="report")
    assert lateness == pytest.approx(0.040)
    assert (
        value(after, "financial_worker_start_lateness_seconds_bucket", job="report", le="0.05") == 1
    )
    assert (
        value(after, "financial_worker_last_success_timestamp_seconds", job="report")
        == (T0 + timedelta(seconds=2.040)).timestamp()
    )


def exposition_after_a_run_a_retry_and_a_missed_run() -> str:
    """What the OpenTelemetry SDK's own instruments exposed for the scenario of the next test."""
    lateness_buckets = [0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]
    duration_buckets = [0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2]
    statuses = ["succeeded", "failed", "timed_out", "skipped", "missed", "interrupted", "abandoned"]
    runs = dict.fromkeys(statuses, 0) | {"succeeded": 1, "failed": 1}
    lateness = "financial_worker_start_lateness_seconds"
    duration = "financial_worker_run_duration_seconds"
    return "".join(
        [
            "# HELP target_info Target metadata\n",
            "# TYPE target_info gauge\n",
            'target_info{service_instance_id="worker-1",service_name="financial-worker",'
            'telemetry_sdk_language="python",telemetry_sdk_name="opentelemetry",'
            f'telemetry_sdk_version="{sdk_version}"}} 1.0\n',
            "# HELP financial_worker_runs_in_flight Attempts executing now.\n",
            "# TYPE financial_worker_runs_in_flight gauge\n",
            'financial_worker_runs_in_flight{job="report"} 1.0\n',
            "# HELP financial_worker_runs_total Runs by job and final status.\n",
            "# TYPE financial_worker_runs_total counter\n",
            *(
                f'financial_worker_runs_total{{job="report",status="{status}"}} {n:.1f}\n'
                for status, n in runs.items()
            ),
            'financial_worker_runs_total{job="ghost",status="missed"} 1.0\n',
            f"# HELP {lateness} Start of a scheduled run's first attempt minus its tick.\n",
            f"# TYPE {lateness} histogram\n",
            *(
                f'{lateness}_bucket{{job="report",le="{le}"}} {n:.1f}\n'
                for le, n in zip([*LATENESS_BUCKETS_S, "+Inf"], lateness_buckets, strict=True)
            ),
            f'{lateness}_count{{job="report"}} 1.0\n',
            f'{lateness}_sum{{job="report"}} 0.004\n',
            f"# HELP {duration} Duration of one attempt of a job.\n",
            f"# TYPE {duration} histogram\n",
            *(
                f'{duration}_bucket{{job="report",le="{le}"}} {n:.1f}\n'
                for le, n in zip([*DURATION_BUCKETS_S, "+Inf"], duration_buckets, strict=True)
            ),
            f'{duration}_count{{job="report"}} 2.0\n',
            f'{duration}_sum{{job="report"}} 30.75\n',
            "# HELP financial_worker_last_success_timestamp_seconds "
            "When each job last succeeded (Unix time).\n",
            "# TYPE financial_worker_last_success_timestamp_seconds gauge\n",
            'financial_worker_last_success_timestamp_seconds{job="report"} 1.767600000254e+09\n',
        ]
    )


async def test_the_exposition_is_the_text_the_sdk_instruments_gave(
    metrics: Metrics, clock: FakeClock
) -> None:
    # Lateness 4 ms; durations 0.25 s (on a bound: counted in `le="0.25"`) and 30.5 s.
    metrics.known_jobs(["report"])
    measured = with_metrics(metrics, clock)
    await clock.advance(0.004)
    await measured(step_advancing(clock, 0.25))(context())
    failed = Outcome(RunStatus.FAILED, RuntimeError("boom"))
    await measured(step_advancing(clock, 30.5, failed))(context(2, Trigger.RETRY))
    metrics.count_run("ghost", "missed")
    running = asyncio.ensure_future(measured(step_taking(clock, 60.0))(context(1, Trigger.MANUAL)))
    await clock.settle()
    assert (await metrics.render()).decode() == exposition_after_a_run_a_retry_and_a_missed_run()
    running.cancel()


async def test_the_histograms_match_the_sdk_aggregation_scrape_after_scrape(
    metrics: Metrics,
) -> None:
    # The reference: the SDK's own histograms, as the module had them, fed the same values.
    registry = CollectorRegistry()
    reader = PrometheusMetricReader(scope_info_enabled=False, registry=registry)
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    meter = provider.get_meter("reference")
    lateness = meter.create_histogram(
        "financial_worker_start_lateness",
        unit="s",
        description="Start of a scheduled run's first attempt minus its tick.",
        explicit_bucket_boundaries_advisory=LATENESS_BUCKETS_S,
    )
    duration = meter.create_histogram(
        "financial_worker_run_duration",
        unit="s",
        description="Duration of one attempt of a job.",
        explicit_bucket_boundaries_advisory=DURATION_BUCKETS_S,
    )
    # Every bound, and values beside them, at and below zero, past the last bound, and sums
    # whose float rounding depends on how they are grouped between scrapes.
    edges = [0.0, *LATENESS_BUCKETS_S, *DURATION_BUCKETS_S, 5000.0]
    values = [*edges, *(edge * 1.001 for edge in edges), *(0.1 * i for i in range(1, 40))]

    def histogram_text(text: str) -> list[str]:
        return [line for line in text.splitlines() if "_seconds" in line]

    try:
        for chunk, at in enumerate(range(0, len(values), 23)):
            for i, value in enumerate(values[at : at + 23]):
                job = f"job-{(i + chunk) % 3}"
                metrics.record_lateness(job, value)
                metrics.record_attempt(job, RunStatus.SUCCEEDED, value)
                lateness.record(value, {"job": job})
                duration.record(value, {"job": job})
            ours = histogram_text((await metrics.render()).decode())
            reference = histogram_text(generate_latest(registry).decode())
            assert ours == reference
    finally:
        provider.shutdown()


async def test_runs_add_up_and_in_flight_returns_to_zero(
    metrics: Metrics, clock: FakeClock
) -> None:
    measured = with_metrics(metrics, clock)
    outcomes = [SUCCEEDED, Outcome(RunStatus.FAILED, RuntimeError()), SUCCEEDED]
    tasks = [
        asyncio.ensure_future(measured(step_taking(clock, 10.0 * (i + 1), outcome))(context()))
        for i, outcome in enumerate(outcomes)
    ]
    await clock.settle()
    assert value(await scrape(metrics), "financial_worker_runs_in_flight", job="report") == 3
    await clock.advance(10.0)
    tasks[1].cancel()  # its step would have failed; cancelled first, it is interrupted
    await asyncio.wait(tasks[:2])
    assert value(await scrape(metrics), "financial_worker_runs_in_flight", job="report") == 1
    await clock.advance(20.0)
    await tasks[2]
    metrics.count_run("report", RunStatus.SKIPPED)

    samples = await scrape(metrics)
    assert value(samples, "financial_worker_runs_in_flight", job="report") == 0
    runs = {
        dict(labels)["status"]: n
        for (name, labels), n in samples.items()
        if name == "financial_worker_runs_total"
    }
    assert runs == {"succeeded": 2, "interrupted": 1, "skipped": 1}
    assert value(samples, "financial_worker_run_duration_seconds_count", job="report") == 3
    assert value(samples, "financial_worker_run_duration_seconds_sum", job="report") == 50.0
    buckets = [
        value(samples, "financial_worker_run_duration_seconds_bucket", job="report", le=le)
        for le in [*map(str, DURATION_BUCKETS_S), "+Inf"]
    ]
    # Cumulative: up to 5 s none, up to 10 s the run that ended and the cancelled one, then all.
    assert buckets == [0] * 8 + [2] + [3] * 8


async def test_shutdown_leaves_the_registry() -> None:
    metrics = setup_metrics("financial-worker")
    metrics.known_jobs(["report"])
    metrics.record_attempt("report", RunStatus.SUCCEEDED, 1.0)
    await metrics.shutdown()
    await metrics.shutdown()  # twice is harmless
    assert generate_latest(metrics.registry) == b""


@pytest.mark.parametrize(
    ("outcome", "status"),
    [
        (Outcome(RunStatus.FAILED, RuntimeError("boom")), "failed"),
        (Outcome(RunStatus.TIMED_OUT, TimeoutError()), "timed_out"),
    ],
)
async def test_unsuccessful_attempts_count_by_status_and_leave_last_success_alone(
    metrics: Metrics, clock: FakeClock, outcome: Outcome, status: str
) -> None:
    step = with_metrics(metrics, clock)(step_taking(clock, 0.0, outcome))
    await step(context())
    samples = await scrape(metrics)
    assert value(samples, "financial_worker_runs_total", job="report", status=status) == 1
    assert value(samples, "financial_worker_last_success_timestamp_seconds", job="report") is None


async def test_a_cancelled_attempt_counts_interrupted(metrics: Metrics, clock: FakeClock) -> None:
    step = with_metrics(metrics, clock)(step_taking(clock, 60.0))
    task: asyncio.Future[Outcome] = asyncio.ensure_future(step(context()))
    await clock.settle()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    samples = await scrape(metrics)
    assert value(samples, "financial_worker_runs_total", job="report", status="interrupted") == 1
    assert value(samples, "financial_worker_runs_in_flight", job="report") == 0


async def test_an_escaping_exception_counts_failed_and_propagates(
    metrics: Metrics, clock: FakeClock
) -> None:
    async def crash(ctx: JobContext) -> Outcome:
        raise ValueError("not caught inside")

    with pytest.raises(ValueError, match="not caught inside"):
        await with_metrics(metrics, clock)(crash)(context())
    samples = await scrape(metrics)
    assert value(samples, "financial_worker_runs_total", job="report", status="failed") == 1


@pytest.mark.parametrize(
    ("attempt", "trigger"),
    [(2, Trigger.RETRY), (1, Trigger.CATCHUP), (1, Trigger.MANUAL)],
)
async def test_lateness_only_for_the_first_attempt_of_a_scheduled_run(
    metrics: Metrics, clock: FakeClock, attempt: int, trigger: Trigger
) -> None:
    await clock.advance(3600)
    await with_metrics(metrics, clock)(step_taking(clock, 0.0))(context(attempt, trigger))
    samples = await scrape(metrics)
    assert value(samples, "financial_worker_start_lateness_seconds_count", job="report") is None


async def test_unstarted_runs_and_seeded_successes(metrics: Metrics) -> None:
    metrics.count_run("report", RunStatus.SKIPPED)
    metrics.count_run("report", "missed")
    metrics.observe_last_success("report", T0)
    metrics.observe_last_success("report", T0 - timedelta(days=1))  # older: ignored
    samples = await scrape(metrics)
    assert value(samples, "financial_worker_runs_total", job="report", status="skipped") == 1
    assert value(samples, "financial_worker_runs_total", job="report", status="missed") == 1
    assert (
        value(samples, "financial_worker_last_success_timestamp_seconds", job="report")
        == T0.timestamp()
    )


async def test_next_fire_times_are_read_at_scrape_time(metrics: Metrics) -> None:
    ticks = {"report": datetime(2026, 1, 12, 8, 0, tzinfo=UTC)}
    metrics.watch_next_fire_times(lambda: ticks)
    first = await scrape(metrics)
    assert value(first, "financial_worker_next_fire_timestamp_seconds", job="report") == (
        ticks["report"].timestamp()
    )
    ticks["report"] = datetime(2026, 1, 19, 8, 0, tzinfo=UTC)
    second = await scrape(metrics)
    assert value(second, "financial_worker_next_fire_timestamp_seconds", job="report") == (
        ticks["report"].timestamp()
    )


async def test_outbox_backlog_is_queried_per_scrape_and_left_out_when_it_fails(
    metrics: Metrics,
) -> None:
    answers: list[int | Exception] = [7, ConnectionError("postgresql://u:hunter2@db/x down"), 0]

    async def backlog() -> int:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    metrics.watch_outbox_backlog(backlog)
    assert value(await scrape(metrics), "financial_worker_outbox_backlog") == 7
    assert value(await scrape(metrics), "financial_worker_outbox_backlog") is None
    assert value(await scrape(metrics), "financial_worker_outbox_backlog") == 0


async def test_a_hung_backlog_query_does_not_hang_the_scrape(
    metrics: Metrics, monkeypatch: pytest.MonkeyPatch
) -> None:
    from financial.pkg.observability import metrics as module

    monkeypatch.setattr(module, "BACKLOG_TIMEOUT_S", 0.01)

    async def hangs() -> int:
        await asyncio.Event().wait()
        return 0

    metrics.watch_outbox_backlog(hangs)
    assert value(await scrape(metrics), "financial_worker_outbox_backlog") is None


def test_buckets_cover_seconds_scale_runs_and_millisecond_lateness() -> None:
    assert tuple(sorted(DURATION_BUCKETS_S)) == DURATION_BUCKETS_S
    assert DURATION_BUCKETS_S[0] <= 0.01 and DURATION_BUCKETS_S[-1] >= 3600
    assert tuple(sorted(LATENESS_BUCKETS_S)) == LATENESS_BUCKETS_S
    assert LATENESS_BUCKETS_S[0] <= 0.001 and LATENESS_BUCKETS_S[-1] >= 60


def test_instrument_clients_turns_both_instrumentations_on_and_off() -> None:
    from opentelemetry.instrumentation.aio_pika import AioPikaInstrumentor
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

    uninstrument = instrument_clients()
    try:
        assert AsyncPGInstrumentor().is_instrumented_by_opentelemetry  # type: ignore[no-untyped-call]
        assert AioPikaInstrumentor().is_instrumented_by_opentelemetry
        instrument_clients()  # a second call leaves them as they are
    finally:
        uninstrument()
    assert not AsyncPGInstrumentor().is_instrumented_by_opentelemetry  # type: ignore[no-untyped-call]
    assert not AioPikaInstrumentor().is_instrumented_by_opentelemetry


async def test_two_metrics_side_by_side_do_not_collide() -> None:
    first, second = setup_metrics("a"), setup_metrics("b")
    try:
        first.count_run("x", "missed")
        assert (
            value(await scrape(second), "financial_worker_runs_total", job="x", status="missed")
            is None
        )
    finally:
        await first.shutdown()
        await second.shutdown()


async def test_stuck_threads_are_read_at_scrape_time(metrics: Metrics) -> None:
    assert value(await scrape(metrics), "financial_worker_executor_stuck_threads") is None
    stuck = [0]
    metrics.watch_stuck_threads(lambda: stuck[0])
    assert value(await scrape(metrics), "financial_worker_executor_stuck_threads") == 0
    stuck[0] = 6
    assert value(await scrape(metrics), "financial_worker_executor_stuck_threads") == 6
