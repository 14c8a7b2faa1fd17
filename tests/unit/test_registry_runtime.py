"""Runtime settings laid over a registered job: precedence runtime > env > code > default, the
source of each effective value, and validation with the messages registration gives."""

from __future__ import annotations

from datetime import timedelta

import pytest

from financial.pkg.jobs import JobContext, JobDefinitionError
from financial.pkg.scheduler.job_settings import NOT_SET, RuntimeSettings
from financial.pkg.scheduler.registry import (
    Defaults,
    EffectiveSetting,
    JobRegistry,
    UnknownJobError,
)
from financial.pkg.scheduler.registry import EnvOverride as Override


class ReportJob:
    name = "report"
    schedule = "0 8 * * 1"
    timeout = 60

    async def run(self, ctx: JobContext) -> None:
        return None


class PlainJob:
    name = "plain"
    schedule = "@every 5s"

    async def run(self, ctx: JobContext) -> None:
        return None


def registry(**env: Override) -> JobRegistry:
    reg = JobRegistry(Defaults(timeout=timedelta(seconds=300)), overrides=env.get)
    reg.add(ReportJob())
    reg.add(PlainJob())
    return reg


def by_field(rows: list[EffectiveSetting]) -> dict[str, tuple[object, str]]:
    return {row.field: (row.value, row.source) for row in rows}


def test_without_runtime_settings_the_sources_are_code_env_and_default() -> None:
    reg = registry(report=Override(enabled=False))
    assert by_field(reg.sources("report")) == {
        "schedule": ("0 8 * * 1", "code"),
        "timeout": (60.0, "code"),
        "enabled": (False, "env"),
        "calendar": (None, "default"),
        "alert_after": (None, "default"),
    }
    assert by_field(reg.sources("plain"))["timeout"] == (300.0, "default")


def test_a_runtime_setting_wins_over_env_and_code() -> None:
    reg = registry(report=Override(schedule="0 9 * * 1", timeout_seconds=90))
    spec = reg.respec("report", RuntimeSettings(schedule="*/10 * * * *", enabled=False))
    assert spec.schedule.expression == "*/10 * * * *"
    assert spec.options.enabled is False
    assert spec.timeout == timedelta(seconds=90)  # env, not overridden at runtime
    assert reg.get("report") is spec
    assert by_field(reg.sources("report")) == {
        "schedule": ("*/10 * * * *", "runtime"),
        "timeout": (90.0, "env"),
        "enabled": (False, "runtime"),
        "calendar": (None, "default"),
        "alert_after": (None, "default"),
    }


def test_runtime_timeout_and_calendar() -> None:
    reg = registry()
    spec = reg.respec("report", RuntimeSettings(timeout_s=12.5, calendar="BR"))
    assert spec.timeout == timedelta(seconds=12.5)
    assert spec.calendar == "BR"
    rows = by_field(reg.sources("report"))
    assert rows["timeout"] == (12.5, "runtime")
    assert rows["calendar"] == ("BR", "runtime")


def test_respec_with_nothing_set_goes_back_to_env_and_code() -> None:
    reg = registry(report=Override(schedule="0 9 * * 1"))
    reg.respec("report", RuntimeSettings(schedule="@hourly", timeout_s=5))
    spec = reg.respec("report", NOT_SET)
    assert spec.schedule.expression == "0 9 * * 1"
    assert spec.timeout == timedelta(seconds=60)
    assert reg.runtime("report") == NOT_SET
    assert by_field(reg.sources("report"))["schedule"] == ("0 9 * * 1", "env")


def test_an_invalid_runtime_schedule_gets_the_message_of_registration() -> None:
    reg = registry()
    with pytest.raises(JobDefinitionError) as at_runtime:
        reg.build("report", RuntimeSettings(schedule="61 * * * *"))
    with pytest.raises(JobDefinitionError) as at_start:
        JobRegistry().add(type("R", (ReportJob,), {"schedule": "61 * * * *"})())
    assert str(at_runtime.value) == str(at_start.value)
    assert "job 'report': schedule '61 * * * *'" in str(at_runtime.value)
    assert reg.get("report").schedule.expression == "0 8 * * 1"  # nothing kept


@pytest.mark.parametrize("seconds", [0, -1, float("nan"), float("inf"), 10**9])
def test_a_runtime_timeout_must_be_positive_and_finite(seconds: float) -> None:
    with pytest.raises(JobDefinitionError, match=r"job 'report': timeout .*expected a number"):
        registry().build("report", RuntimeSettings(timeout_s=seconds))


