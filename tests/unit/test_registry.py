"""Registration: names, duplicates, schedules, options, overrides and job modules."""

from __future__ import annotations

from datetime import timedelta

import pytest

from financial.pkg.jobs import JobContext, JobDefinitionError, Overlap, RetryPolicy, cron_job
from financial.pkg.scheduler.registry import (
    Defaults,
    JobModuleError,
    JobRegistry,
    UnknownJobError,
    discover_jobs,
)
from financial.pkg.scheduler.registry import EnvOverride as Override


async def noop(ctx: JobContext) -> None:
    return None


class CleanupJob:
    """A class-style job with options as class attributes."""

    name = "cleanup"
    schedule = "0 2 * * *"
    timeout = 60
    overlap = Overlap.QUEUE
    retry = RetryPolicy(max_retries=2)
    timezone = "America/Sao_Paulo"

    async def run(self, ctx: JobContext) -> None:
        return None


def test_class_style_job_options_are_read_from_attributes() -> None:
    spec = JobRegistry().add(CleanupJob())
    assert spec.timeout == timedelta(seconds=60)
    assert spec.options.overlap is Overlap.QUEUE
    assert spec.options.retry.max_retries == 2
    assert str(spec.schedule.zone) == "America/Sao_Paulo"


def test_defaults_fill_what_a_job_leaves_unset() -> None:
    registry = JobRegistry(
        Defaults(
            timezone="Europe/Berlin",
            timeout=timedelta(seconds=42),
            start_deadline=timedelta(seconds=7),
        )
    )
    spec = registry.add(cron_job("0 2 * * *", name="nightly")(noop))
    assert spec.timeout == timedelta(seconds=42)
    assert spec.start_deadline == timedelta(seconds=7)
    assert str(spec.schedule.zone) == "Europe/Berlin"


def test_duplicate_names_are_refused() -> None:
    registry = JobRegistry()
    registry.add(cron_job("0 2 * * *", name="same")(noop))
    with pytest.raises(JobDefinitionError, match="'same' is registered twice"):
        registry.add(cron_job("0 3 * * *", name="same")(noop))


@pytest.mark.parametrize("name", ["Upper", "with space", "", "ünïcode", "semi;colon"])
def test_invalid_names_are_refused(name: str) -> None:
    with pytest.raises(JobDefinitionError, match="job name"):
        cron_job("0 2 * * *", name=name)(noop)


def test_invalid_schedule_names_the_job_the_expression_and_the_reason() -> None:
    with pytest.raises(JobDefinitionError) as info:
        JobRegistry().add(cron_job("61 2 * * *", name="broken")(noop))
    message = str(info.value)
    assert "'broken'" in message and "'61 2 * * *'" in message
    assert "61" in message.split(":", 2)[-1]


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"timeout": -1}, "timeout"),
        ({"overlap": "sometimes"}, "overlap"),
        ({"jitter": "soon"}, "duration"),
    ],
)
def test_invalid_options_are_refused(options: dict[str, object], fragment: str) -> None:
    with pytest.raises(JobDefinitionError, match=fragment):
        cron_job("0 2 * * *", name="opt", **options)(noop)  # type: ignore[arg-type]


def test_overrides_change_schedule_enabled_and_timeout() -> None:
    registry = JobRegistry(
        overrides={"nightly": Override(schedule="0 9 * * 1", enabled=False, timeout_seconds=5)}.get
    )
    spec = registry.add(cron_job("0 2 * * *", name="nightly")(noop))
    assert spec.schedule.expression == "0 9 * * 1"
    assert spec.options.enabled is False
    assert spec.timeout == timedelta(seconds=5)
    assert registry.enabled() == []


def test_unknown_job_lists_the_known_ones() -> None:
    registry = JobRegistry()
    registry.add(cron_job("0 2 * * *", name="a")(noop))
    registry.add(cron_job("0 2 * * *", name="b")(noop))
    with pytest.raises(UnknownJobError, match="known jobs: a, b"):
        registry.get("c")


def test_job_modules_are_imported_and_their_cron_jobs_found() -> None:
    jobs = discover_jobs(["tests.fixtures.worker_jobs"])
    assert {job.name for job in jobs} == {"tick", "batches", "stubborn", "blocking"}


def test_a_job_module_that_cannot_be_imported_is_named() -> None:
    with pytest.raises(JobModuleError, match=r"tests\.fixtures\.nowhere"):
        discover_jobs(["tests.fixtures.nowhere"])


def test_retry_policy_delays() -> None:
    policy = RetryPolicy(
        max_retries=4,
        backoff="exponential",
        initial_delay=timedelta(seconds=1),
        max_delay=timedelta(seconds=5),
        jitter=0.5,
    )
    assert [policy.delay_before(n, rand=lambda: 0.5) for n in (1, 2, 3, 4)] == [
        timedelta(seconds=s) for s in (1, 2, 4, 5)
    ]
    assert policy.delay_before(1, rand=lambda: 0.0) == timedelta(seconds=0.5)
    assert policy.delay_before(1, rand=lambda: 1.0) == timedelta(seconds=1.5)
    assert policy.delay_before(5) is None
    with pytest.raises(JobDefinitionError, match="backoff"):
        RetryPolicy(backoff="sometimes")  # type: ignore[arg-type]
