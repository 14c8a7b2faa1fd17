"""A job's `calendar` and `on_holiday`: options, the worker's default, overrides, closed dates,
and the configuration errors that stop the worker (exit 78)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from financial.cmd.cli import main
from financial.cmd.jobs import _job_row
from financial.cmd.wiring import ConfigError, build_registry
from financial.configs import SettingsError
from financial.pkg.jobs import JobContext, JobDefinitionError, OnHoliday, cron_job
from financial.pkg.scheduler.registry import Defaults, JobRegistry
from financial.pkg.scheduler.registry import EnvOverride as Override
from tests.unit.settings_env import load

NOW = datetime(2026, 12, 20, tzinfo=UTC)


async def noop(ctx: JobContext) -> None:
    return None


class MonthEndJob:
    """A class-style job on a calendar."""

    name = "month_end"
    schedule = "0 18 LB * *"
    timezone = "America/New_York"
    calendar = "NYSE"

    async def run(self, ctx: JobContext) -> None:
        return None


def test_the_decorator_and_class_attributes_set_the_calendar_and_policy() -> None:
    registry = JobRegistry(now=NOW)
    job = cron_job("0 7 1 * *", name="salaries", timezone="America/Sao_Paulo", calendar="br")
    spec = registry.add(job(noop))
    assert spec.calendar == "BR"
    assert spec.options.on_holiday is OnHoliday.SKIP
    moved = cron_job(
        "0 7 1 * *",
        name="moved",
        timezone="America/Sao_Paulo",
        calendar="BR",
        on_holiday="previous",
    )
    assert registry.add(moved(noop)).schedule.next_after(NOW) == datetime(
        2026, 12, 31, 10, tzinfo=UTC
    )
    month_end = registry.add(MonthEndJob())
    assert month_end.calendar == "NYSE"
    assert month_end.schedule.next_after(datetime(2027, 5, 1, tzinfo=UTC)) == datetime(
        2027, 5, 28, 22, tzinfo=UTC
    )


def test_the_worker_default_calendar_applies_to_cron_jobs_only_and_none_opts_out() -> None:
    registry = JobRegistry(Defaults(calendar="BR"), now=NOW)
    assert registry.add(cron_job("0 9 * * *", name="daily")(noop)).calendar == "BR"
    assert registry.add(cron_job("@every 5s", name="relay")(noop)).calendar is None
    opted_out = registry.add(cron_job("0 9 * * *", name="always", calendar="none")(noop))
    assert opted_out.calendar is None
    # On Christmas (a Friday) the daily job is skipped, the other runs.
    christmas = datetime(2026, 12, 24, 13, tzinfo=UTC)
    assert registry.get("daily").schedule.next_after(christmas).day == 28
    assert registry.get("always").schedule.next_after(christmas).day == 25


def test_overrides_set_the_calendar_and_policy() -> None:
    registry = JobRegistry(
        overrides={"nightly": Override(calendar="BR-SP", on_holiday="next")}.get, now=NOW
    )
    spec = registry.add(cron_job("0 2 * * *", name="nightly", timezone="UTC")(noop))
    assert (spec.calendar, spec.options.on_holiday) == ("BR-SP", OnHoliday.NEXT)


def test_closed_dates_apply_to_every_job_with_a_calendar() -> None:
    defaults = Defaults(closed_dates=((date(2026, 12, 23), "inventory"),))
    registry = JobRegistry(defaults, now=NOW)
    spec = registry.add(cron_job("0 12 * * *", name="noon", calendar="BR")(noop))
    assert spec.schedule.next_after(datetime(2026, 12, 22, 13, tzinfo=UTC)).day == 24
    plain = registry.add(cron_job("0 12 * * *", name="plain")(noop))
    assert plain.schedule.next_after(datetime(2026, 12, 22, 13, tzinfo=UTC)).day == 23


@pytest.mark.parametrize(
    ("job_kwargs", "message"),
    [
        (
            {"schedule": "0 9 * * *", "calendar": "XX"},
            "job 'bad': unknown calendar 'XX': expected a country (BR)",
        ),
        (
            {"schedule": "@every 5s", "calendar": "BR"},
            "job 'bad': schedule '@every 5s' with calendar 'BR': calendar 'BR': a holiday "
            "calendar applies to cron schedules",
        ),
        (
            {"schedule": "0 9 * * *", "on_holiday": "next"},
            "job 'bad': schedule '0 9 * * *': on_holiday='next' needs a holiday calendar",
        ),
        (
            {"schedule": "0 9 1 1 *", "calendar": "BR", "timezone": "America/Sao_Paulo"},
            "job 'bad': schedule '0 9 1 1 *' with calendar 'BR': '0 9 1 1 *' has no fire time "
            "within 41 years after 2026-12-20",
        ),
    ],
)
def test_registration_refuses_a_calendar_that_cannot_work(
    job_kwargs: dict[str, str], message: str
) -> None:
    schedule = job_kwargs.pop("schedule")
    with pytest.raises(JobDefinitionError) as caught:
        JobRegistry(now=NOW).add(cron_job(schedule, name="bad", **job_kwargs)(noop))  # type: ignore[arg-type]
    assert str(caught.value).startswith(message)


def test_years_the_data_does_not_cover_are_refused_at_registration() -> None:
    late = datetime(2100, 12, 31, 23, 30, tzinfo=UTC)
    with pytest.raises(JobDefinitionError, match="job 'late': calendar 'BR' has no holiday data"):
        JobRegistry(now=late).add(cron_job("0 23 * * *", name="late", calendar="BR")(noop))


def test_an_unknown_policy_is_refused_listing_the_choices() -> None:
    with pytest.raises(JobDefinitionError, match="on_holiday='later': expected one of skip, next"):
        cron_job("0 9 * * *", on_holiday="later")(noop)
    with pytest.raises(JobDefinitionError, match="option calendar='': expected a country"):
        cron_job("0 9 * * *", calendar="")(noop)


def test_a_bad_default_calendar_is_a_config_error_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"^WORKER_CALENDAR='ZZ': unknown calendar 'ZZ'"):
        build_registry(load(worker_calendar="ZZ"), [])
    registry = build_registry(load(worker_calendar="us"), [cron_job("0 9 * * *", name="a")(noop)])
    assert registry.get("a").calendar == "US"


def test_an_unknown_calendar_in_the_environment_exits_78_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WORKER_JOBS__DATABASE_CLEANUP__CALENDAR", "Atlantis")
    # main() sets up logging for the process: not on pytest's captured stream, which closes.
    monkeypatch.setattr(
        "financial.pkg.observability.logging.configure_logging", lambda *a, **k: None
    )
    with pytest.raises(SystemExit) as exited:
        main(["jobs", "list"])
    assert exited.value.code == 78
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith(
        "financial: configuration error: job 'database_cleanup': unknown calendar 'ATLANTIS'"
    )


def test_jobs_list_rows_name_the_calendar() -> None:
    registry = JobRegistry(now=NOW)
    spec = registry.add(cron_job("0 9 5B * *", name="pay", calendar="BR", on_holiday="next")(noop))
    row = _job_row(spec, NOW, None)
    assert (row["calendar"], row["on_holiday"]) == ("BR", "next")
    plain = _job_row(registry.add(cron_job("0 9 * * *", name="plain")(noop)), NOW, None)
    assert (plain["calendar"], plain["on_holiday"]) == (None, "skip")


def test_closed_dates_come_from_the_setting_and_the_file(tmp_path: Path) -> None:
    listing = tmp_path / "closed.txt"
    listing.write_text(
        "# company days off\n\n2026-12-24 office closed\n2027-01-02\n2026-12-31  # year end\n"
    )
    settings = load(worker_closed_dates="2026-12-30, 2026-12-24", worker_closed_dates_file=listing)
    assert settings.closed_dates() == (
        (date(2026, 12, 24), "office closed"),  # the file's label wins
        (date(2026, 12, 30), "closed (WORKER_CLOSED_DATES)"),
        (date(2026, 12, 31), "closed (closed.txt)"),
        (date(2027, 1, 2), "closed (closed.txt)"),
    )


def test_a_bad_line_of_the_closed_dates_file_is_named(tmp_path: Path) -> None:
    listing = tmp_path / "closed.txt"
    listing.write_text("2026-12-24\n24/12/2026 christmas eve\n")
    with pytest.raises(SettingsError) as caught:
        load(worker_closed_dates_file=listing)
    assert str(caught.value).endswith(
        "expected one date per line as YYYY-MM-DD, then an optional label (line 2: '24/12/2026')"
    )
    with pytest.raises(SettingsError, match="expected a readable file of dates"):
        load(worker_closed_dates_file=tmp_path / "missing.txt")
