"""The view of a job's runtime settings the status page shows: effective values with their
sources, and the audit newest first, limited, in words."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from financial.pkg.jobs import JobContext, cron_job
from financial.pkg.scheduler.job_settings import RuntimeSettings, SettingsAction, SettingsChange
from financial.pkg.scheduler.job_settings.memory import MemoryJobSettings
from financial.pkg.scheduler.job_settings.view import (
    change_dict,
    describe,
    describe_change,
    settings_view,
)
from financial.pkg.scheduler.registry import JobRegistry, UnknownJobError

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


async def noop(ctx: JobContext) -> None:
    return None


async def test_the_view_of_a_job() -> None:
    registry = JobRegistry()
    registry.add(cron_job("0 3 * * *", name="nightly", timeout=60)(noop))
    store = MemoryJobSettings(lambda: NOW)
    for n in range(3):
        await store.set("nightly", RuntimeSettings(timeout_s=10 + n), by="ann", reason=str(n))
    registry.respec("nightly", await store.get("nightly"))

    view = await settings_view(registry, store, "nightly", limit=2)

    assert [(e.field, e.value, e.source) for e in view.effective] == [
        ("schedule", "0 3 * * *", "code"),
        ("timeout", 12.0, "runtime"),
        ("enabled", True, "code"),
        ("calendar", None, "default"),
        ("alert_after", None, "default"),
    ]
    assert [c.reason for c in view.audit] == ["2", "1"]
    assert describe_change(view.audit[0]) == "timeout: 11s -> 12s"
    assert change_dict(view.audit[0])["new"]["timeout_s"] == 12.0
    with pytest.raises(UnknownJobError):
        await settings_view(registry, store, "nope")


def test_describe_names_the_fields_that_are_set() -> None:
    assert describe(RuntimeSettings()) == "nothing set"
    assert (
        describe(RuntimeSettings(schedule="@hourly", enabled=False, calendar="BR"))
        == "schedule='@hourly', enabled=false, calendar='BR'"
    )


def test_alert_after_is_described_in_seconds_or_off() -> None:
    assert describe(RuntimeSettings(alert_after_s=3600)) == "alert_after=3600s"
    assert describe(RuntimeSettings(alert_after_s=0)) == "alert_after=off"

    def change(old: RuntimeSettings, new: RuntimeSettings) -> SettingsChange:
        return SettingsChange("nightly", NOW, "ann", SettingsAction.SET, old, new, None)

    turned_on = change(RuntimeSettings(), RuntimeSettings(alert_after_s=3600))
    assert describe_change(turned_on) == "alert_after: unset -> 3600s"
    silenced = change(RuntimeSettings(alert_after_s=3600), RuntimeSettings(alert_after_s=0))
    assert describe_change(silenced) == "alert_after: 3600s -> off"
    assert change_dict(silenced)["new"]["alert_after_s"] == 0


def test_an_audit_entry_from_before_alert_after_reads_it_as_not_set() -> None:
    old_entry = {"schedule": "@hourly", "timeout_s": 30, "enabled": None, "calendar": None}
    assert RuntimeSettings.from_dict(old_entry) == RuntimeSettings(
        schedule="@hourly", timeout_s=30.0
    )
    assert RuntimeSettings.from_dict({**old_entry, "alert_after_s": 0}).alert_after_s == 0.0
