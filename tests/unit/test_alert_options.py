"""`alert_after`: the job's own, the environment's per job, the worker-wide default, 0 for off;
bad values refused naming the thing, the value and what is expected; the gauge it drives."""

from __future__ import annotations

from datetime import timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families

from financial.cmd.wiring import build_registry
from financial.configs import SettingsError, load_settings
from financial.pkg.jobs import Job, cron_job
from financial.pkg.jobs.model import JobDefinitionError
from financial.pkg.observability.metrics import Metrics
from financial.pkg.scheduler.registry import Defaults, JobRegistry
from tests.unit.late_checking import Cluster, spec_of, tick

pytestmark = pytest.mark.usefixtures("clean_env")


async def noop() -> None:
    return None


def test_alert_after_is_off_unless_set() -> None:
    assert spec_of(alert_after=None).alert_after is None


def test_a_jobs_own_alert_after_wins_over_the_default() -> None:
    defaults = Defaults(alert_after=timedelta(hours=2))
    assert spec_of(alert_after=600, defaults=defaults).alert_after == timedelta(minutes=10)
    assert spec_of(alert_after=None, defaults=defaults).alert_after == timedelta(hours=2)
    assert spec_of(alert_after=0, defaults=defaults).alert_after is None  # off for this job


def test_class_style_jobs_declare_alert_after_as_an_attribute() -> None:
    class Nightly:
        name = "nightly"
        schedule = "0 2 * * *"
        alert_after = 3600

        async def run(self, ctx: object) -> None:
            return None

    assert JobRegistry().add(Nightly()).alert_after == timedelta(hours=1)


@pytest.mark.parametrize("value", [-1, timedelta(seconds=-5)])
def test_a_negative_alert_after_is_refused(value: float | timedelta) -> None:
    with pytest.raises(JobDefinitionError, match=r"alert_after=.*expected a positive duration"):
        cron_job("@every 1m", name="bad", alert_after=value)(noop)


def test_the_environment_sets_it_per_job_and_for_every_job(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WORKER_ALERT_AFTER_SECONDS", "7200")
    monkeypatch.setenv("WORKER_JOBS__REPORTS_WEEKLY__ALERT_AFTER_SECONDS", "60")
    monkeypatch.setenv("WORKER_JOBS__QUIET__ALERT_AFTER_SECONDS", "0")
    settings = load_settings(env_file=None, secrets_dirs=[])
    jobs: list[Job] = [
        cron_job("@every 1m", name="reports.weekly", alert_after=30)(noop),
        cron_job("@every 1m", name="quiet", alert_after=30)(noop),
        cron_job("@every 1m", name="plain")(noop),
    ]

    registry = build_registry(settings, jobs)

    assert registry.get("reports.weekly").alert_after == timedelta(seconds=60)
    assert registry.get("quiet").alert_after is None
    assert registry.get("plain").alert_after == timedelta(hours=2)


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("WORKER_ALERT_AFTER_SECONDS", "-3", "a number >= 0"),
        ("WORKER_ALERT_AFTER_SECONDS", "soon", "a number"),
        ("WORKER_JOBS__NIGHTLY__ALERT_AFTER_SECONDS", "-1", "a number >= 0"),
        ("WORKER_ALERT_CHECK_INTERVAL_SECONDS", "0", "a number >= 0.1"),
    ],
)
def test_bad_values_name_the_variable_the_value_and_what_is_expected(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as caught:
        load_settings(env_file=None, secrets_dirs=[])
    assert str(caught.value).startswith(f"{variable}={value!r}: expected {expected}")


async def late_gauge(metrics: Metrics) -> dict[str, float]:
    text = (await metrics.render()).decode()
    return {
        sample.labels["job"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "financial_worker_job_late"
    }


async def test_the_gauge_is_1_while_late_and_0_otherwise(metrics: Metrics) -> None:
    cluster = Cluster.new()
    checker = cluster.checker(spec_of(alert_after=90))
    metrics.watch_late_jobs(checker.late_flags)
    await checker.check()
    assert await late_gauge(metrics) == {"minutely": 0}

    await cluster.at(tick(3))
    await checker.check()
    assert await late_gauge(metrics) == {"minutely": 1}