def test_an_unknown_calendar_is_refused_naming_it() -> None:
    with pytest.raises(JobDefinitionError, match=r"job 'report'.*XX-NOPE"):
        registry().build("report", RuntimeSettings(calendar="XX-NOPE"))


def test_a_calendar_on_an_every_schedule_is_refused() -> None:
    with pytest.raises(JobDefinitionError, match="job 'plain'"):
        registry().build("plain", RuntimeSettings(calendar="BR"))


def test_an_unknown_job_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(UnknownJobError, match="unknown job 'nope'; known jobs: plain, report"):
        registry().build("nope", RuntimeSettings(enabled=False))


class WatchedJob:
    name = "watched"
    schedule = "*/5 * * * *"
    alert_after = timedelta(minutes=20)

    async def run(self, ctx: JobContext) -> None:
        return None


def alerting(default: timedelta | None = timedelta(hours=1), **env: Override) -> JobRegistry:
    reg = JobRegistry(Defaults(alert_after=default), overrides=env.get)
    reg.add(WatchedJob())
    reg.add(PlainJob())
    return reg


def test_alert_after_precedence_runtime_env_code_default() -> None:
    reg = alerting(watched=Override(alert_after_seconds=600))
    assert by_field(reg.sources("plain"))["alert_after"] == (3600.0, "default")
    assert by_field(reg.sources("watched"))["alert_after"] == (600.0, "env")
    assert by_field(alerting().sources("watched"))["alert_after"] == (1200.0, "code")

    spec = reg.respec("watched", RuntimeSettings(alert_after_s=90))
    assert spec.alert_after == timedelta(seconds=90)
    assert by_field(reg.sources("watched"))["alert_after"] == (90.0, "runtime")

    spec = reg.respec("plain", RuntimeSettings(alert_after_s=45))
    assert spec.alert_after == timedelta(seconds=45)
    assert by_field(reg.sources("plain"))["alert_after"] == (45.0, "runtime")


def test_a_runtime_alert_after_of_0_turns_the_alert_off_over_every_layer() -> None:
    reg = alerting(watched=Override(alert_after_seconds=600))
    for name in ("watched", "plain"):
        spec = reg.respec(name, RuntimeSettings(alert_after_s=0))
        assert spec.alert_after is None
        assert by_field(reg.sources(name))["alert_after"] == (None, "runtime")


def test_a_runtime_alert_after_turns_on_an_alert_the_worker_leaves_off() -> None:
    reg = alerting(default=None)
    assert reg.get("plain").alert_after is None
    assert by_field(reg.sources("plain"))["alert_after"] == (None, "default")
    assert reg.respec("plain", RuntimeSettings(alert_after_s=30)).alert_after == timedelta(
        seconds=30
    )


def test_resetting_alert_after_goes_back_to_env_code_and_default() -> None:
    reg = alerting(watched=Override(alert_after_seconds=600))
    reg.respec("watched", RuntimeSettings(alert_after_s=0))
    reg.respec("plain", RuntimeSettings(alert_after_s=0))
    assert reg.respec("watched", NOT_SET).alert_after == timedelta(seconds=600)
    assert reg.respec("plain", NOT_SET).alert_after == timedelta(hours=1)


@pytest.mark.parametrize(
    "seconds", [-1, -0.001, float("nan"), float("inf"), float("-inf"), 366 * 86400 + 1, 10**12]
)
def test_a_runtime_alert_after_must_be_finite_not_negative_and_not_absurd(
    seconds: float,
) -> None:
    reg = alerting()
    with pytest.raises(
        JobDefinitionError,
        match=r"job 'watched': alert_after .*: expected a number of seconds >= 0 "
        r"\(0 turns the job's alert off; at most 31622400, 366 days\)",
    ):
        reg.build("watched", RuntimeSettings(alert_after_s=seconds))
    assert reg.get("watched").alert_after == timedelta(minutes=20)  # nothing kept


@pytest.mark.parametrize("seconds", [0, 0.5, 3600, 366 * 86400])
def test_a_runtime_alert_after_in_range_is_taken(seconds: float) -> None:
    spec = alerting().build("watched", RuntimeSettings(alert_after_s=seconds))
    assert spec.alert_after == (timedelta(seconds=seconds) if seconds else None)
