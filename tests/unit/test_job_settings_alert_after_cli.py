"""`financial jobs set --alert-after SECONDS`: what the parser takes, and values refused before
anything is stored (exit 2 in the CLI), with messages naming the option, the value and what was
expected."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from financial.cmd import cli
from financial.cmd.job_settings import Refused, UsageError, parse_changes, set_checked
from financial.pkg.jobs import JobContext, cron_job
from financial.pkg.scheduler.job_settings import RuntimeSettings
from financial.pkg.scheduler.job_settings.memory import MemoryJobSettings
from financial.pkg.scheduler.registry import Defaults, JobRegistry

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


async def noop(ctx: JobContext) -> None:
    return None


def changes(*args: str) -> RuntimeSettings:
    return parse_changes(cli._parser().parse_args(["jobs", "set", "nightly", *args]))


def registry() -> JobRegistry:
    reg = JobRegistry(Defaults(alert_after=timedelta(hours=1)))
    reg.add(cron_job("0 3 * * *", name="nightly")(noop))
    return reg


@pytest.mark.parametrize(
    ("value", "seconds"), [("3600", 3600.0), ("0", 0.0), ("90.5", 90.5), ("-5", -5.0)]
)
def test_alert_after_is_read_as_seconds(value: str, seconds: float) -> None:
    # A negative number is the registry's to refuse (below), with the message of the others.
    assert changes("--alert-after", value) == RuntimeSettings(alert_after_s=seconds)
    assert changes(f"--alert-after={value}").alert_after_s == seconds


@pytest.mark.parametrize("value", ["soon", "", "1h", "nan", "inf", "-inf"])
def test_a_value_that_is_not_a_number_of_seconds_is_refused_naming_it(value: str) -> None:
    with pytest.raises(UsageError) as refused:
        changes(f"--alert-after={value}")
    assert str(refused.value) == (
        f"--alert-after {value!r}: expected a number of seconds >= 0 (0 turns the job's alert off)"
    )


def test_nothing_to_set_names_alert_after_among_the_options() -> None:
    with pytest.raises(UsageError, match=r"--calendar, --alert-after$"):
        changes()


@pytest.mark.parametrize(
    ("seconds", "shown"), [(-5.0, "-5.0"), (1e12, "1000000000000.0"), (-0.5, "-0.5")]
)
async def test_a_negative_or_absurd_value_is_refused_and_nothing_stored(
    seconds: float, shown: str
) -> None:
    store = MemoryJobSettings(lambda: NOW)
    result = await set_checked(
        store, registry(), "nightly", RuntimeSettings(alert_after_s=seconds), "ann", None
    )
    assert result == Refused(
        f"job 'nightly': alert_after {shown}: expected a number of seconds >= 0 (0 turns the "
        "job's alert off; at most 31622400, 366 days)"
    )
    assert await store.all() == {}
    assert await store.audit("nightly") == []


async def test_0_and_a_threshold_are_stored_and_audited() -> None:
    store = MemoryJobSettings(lambda: NOW)
    reg = registry()
    first = await set_checked(
        store, reg, "nightly", RuntimeSettings(alert_after_s=600), "ann", "tighter"
    )
    second = await set_checked(
        store, reg, "nightly", RuntimeSettings(alert_after_s=0), "bob", "silence"
    )
    assert not isinstance(first, Refused) and not isinstance(second, Refused)
    assert await store.get("nightly") == RuntimeSettings(alert_after_s=0.0)
    assert [(c.old.alert_after_s, c.new.alert_after_s) for c in await store.audit("nightly")] == [
        (600.0, 0.0),
        (None, 600.0),
    ]
